"""SHEP SyncChannel v10 intake: SOAP 1.1 ``SendMessage`` at ``/shep/sync``, its WSDL at ``?wsdl``.

Both namespace spellings (``.../v10/Types`` and ``.../v10/types``) are accepted; the answer uses the
spelling of the request. The business document may arrive as the element child of ``data`` (as
zeep and most SHEP clients send it) or as escaped XML text.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

from aiohttp import web
from lxml import etree

import schemas
from gateway.errors import GatewayError
from gateway.http import COMPONENTS, language_of, parse_datetime, parse_xml, read_body
from gateway.pipeline import SUCCESS_CODE, SUCCESS_MESSAGE, IntakeRequest, Outcome, new_session_id
from signing.xmlsafe import XmlLimits, detach, parse_untrusted

log = logging.getLogger("egov.soap")

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_ENVELOPE = f"{{{SOAP_ENV}}}Envelope"
_BODY = f"{{{SOAP_ENV}}}Body"
_HEADER = f"{{{SOAP_ENV}}}Header"
_XML_CONTENT_TYPES = ("text/xml", "application/xml", "application/soap+xml")

# Compiled once per process for both spellings of the types namespace.
_SCHEMAS: dict[str, etree.XMLSchema] = {}


def _schema_for(namespace: str) -> etree.XMLSchema:
    if namespace not in _SCHEMAS:
        alias = None if namespace == schemas.SYNC_TYPES_NS else (schemas.SYNC_TYPES_NS, namespace)
        _SCHEMAS[namespace] = schemas.load_xml_schema(schemas.SYNC_TYPES_XSD, namespace_alias=alias)
    return _SCHEMAS[namespace]


def preload_schemas() -> None:
    for namespace in (schemas.SYNC_TYPES_NS, schemas.SYNC_TYPES_NS_LOWER):
        _schema_for(namespace)


async def handle_wsdl(request: web.Request) -> web.Response:
    if "wsdl" not in request.query:
        raise web.HTTPMethodNotAllowed("GET", ["POST"])
    return web.Response(body=request.app[COMPONENTS].sync_wsdl, content_type="text/xml", charset="utf-8")


async def handle_send_message(request: web.Request) -> web.Response:
    components = request.app[COMPONENTS]
    limits = components.settings.limits
    language = language_of(request)
    session_id = new_session_id()
    namespace = schemas.SYNC_TYPES_NS
    try:
        if request.content_type not in _XML_CONTENT_TYPES:
            raise GatewayError("CLIENT_UNSUPPORTED_MEDIA_TYPE", "SOAP 1.1 requires text/xml")
        body = await read_body(request, limits.max_body_bytes)
        xml_limits = XmlLimits(limits.max_body_bytes, limits.max_xml_depth, limits.max_xml_elements)
        operation = _operation(parse_xml(body, xml_limits))
        namespace = etree.QName(operation).namespace or schemas.SYNC_TYPES_NS
        intake = _read_send_message(operation, namespace, xml_limits)
        outcome = await components.pipeline.process(intake, session_id)
    except GatewayError as error:
        return _fault(error, language, session_id, namespace)
    except Exception:  # never a stack trace to the caller
        log.exception("unexpected error in %s", session_id)
        return _fault(GatewayError("GATEWAY_INTERNAL"), language, session_id, namespace)
    return _response(outcome, namespace, intake.message_id)


def _operation(envelope: etree._Element) -> etree._Element:
    if envelope.tag != _ENVELOPE:
        raise GatewayError("CLIENT_NOT_SOAP", f"root element is {envelope.tag}")
    bodies = envelope.findall(_BODY)
    if len(bodies) != 1:
        raise GatewayError("CLIENT_NOT_SOAP", "exactly one soap:Body is required")
    children = [child for child in bodies[0] if isinstance(child.tag, str)]
    if len(children) != 1:
        raise GatewayError("CLIENT_NOT_SOAP", "soap:Body must hold exactly one element")
    operation = children[0]
    qname = etree.QName(operation)
    if qname.localname != "SendMessage" or qname.namespace not in (
        schemas.SYNC_TYPES_NS, schemas.SYNC_TYPES_NS_LOWER
    ):
        raise GatewayError("CLIENT_UNKNOWN_OPERATION", f"{qname.text} is not a SyncChannel operation")
    return operation


def _read_send_message(operation: etree._Element, namespace: str, limits: XmlLimits) -> IntakeRequest:
    schema = _schema_for(namespace)
    if not schema.validate(operation):
        error = schema.error_log.last_error
        raise GatewayError("CLIENT_ENVELOPE_INVALID", f"line {error.line}: {error.message}" if error else None)
    info = operation.find("request/requestInfo")
    properties = {
        prop.findtext("key", ""): prop.findtext("value", "") for prop in info.iterfind("properties")
    }
    return IntakeRequest(
        channel="soap",
        message_id=info.findtext("messageId"),
        correlation_id=info.findtext("correlationId"),
        service_id=info.findtext("serviceId"),
        message_date=parse_datetime(info.findtext("messageDate")),
        sender_id=info.findtext("sender/senderId"),
        password=info.findtext("sender/password"),
        properties=properties,
        document=_document(operation.find("request/requestData/data"), limits),
    )


def _document(data: etree._Element | None, limits: XmlLimits) -> etree._Element | None:
    if data is None:
        return None
    elements = [child for child in data if isinstance(child.tag, str)]
    if len(elements) > 1:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "requestData/data must hold one document")
    if elements:
        return detach(elements[0])
    text = (data.text or "").strip()
    if not text:
        return None
    return parse_xml(text.encode(), limits, "requestData/data: ")  # the escaped-XML-string form


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _envelope(payload: etree._Element, header: etree._Element | None = None) -> web.Response:
    envelope = etree.Element(_ENVELOPE, nsmap={"soap": SOAP_ENV})
    if header is not None:
        etree.SubElement(envelope, _HEADER).append(header)
    etree.SubElement(envelope, _BODY).append(payload)
    body = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    status = 500 if payload.tag == _BODY_FAULT else 200
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")


_BODY_FAULT = f"{{{SOAP_ENV}}}Fault"


def _response(outcome: Outcome, namespace: str, message_id: str) -> web.Response:
    E = etree.SubElement
    root = etree.Element(f"{{{namespace}}}SendMessageResponse", nsmap={"ns": namespace})
    response = E(root, "response")
    info = E(response, "responseInfo")
    E(info, "messageId").text = str(uuid.uuid4())
    E(info, "correlationId").text = message_id
    E(info, "responseDate").text = _now()
    status = E(info, "status")
    E(status, "code").text = SUCCESS_CODE
    E(status, "message").text = SUCCESS_MESSAGE
    E(info, "sessionId").text = outcome.application.id
    # No xsi:type on data: zeep returns the child elements only when it is absent.
    receipt = outcome.application.receipt.encode() if outcome.application.receipt else None
    # A long-running (async) service answers with the receipt now; its result follows in the cabinet.
    data = outcome.result if outcome.result is not None else receipt
    if data is not None:
        E(E(response, "responseData"), "data").append(_own_xml(data))
    # SyncChannel's body has no slot for the receipt; a SOAP header carries it (clients may ignore it).
    return _envelope(root, _own_xml(receipt) if receipt else None)


def _own_xml(data: bytes) -> etree._Element:
    """Re-read XML the gateway itself produced (signed result or receipt) for embedding."""
    return parse_untrusted(data, XmlLimits(max_bytes=len(data) + 1))


def _fault(error: GatewayError, language: str, session_id: str, namespace: str) -> web.Response:
    E = etree.SubElement
    fault = etree.Element(_BODY_FAULT)
    E(fault, "faultcode").text = "soap:Server" if error.spec.party != "client" else "soap:Client"
    E(fault, "faultstring").text = error.message(language)
    info = E(E(fault, "detail"), f"{{{namespace}}}SendMessageFault", nsmap={"ns": namespace})
    E(info, "errorCode").text = error.code
    E(info, "errorMessage").text = error.message(language)
    data = {"messages": error.spec.messages, "party": str(error.spec.party)}
    if error.detail:
        data["detail"] = error.detail
    if error.sub_indication:
        data["subIndication"] = error.sub_indication
    if error.report:
        data["validationReport"] = error.report
    E(info, "errorData").text = json.dumps(data, ensure_ascii=False)
    E(info, "errorDate").text = _now()
    E(info, "sessionId").text = session_id
    return _envelope(fault)
