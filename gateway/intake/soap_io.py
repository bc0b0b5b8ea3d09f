"""SOAP 1.1 in and out for the SyncChannel and AsyncChannel intakes: read one operation out of an envelope,
take the business document out of ``data``, answer, or refuse with a Fault carrying ``ErrorInfo``."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from aiohttp import web
from lxml import etree

from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.intake.reading import parse_xml
from gateway.intake.ws_security import inspect_envelope
from gateway.shep.envelope import BODY, ENVELOPE, FAULT, HEADER, SOAP_ENV, now_iso
from gateway.web.problems import retry_after
from gateway.web.reading import read_body
from signing.xmlsafe import XmlLimits, detach

XML_CONTENT_TYPES = ("text/xml", "application/xml", "application/soap+xml")
RAW_BODY = web.RequestKey("raw_body", bytes)
"""The request's body as received (``request[RAW_BODY]``), kept by :func:`read_message` for the message log when
it logs requests (:attr:`~gateway.intake.pipeline.Pipeline.logs_requests`), else absent."""


XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


@dataclass(frozen=True)
class SoapMessage:
    """One SOAP 1.1 request as read off the wire, before any business check."""

    envelope: etree._Element
    "The whole soap:Envelope (a header processor, e.g. WS-Security, needs it to find signed parts)."
    header: etree._Element | None
    "soap:Header, when present: the place for a header processor to hook in before the body is used."
    operation: etree._Element
    "The one element of soap:Body, checked to be an operation of the channel."


async def read_message(request: web.Request, limits: XmlLimits, namespaces: Collection[str],
                       operations: Collection[str]) -> SoapMessage:
    """Read the envelope; its one element in soap:Body must be one of ``operations`` in one of ``namespaces``.

    A request with no Content-Type at all is read as SOAP (some clients send none); any other type
    than the XML ones is refused."""
    if "Content-Type" in request.headers and request.content_type not in XML_CONTENT_TYPES:
        raise GatewayError("CLIENT_UNSUPPORTED_MEDIA_TYPE", "SOAP 1.1 requires text/xml")
    body = await read_body(request, limits.max_bytes)
    if request.app[INTAKE].pipeline.logs_requests:
        request[RAW_BODY] = body
    envelope = parse_xml(body, limits)
    del body  # a big document's bytes go before its tree is copied and verified (see document_in)
    if envelope.tag != ENVELOPE:
        raise GatewayError("CLIENT_NOT_SOAP", f"root element is {etree.QName(envelope).text}")
    bodies = envelope.findall(BODY)
    if len(bodies) != 1:
        raise GatewayError("CLIENT_NOT_SOAP", "exactly one soap:Body is required")
    children = [child for child in bodies[0] if isinstance(child.tag, str)]
    if len(children) != 1:
        raise GatewayError("CLIENT_NOT_SOAP", "soap:Body must hold exactly one element")
    qname = etree.QName(children[0])
    if qname.localname not in operations or qname.namespace is None or qname.namespace not in namespaces:
        raise GatewayError("CLIENT_UNKNOWN_OPERATION", f"{qname.text} is not an operation of this channel")
    await inspect_envelope(request, envelope, request.app[INTAKE].ws_security)  # mustUnderstand, WS-Security
    return SoapMessage(envelope, envelope.find(HEADER), children[0])


def drop_data_type(data: etree._Element | None) -> None:
    """Forget an ``xsi:type`` on ``data``: real clients name their generated type there, but the business
    document has its own schema (checked later), and ``data`` is ``xsd:anyType`` whatever they call it."""
    if data is not None:
        data.attrib.pop(XSI_TYPE, None)


def validate(schema: etree.XMLSchema, element: etree._Element) -> None:
    if not schema.validate(element):
        error = schema.error_log.last_error
        raise GatewayError("CLIENT_ENVELOPE_INVALID", f"line {error.line}: {error.message}" if error else None)


def required(element: etree._Element, path: str) -> etree._Element:
    """The child at ``path``. The schema requires it; a schema that loses one is refused, not a crash."""
    child = element.find(path)
    if child is None:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", f"{etree.QName(element).localname}/{path} is missing")
    return child


def required_text(element: etree._Element, path: str) -> str:
    """The text at ``path``, refused when missing, so it never turns into a None identifier."""
    text = element.findtext(path)
    if text is None:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", f"{etree.QName(element).localname}/{path} is missing")
    return text


def document_in(data: etree._Element | None, limits: XmlLimits) -> etree._Element | None:
    """The business document in ``data``: its element child (detached), or escaped XML text.

    The child is moved out of the envelope, not only copied: the envelope's copy is freed, so a big document is
    held once while its signature is checked. Validate the envelope before."""
    if data is None:
        return None
    elements = [child for child in data if isinstance(child.tag, str)]
    if len(elements) > 1:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "data must hold one document")
    if elements:
        document = detach(elements[0])
        data.remove(elements[0])
        return document
    text, data.text = (data.text or "").strip(), None
    if not text:
        return None
    return parse_xml(text.encode(), limits, "data: ")  # the escaped-XML-string form


def body_of(response: web.Response) -> bytes:
    """The bytes an answer sends (for the message log)."""
    return response.body if isinstance(response.body, bytes) else b""


def respond(payload: etree._Element, header: etree._Element | None = None) -> web.Response:
    envelope = etree.Element(ENVELOPE, nsmap={"soap": SOAP_ENV})
    if header is not None:
        etree.SubElement(envelope, HEADER).append(header)
    etree.SubElement(envelope, BODY).append(payload)
    body = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    status = 500 if payload.tag == FAULT else 200
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")


def fault(error: GatewayError, language: str, session_id: str, detail_tag: str) -> web.Response:
    """A SOAP 1.1 Fault whose detail is ``detail_tag`` (an ErrorInfo), HTTP 500.

    SHEP clients expect every Fault as HTTP 500, so a retryable refusal (a 503 code such as GATEWAY_OVERLOADED)
    keeps 500 and carries its code in errorCode, with a ``Retry-After`` header as the REST answer has, and the
    same seconds as ``retryAfterSeconds`` in the JSON of ErrorInfo/errorData (every code in
    :data:`gateway.errors.RETRYABLE`)."""
    E = etree.SubElement
    element = etree.Element(FAULT)
    E(element, "faultcode").text = ("soap:MustUnderstand" if error.code == "CLIENT_MUST_UNDERSTAND" else
                                    "soap:Server" if error.spec.party != "client" else "soap:Client")
    E(element, "faultstring").text = error.message(language)
    namespace = etree.QName(detail_tag).namespace
    info = etree.Element(detail_tag, nsmap={"ns": namespace} if namespace else None)
    E(info, "errorCode").text = error.code
    E(info, "errorMessage").text = error.message(language)
    data: dict[str, object] = {"messages": error.spec.messages, "party": str(error.spec.party)}
    if error.detail:
        data["detail"] = error.detail
    if error.sub_indication:
        data["subIndication"] = error.sub_indication
    if error.report:
        data["validationReport"] = error.report
    wait = retry_after(error)
    if wait is not None:  # a retryable refusal: errorData's retryAfterSeconds and the Retry-After header
        data["retryAfterSeconds"] = wait
    E(info, "errorData").text = json.dumps(data, ensure_ascii=False)
    E(info, "errorDate").text = now_iso()
    E(info, "sessionId").text = session_id
    # SOAP 1.1 §4.4: detail is for Body errors only, so a header's ErrorInfo travels as a header entry.
    header_error = error.code == "CLIENT_MUST_UNDERSTAND"
    if not header_error:
        E(element, "detail").append(info)
    response = respond(element, info if header_error else None)
    if wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response
