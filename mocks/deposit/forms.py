"""The deposit's documents as XML: the application of appendix 1 with the act's tables as its manifest
(``schemas/deposit/deposit-application.xsd``), and reading the tables back out of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from lxml import etree

from mocks.deposit.pack import Library, SourceFile, Tables, mb

APPLICATION_NS = "urn:egov:deposit:application:v1"
RESULT_NS = "urn:egov:deposit:result:v1"
CONTENTS = ("source-code", "build-description", "install-packages", "additional-software", "database-file",
            "licensed-software-settings")
"What §5 puts in a deposit, in its order."


@dataclass(frozen=True)
class PackageInfo:
    """The medium as the application names it."""

    file_name: str
    "The archive's file name."
    size_bytes: int
    "Its size."
    sha256: str
    "Its SHA-256, lowercase hex: the upload it names."


def _add(parent: etree._Element, ns: str, name: str, text: object | None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        child.text = str(text)
    return child


def add_tables(parent: etree._Element, ns: str, tables: Tables) -> None:
    """The ``sourceFiles`` and ``libraries`` tables under ``parent`` (schema order)."""
    files = _add(parent, ns, "sourceFiles", None)
    for row in tables.source_files:
        item = _add(files, ns, "file", None)
        for name, value in (("number", row.number), ("diskLabel", row.disk_label), ("directory", row.directory),
                            ("fileName", row.file_name), ("sizeMb", row.size_mb), ("sizeBytes", row.size_bytes),
                            ("language", row.language), ("modifiedAt", row.modified_at), ("sha256", row.sha256)):
            if value is not None:
                _add(item, ns, name, value)
    libraries = _add(parent, ns, "libraries", None)
    for lib in tables.libraries:
        item = _add(libraries, ns, "library", None)
        for name, value in (("number", lib.number), ("diskLabel", lib.disk_label), ("directory", lib.directory),
                            ("name", lib.name), ("language", lib.language), ("version", lib.version),
                            ("declaredIn", lib.declared_in)):
            if value is not None:
                _add(item, ns, name, value)


def add_package(parent: etree._Element, ns: str, package: PackageInfo) -> None:
    info = _add(parent, ns, "packageInfo", None)
    for name, value in (("fileName", package.file_name), ("format", "tar+gzip"), ("sizeBytes", package.size_bytes),
                        ("sha256", package.sha256)):
        _add(info, ns, name, value)


def build_application(*, bin: str, owner_name: str, software_name: str, software_version: str,
                      architecture_code: str, contact_person: str, package: PackageInfo, tables: Tables,
                      production_date: date | None = None, application_id: str | None = None) -> etree._Element:
    """An unsigned ``SoftwareDepositApplication`` (appendix 1) carrying the act's tables and the package's digest."""
    ns = APPLICATION_NS
    root = etree.Element(f"{{{ns}}}SoftwareDepositApplication", nsmap={None: ns})
    for name, value in (("applicationId", application_id or str(uuid.uuid4())), ("bin", bin),
                        ("ownerName", owner_name), ("softwareName", software_name),
                        ("softwareVersion", software_version), ("architectureCode", architecture_code),
                        ("copies", 1), ("productionDate", (production_date or date.today()).isoformat()),
                        ("contactPerson", contact_person)):
        _add(root, ns, name, value)
    contents = _add(root, ns, "contents", None)
    for kind in ("source-code", "build-description"):
        _add(contents, ns, "item", kind)
    add_package(root, ns, package)
    add_tables(_add(root, ns, "act", None), ns, tables)
    _add(root, ns, "submittedAt", datetime.now(UTC).replace(microsecond=0).isoformat())
    return root


def _text(element: etree._Element, name: str) -> str:
    child = element.find(f"{{*}}{name}")
    return (child.text or "").strip() if child is not None else ""


def read_text(element: etree._Element, name: str) -> str:
    """The text of ``element``'s child ``name`` (any namespace), '' when absent."""
    return _text(element, name)


def read_tables(act: etree._Element) -> Tables:
    """The tables of an ``act`` (or ``tables``) element, as :class:`Tables`."""
    files = tuple(
        SourceFile(int(_text(f, "number")), _text(f, "diskLabel"), _text(f, "directory"), _text(f, "fileName"),
                   int(_text(f, "sizeBytes")), _text(f, "language") or None, _text(f, "modifiedAt"),
                   _text(f, "sha256"))
        for f in act.iterfind("{*}sourceFiles/{*}file"))
    libraries = tuple(
        Library(int(_text(lib, "number")), _text(lib, "diskLabel"), _text(lib, "directory"), _text(lib, "name"),
                _text(lib, "language") or None, _text(lib, "version"), _text(lib, "declaredIn"))
        for lib in act.iterfind("{*}libraries/{*}library"))
    return Tables(files[0].disk_label if files else "", files, libraries)


def read_package(root: etree._Element) -> PackageInfo:
    info = root.find("{*}packageInfo")
    if info is None:
        raise ValueError("no packageInfo")
    return PackageInfo(_text(info, "fileName"), int(_text(info, "sizeBytes")), _text(info, "sha256"))


__all__ = ["APPLICATION_NS", "RESULT_NS", "PackageInfo", "add_package", "add_tables", "build_application", "mb",
           "read_package", "read_tables", "read_text"]
