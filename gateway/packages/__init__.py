"""Packages: large files uploaded beside an application, kept behind one storage seam until the operator has them.

``storage.py`` is the seam (:class:`PackageStorage`, the filesystem by default), ``records.py`` the uploads'
records in Redis, ``packages.py`` what the rest of the gateway uses (:class:`Packages`, :class:`StoredPackage`).
"""
