"""Parsing untrusted XML: no DTD, no entities, no network, bounded size, depth and element count.

Every XML byte the gateway receives goes through :func:`parse_untrusted`. A document with any
DOCTYPE is refused outright rather than parsed with entities disabled: nothing legitimate in SHEP
needs one, and refusing it closes XXE, billion laughs and quadratic blowup in one rule.
"""

from __future__ import annotations

import copy
import io
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lxml import etree

if TYPE_CHECKING:  # the resolver's return type exists only in the lxml stubs
    from lxml.etree._docloader import _InputDocument


class UnsafeXmlError(ValueError):
    """The document was refused before or during parsing.

    ``reason`` is ``"malformed"`` (not well-formed XML), ``"forbidden"`` (DTD, entity, or a limit was
    exceeded) or ``"too_large"``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class XmlLimits:
    """Bounds applied to every parsed document."""

    max_bytes: int = 1_048_576
    "Largest document accepted, in bytes."
    max_depth: int = 64
    "Deepest element nesting accepted."
    max_elements: int = 20_000
    "Most elements accepted."


class _RefuseExternal(etree.Resolver):
    """Answers every external DTD/entity load with nothing, so libxml2 never opens a file or URL.

    ``load_dtd=False`` alone does not stop libxml2 from fetching an external subset when an undeclared
    entity is referenced; the byte check in :func:`parse_untrusted` misses a DOCTYPE in UTF-16 or UTF-7,
    and without this resolver such a document made the parser open a local file (a FIFO hangs it).
    """

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> _InputDocument:
        return self.resolve_string("", context)


def _make_parser(*, remove_comments: bool = False) -> etree.XMLParser:
    parser = etree.XMLParser(
        remove_comments=remove_comments,
        remove_pis=remove_comments,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
        remove_blank_text=False,
    )
    parser.resolvers.add(_RefuseExternal())
    return parser


# "<!DOCTYPE" / "<!ENTITY" in every encoding libxml2 detects from the first bytes (UTF-8 and the ASCII-compatible
# ones, UTF-16, UTF-32). Otherwise e.g. a UTF-16 billion laughs trips libxml2's amplification limit first and is
# reported as "malformed" rather than "forbidden". Rarer encodings (UTF-7) are still caught by the docinfo check.
_DECLARATION_MARKERS = tuple(
    marker.encode(encoding)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)

# lxml parsers are not thread-safe but are safe to reuse within one event loop thread.
_PARSER = _make_parser()


def parse_untrusted(data: bytes, limits: XmlLimits = XmlLimits()) -> etree._Element:
    """Parse ``data`` or raise :class:`UnsafeXmlError`. Returns the root element."""
    if len(data) > limits.max_bytes:
        raise UnsafeXmlError("too_large", f"document is {len(data)} bytes, limit {limits.max_bytes}")
    if any(marker in data for marker in _DECLARATION_MARKERS):
        raise UnsafeXmlError("forbidden", "DOCTYPE and ENTITY declarations are not allowed")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise UnsafeXmlError("malformed", f"not well-formed XML: {exc}") from None
    if root is None:
        raise UnsafeXmlError("malformed", "empty document")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # e.g. a DOCTYPE in another encoding
        raise UnsafeXmlError("forbidden", "DOCTYPE declarations are not allowed")
    check_shape(root, limits)
    return root


_signed_parsers = threading.local()


def without_comments(root: etree._Element) -> etree._Element:
    """``root`` itself when its document holds no comment or processing instruction; otherwise a re-parse of it
    with them removed and the text around them merged (``<iin>9001<!-- x -->01300123</iin>`` reads as one text).

    A verified document goes through this, so no reader (``.text``, ``findtext``) can be cut short by a comment,
    signed or not. Safe from any thread (the parser is per thread).
    """
    if not root.xpath("boolean(//comment() | //processing-instruction())"):
        return root
    return parse_canonical(etree.tostring(root))


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


def write_canonical(root: etree._Element, out: _Writable, *, exclusive: bool = True,
                    with_comments: bool = False) -> None:
    """Write the C14N of ``root`` to ``out`` piece by piece, as lxml produces it, so the whole form is never held
    by this call. Only the root of a tree with nothing beside it is written that way (the tree writer would include
    a top-level comment or processing instruction); any other element is written in one piece by ``tostring``,
    which gives the same bytes for it."""
    if root.getparent() is not None or root.getprevious() is not None or root.getnext() is not None:
        out.write(etree.tostring(root, method="c14n", exclusive=exclusive, with_comments=with_comments))
    else:
        etree.ElementTree(root).write_c14n(out, exclusive=exclusive, with_comments=with_comments)


def canonical_bytes(root: etree._Element, *, exclusive: bool = True, with_comments: bool = False) -> bytes:
    """The C14N of ``root`` (:func:`write_canonical`) in one growing buffer, so a big document's canonical form is
    held once (``etree.tostring`` holds libxml2's whole buffer and then a copy of it)."""
    out = io.BytesIO()
    write_canonical(root, out, exclusive=exclusive, with_comments=with_comments)
    return out.getvalue()


def parse_canonical(data: bytes) -> etree._Element:
    """Parse canonical XML that a signature covers (bytes we produced, not the network's), comments and
    processing instructions removed as in :func:`without_comments`. Safe from any thread."""
    parser = getattr(_signed_parsers, "parser", None)
    if parser is None:
        parser = _signed_parsers.parser = _make_parser(remove_comments=True)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise UnsafeXmlError("malformed", f"not well-formed XML: {exc}") from None


def check_shape(root: etree._Element, limits: XmlLimits) -> None:
    """Refuse entity references and documents deeper or larger than the limits."""
    depth = 0
    count = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        count += 1
        if isinstance(element, etree._Entity):
            raise UnsafeXmlError("forbidden", "entity references are not allowed")
        if depth > limits.max_depth:
            raise UnsafeXmlError("forbidden", f"nesting deeper than {limits.max_depth}")
        if count > limits.max_elements:
            raise UnsafeXmlError("forbidden", f"more than {limits.max_elements} elements")


def detach(element: etree._Element) -> etree._Element:
    """Copy ``element`` into a document of its own.

    A signed document embedded in a SOAP body inherits the envelope's namespace declarations;
    canonicalising it there would not reproduce what the applicant signed. The copy carries only
    the declarations its own subtree uses or declares.
    """
    return copy.deepcopy(element)


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname
