"""Packages behind applications: a service with ``package_element`` names, in its signed document, a package the
same sender uploaded before (``/api/v1/uploads``, by SHA-256). Intake refuses the application unless that upload
is complete (DEPOSIT_PACKAGE_MISSING), and delivery hands the stored package to the connector, which streams it
to the back-end after the document. The document carries the digest, never the bytes.
"""

from __future__ import annotations

import re
from typing import Protocol

from lxml import etree

from connectors.base import PackageSource
from gateway.delivery.registry import Service

_SHA256 = re.compile(r"[0-9a-f]{64}")


class StoredPackage(PackageSource, Protocol):
    """A complete upload: streamed to the back-end, then released."""

    async def release(self) -> None:
        """Delete it (the back-end has it)."""
        ...


class PackageFinder(Protocol):
    """The uploads' storage, as delivery and intake use it."""

    async def find_package(self, sender_id: str, sha256_hex: str) -> StoredPackage | None:
        """The sender's complete upload with this digest, or None."""
        ...


def package_digest(service: Service, document: etree._Element) -> str | None:
    """The SHA-256 the document names (``<package_element>/sha256``), or None when the service takes no package.
    A service that takes one and a document without a well-formed digest give ''."""
    element = service.settings.package_element
    if element is None:
        return None
    found = document.xpath("//*[local-name()=$name]/*[local-name()='sha256']/text()", name=element)
    digest = str(found[0]).strip() if isinstance(found, list) and len(found) == 1 else ""
    return digest if _SHA256.fullmatch(digest) else ""


async def find_named_package(packages: PackageFinder | None, service: Service, sender_id: str,
                             document: etree._Element) -> StoredPackage | None:
    """The package ``document`` names for ``service``, None if the service takes none. Raises LookupError when it
    takes one and there is no such complete upload of ``sender_id`` (or no uploads storage at all)."""
    digest = package_digest(service, document)
    if digest is None:
        return None
    package = await packages.find_package(sender_id, digest) if packages is not None and digest else None
    if package is None:
        raise LookupError(digest)
    return package
