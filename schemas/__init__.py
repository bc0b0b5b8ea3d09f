"""XSD/WSDL package data for egov-gateway and safe helpers to load it.

All schema files live inside this package (``schemas/shep/...``, ``schemas/kazneb/...``) and are
addressed by a POSIX path relative to the package, e.g. ``"shep/SyncChannel_v10_types.xsd"``.

Schemas are compiled with a hardened lxml parser; ``xsd:import``/``xsd:include`` is resolved only
against files of this package, so a schema can never make the gateway read local files or the
network.
"""

from __future__ import annotations

import copy
import threading
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from lxml import etree

if TYPE_CHECKING:  # the resolver's return type exists only in the lxml stubs
    from lxml.etree._docloader import _InputDocument

__all__ = [
    "ASYNC_CLIENT_NS",
    "ASYNC_CLIENT_WSDL",
    "ASYNC_CLIENT_XSD",
    "ASYNC_OPERATIONS_NS",
    "ASYNC_OPERATIONS_XSD",
    "ASYNC_TYPES_NS",
    "ASYNC_TYPES_XSD",
    "ASYNC_WSDL",
    "ASYNC_WSDL_NS",
    "COMMON_TYPES_NS",
    "COMMON_TYPES_XSD",
    "SYNC_TYPES_NS",
    "SYNC_TYPES_NS_LOWER",
    "SYNC_TYPES_XSD",
    "SYNC_WSDL",
    "SYNC_WSDL_NS",
    "async_channel_wsdl",
    "async_client_wsdl",
    "load_xml_schema",
    "read_schema_bytes",
    "schema_path",
    "sync_channel_wsdl",
]

SYNC_TYPES_NS = "http://bip.bee.kz/SyncChannel/v10/Types"
#: Spelling used by some SHEP deployments; accepted on intake via ``namespace_alias``.
SYNC_TYPES_NS_LOWER = "http://bip.bee.kz/SyncChannel/v10/types"
SYNC_WSDL_NS = "http://bip.bee.kz/SyncChannel/v10/Interfaces"

SYNC_TYPES_XSD = "shep/SyncChannel_v10_types.xsd"
SYNC_WSDL = "shep/SyncChannel_v10.wsdl"

#: AsyncChannel v10 operations and faults (sendMessage, ..., sendMessageFault1_sendMessageFault).
ASYNC_OPERATIONS_NS = "http://bip.bee.kz/AsyncChannel/v10/Types"
#: AsyncChannel v10 complex types (AsyncMessageInfo, ...); real clients also send operations in this spelling.
ASYNC_TYPES_NS = "http://bip.bee.kz/AsyncChannel/v10/types"
#: The client side (IAsyncChannelClient): the callbacks sendMessage and changeMassageStatusNotification.
ASYNC_CLIENT_NS = "http://bip.bee.kz/AsyncChannel/v10/Types/Client"
#: SHEP v10 common types: SenderInfo, Property, ErrorInfo.
COMMON_TYPES_NS = "http://bip.bee.kz/common/v10/types"
ASYNC_WSDL_NS = "http://bip.bee.kz/AsyncChannel/v10/Interfaces"

COMMON_TYPES_XSD = "shep/common_v10_types.xsd"
ASYNC_TYPES_XSD = "shep/AsyncChannel_v10_types.xsd"
ASYNC_OPERATIONS_XSD = "shep/AsyncChannel_v10_operations.xsd"
ASYNC_CLIENT_XSD = "shep/AsyncChannelClient_v10_operations.xsd"
#: The interface the gateway serves (sendMessage, getMessages, getMessageStatus, sendDeliveryNotification).
ASYNC_WSDL = "shep/AsyncChannel_v10.wsdl"
#: The callback interface a portal implements (sendMessage, changeMassageStatusNotification).
ASYNC_CLIENT_WSDL = "shep/AsyncChannelClient_v10.wsdl"

_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"

# Pseudo URL scheme used as base_url for package documents, so that libxml2 joins relative
# schemaLocations against it and our resolver can recognise (and confine) them.
_PKG_SCHEME = "egov-schemas"


