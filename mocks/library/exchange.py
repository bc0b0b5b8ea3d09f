"""How the KazNEB mock reads requests and answers: business documents in, XML or problem+json out.

Shared by the reader, fund and commission routes, so every route refuses a bad body the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from lxml import etree

from mocks.faults import read_limited
from mocks.library.forms import XMLDSIG_NS, safe_xml_parser

MAX_BODY_BYTES = 256 * 1024
_XML_TYPES = frozenset({"application/xml", "text/xml"})


def problem(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    """An RFC 9457 problem response carrying our stable error ``code``."""
    body = {
        "type": f"urn:egov:kazneb:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return web.json_response(body, status=status, content_type="application/problem+json", headers=headers)


def xml_response(schema: etree.XMLSchema, element: etree._Element) -> web.Response:
    """200 with ``element``, which must be valid against the answer ``schema``."""
    if not schema.validate(element):
        # A bug in the mock, not in the caller: fail loudly rather than send a bad document.
        raise RuntimeError(f"mock produced an invalid {etree.QName(element).localname}: {schema.error_log[0]}")
    body = etree.tostring(element, xml_declaration=True, encoding="UTF-8")
    return web.Response(body=body, content_type="application/xml", charset="utf-8")


async def read_business_document(
    request: web.Request, schema: etree.XMLSchema, invalid: Callable[[str], web.Response]
) -> etree._Element | web.Response:
    """The XML body as a schema-valid, unsigned root element, or the problem response to send.

    Checks, in order: media type (415), size (413), well-formedness, no DOCTYPE, the XSD, no
    ds:Signature (the last three answered by ``invalid(detail)``).
    """
    if request.content_type not in _XML_TYPES:
        detail = f"expected application/xml, got {request.content_type or 'nothing'}"
        return problem(415, "LIB_UNSUPPORTED_MEDIA_TYPE", "Unsupported media type", detail)
    body = await read_limited(request, MAX_BODY_BYTES)
    if body is None:
        return problem(413, "LIB_PAYLOAD_TOO_LARGE", "Payload too large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    try:
        root = etree.fromstring(body, safe_xml_parser())
    except etree.XMLSyntaxError as exc:
        return invalid(f"not well-formed XML: {exc}")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.system_url:
        # Entities are never resolved, but a DTD has no business in a business document at all.
        return invalid("DOCTYPE declarations are not accepted")
    if not schema.validate(root):
        error = schema.error_log[0]
        return invalid(f"line {error.line}: {error.message}")
    if next(root.iterchildren(f"{{{XMLDSIG_NS}}}*"), None) is not None:
        return invalid("the document still carries a ds:Signature; forward only the verified business document")
    return root