def _safe_relative(relative: str) -> PurePosixPath:
    """Validate a package-relative path: no absolute paths, no ``..``, no empty parts."""
    rel = PurePosixPath(relative)
    if not relative or rel.is_absolute() or "\\" in relative or any(p in ("", "..") for p in rel.parts):
        raise ValueError(f"invalid schema path: {relative!r}")
    return rel


def schema_path(relative: str) -> Path:
    """Filesystem path of a schema file shipped in this package.

    Raises ``ValueError`` for paths escaping the package and ``FileNotFoundError`` if missing.
    """
    rel = _safe_relative(relative)
    node = resources.files(__name__).joinpath(*rel.parts)
    if not isinstance(node, Path):
        # Zip/egg installs have no real path; callers needing a file should use read_schema_bytes().
        raise RuntimeError(f"schemas package is not on the filesystem: {node!r}")
    if not node.is_file():
        raise FileNotFoundError(node)
    return node


def read_schema_bytes(relative: str) -> bytes:
    """Raw bytes of a schema file shipped in this package."""
    rel = _safe_relative(relative)
    return resources.files(__name__).joinpath(*rel.parts).read_bytes()


def _safe_parser() -> etree.XMLParser:
    """Parser that never expands entities, loads DTDs or touches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


class _PackageResolver(etree.Resolver):
    """Resolve ``egov-schemas:///<relative>`` URLs to package files; refuse everything else.

    Raising from ``resolve`` makes libxml2 report the import as unloadable, so schema
    compilation fails instead of silently falling back to its default (file/network) loader.
    """

    def __init__(self, namespace_alias: tuple[str, str] | None) -> None:
        super().__init__()
        self._alias = namespace_alias

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> _InputDocument:
        if not system_url:
            raise ValueError("schema import without location refused")
        parts = urlsplit(system_url)
        if parts.scheme != _PKG_SCHEME or parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"schema import outside the schemas package refused: {system_url!r}")
        data = read_schema_bytes(unquote(parts.path).lstrip("/"))
        return self.resolve_string(_apply_alias(data, self._alias), context, base_url=system_url)


def _apply_alias(data: bytes, namespace_alias: tuple[str, str] | None) -> bytes:
    # Plain byte replacement is deliberate: the namespace URI appears both in targetNamespace and
    # in the xmlns:tns declaration used by QName references, and both must change together.
    if namespace_alias is None:
        return data
    old, new = namespace_alias
    return data.replace(old.encode("utf-8"), new.encode("utf-8"))


def _parse_package_doc(relative: str, namespace_alias: tuple[str, str] | None = None) -> etree._ElementTree:
    rel = _safe_relative(relative)
    parser = _safe_parser()
    parser.resolvers.add(_PackageResolver(namespace_alias))
    data = _apply_alias(read_schema_bytes(relative), namespace_alias)
    root = etree.fromstring(data, parser, base_url=f"{_PKG_SCHEME}:///{rel.as_posix()}")
    return root.getroottree()


def load_xml_schema(relative: str, *, namespace_alias: tuple[str, str] | None = None) -> etree.XMLSchema:
    """Compile a package XSD into an ``lxml.etree.XMLSchema``.

    ``namespace_alias=(old, new)`` compiles the schema (and anything it imports from the package) with
    the namespace string ``old`` replaced by ``new``, e.g. ``(SYNC_TYPES_NS, SYNC_TYPES_NS_LOWER)``
    to validate messages using the lowercase ``.../v10/types`` spelling.

    Compilation is not free: compile once at startup and reuse the returned object.
    """
    if namespace_alias is not None and namespace_alias[0].encode("utf-8") not in read_schema_bytes(relative):
        # A typo in the alias would otherwise silently compile the unaliased schema.
        raise ValueError(f"{relative}: namespace {namespace_alias[0]!r} not found")
    return etree.XMLSchema(_parse_package_doc(relative, namespace_alias))


_wsdl_lock = threading.Lock()
# Keyed by (wsdl, types xsds) package paths; filled lazily, never mutated once stored.
_wsdl_templates: dict[tuple[str, tuple[str, ...]], etree._ElementTree] = {}
_XSD_IMPORT = "{http://www.w3.org/2001/XMLSchema}import"


def _build_wsdl_template(wsdl_relative: str, types_relatives: tuple[str, ...]) -> etree._ElementTree:
    """Parse a package WSDL and replace its importing wsdl:types with the inlined types schemas.

    Several schemas (one per namespace) import each other by namespace only once inlined: a WSDL reader
    finds them in the same wsdl:types, and never fetches a schemaLocation the served WSDL cannot offer."""
    wsdl = _parse_package_doc(wsdl_relative)
    types = wsdl.getroot().find(f"{{{_WSDL_NS}}}types")
    if types is None:
        raise RuntimeError(f"{wsdl_relative}: no wsdl:types")
    for child in list(types):
        types.remove(child)
    for types_relative in types_relatives:
        types_schema = _parse_package_doc(types_relative).getroot()
        # Re-create the schema root with its full nsmap instead of appending it: on a move lxml drops
        # declarations the new parent seems to cover, and xmlns:tns would then silently resolve to the
        # WSDL's own tns, breaking the QName references (type="tns:...") held in attribute text.
        inlined = etree.SubElement(
            types, types_schema.tag, attrib=dict(types_schema.attrib), nsmap=types_schema.nsmap
        )
        inlined.text = types_schema.text
        for child in list(types_schema):
            if child.tag == _XSD_IMPORT:
                child.attrib.pop("schemaLocation", None)
            inlined.append(child)
    if _find_soap_address(wsdl) is None:
        raise RuntimeError(f"{wsdl_relative}: no soap:address")
    return wsdl


def _find_soap_address(wsdl: etree._ElementTree) -> etree._Element | None:
    return wsdl.getroot().find(f"{{{_WSDL_NS}}}service/{{{_WSDL_NS}}}port/{{{_SOAP_NS}}}address")


def _self_contained_wsdl(wsdl_relative: str, types_relatives: tuple[str, ...], address: str) -> bytes:
    """Copy of the cached self-contained template for ``wsdl_relative`` with ``soap:address`` set."""
    if not isinstance(address, str) or not address:
        raise ValueError("address must be a non-empty string")
    key = (wsdl_relative, types_relatives)
    template = _wsdl_templates.get(key)
    if template is None:
        with _wsdl_lock:
            template = _wsdl_templates.get(key)
            if template is None:
                template = _wsdl_templates[key] = _build_wsdl_template(wsdl_relative, types_relatives)
    doc = copy.deepcopy(template)
    soap_address = _find_soap_address(doc)
    assert soap_address is not None  # checked when the template was built
    soap_address.set("location", address)
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8")


def sync_channel_wsdl(address: str) -> bytes:
    """Self-contained SyncChannel v10 WSDL (types inlined) with ``soap:address`` set to ``address``.

    This is what ``GET /shep/sync?wsdl`` serves. The template is built once; each call only copies it
    and sets the address (lxml escapes it and rejects characters not allowed in XML).
    """
    return _self_contained_wsdl(SYNC_WSDL, (SYNC_TYPES_XSD,), address)


def async_channel_wsdl(address: str) -> bytes:
    """Self-contained AsyncChannel v10 WSDL (``IAsyncChannel``, types inlined), ``soap:address`` = ``address``.

    This is the interface the gateway serves to portals; its operation, type and common schemas are inlined.
    Built once and copied per call, like :func:`sync_channel_wsdl`.
    """
    return _self_contained_wsdl(ASYNC_WSDL, (ASYNC_OPERATIONS_XSD, ASYNC_TYPES_XSD, COMMON_TYPES_XSD), address)


def async_client_wsdl(address: str) -> bytes:
    """Self-contained AsyncChannel v10 client WSDL (``IAsyncChannelClient``), ``soap:address`` = ``address``.

    The callback interface a portal implements and the gateway calls (``sendMessage`` with a result,
    ``changeMassageStatusNotification``); ``address`` is the portal's endpoint. Built once and copied
    per call, like :func:`sync_channel_wsdl`.
    """
    return _self_contained_wsdl(ASYNC_CLIENT_WSDL, (ASYNC_CLIENT_XSD, ASYNC_TYPES_XSD, COMMON_TYPES_XSD),
                                address)
