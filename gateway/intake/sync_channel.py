"""SHEP SyncChannel v10 intake: SOAP 1.1 ``SendMessage`` at ``/shep/sync``, its WSDL at ``?wsdl``.

Both namespace spellings (``.../v10/Types`` and ``.../v10/types``) are accepted; the answer uses the
spelling of the request. The business document may arrive as the element child of ``data`` (as
zeep and most SHEP clients send it) or as escaped XML text.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import tzinfo

from aiohttp import web
from lxml import etree

import schemas
from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.intake.pipeline import SUCCESS_CODE, SUCCESS_MESSAGE, IntakeRequest, Outcome, new_session_id
from gateway.intake.reading import parse_datetime, service_label
from gateway.intake.soap_io import (
    RAW_BODY,
    body_of,
    document_in,
    drop_data_type,
    fault,
    read_message,
    required,
    required_text,
    respond,
    validate,
)
from gateway.intake.ws_security import signed_by
from gateway.monitor.metrics import observe_request
from gateway.shep.envelope import now_iso, own_xml
from gateway.web.problems import language_of
from signing.xmlsafe import XmlLimits

log = logging.getLogger("egov.soap")

_NAMESPACES = (schemas.SYNC_TYPES_NS, schemas.SYNC_TYPES_NS_LOWER)
FAULT_NAME = "SendMessageFault1_SendMessageFault"
"The fault detail element, as the public v10 schema names it (JAX-WS clients map faults by it)."

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
    return web.Response(body=request.app[INTAKE].sync_wsdl, content_type="text/xml", charset="utf-8")


async def handle_send_message(request: web.Request) -> web.Response:
    components = request.app[INTAKE]
    limits = components.settings.limits
    language = language_of(request)
    session_id = new_session_id()
    namespace = schemas.SYNC_TYPES_NS
    started, intake, code = time.perf_counter(), None, SUCCESS_CODE
    try:
        with components.pipeline.admit():  # the in-flight gate, before anything is read
            xml_limits = XmlLimits(limits.max_body_bytes, limits.max_xml_depth, limits.max_xml_elements)
            operation = (await read_message(request, xml_limits, _NAMESPACES, ("SendMessage",))).operation
            namespace = etree.QName(operation).namespace or schemas.SYNC_TYPES_NS
            intake = _read_send_message(operation, namespace, xml_limits, components.settings.shep.zone())
            outcome = await components.pipeline.process(intake, session_id, client=request.remote,
                                                        signed_by=signed_by(request), raw=request.get(RAW_BODY))
            response = _response(outcome, namespace, intake.message_id)
            await components.pipeline.log_answer(intake, outcome, body_of(response))
        return response
    except GatewayError as error:
        code = error.code
        return fault(error, language, session_id, f"{{{namespace}}}{FAULT_NAME}")
    except Exception:  # never a stack trace to the caller
        log.exception("unexpected error in %s", session_id)
        code = "GATEWAY_INTERNAL"
        return fault(GatewayError(code), language, session_id, f"{{{namespace}}}{FAULT_NAME}")
    finally:
        service = service_label(components.registry, intake.service_id if intake else None)
        observe_request("soap", service, code, started)


def _read_send_message(operation: etree._Element, namespace: str, limits: XmlLimits,
                       local_zone: tzinfo) -> IntakeRequest:
    drop_data_type(operation.find("request/requestData/data"))
    validate(_schema_for(namespace), operation)
    info = required(operation, "request/requestInfo")
    properties = {
        prop.findtext("key", ""): prop.findtext("value", "") for prop in info.iterfind("properties")
    }
    return IntakeRequest(
        channel="soap",
        message_id=required_text(info, "messageId"),
        correlation_id=info.findtext("correlationId"),
        service_id=required_text(info, "serviceId"),
        message_date=parse_datetime(required_text(info, "messageDate"), local_zone),
        sender_id=required_text(info, "sender/senderId"),
        password=info.findtext("sender/password"),
        properties=properties,
        document=document_in(operation.find("request/requestData/data"), limits),
    )


def _response(outcome: Outcome, namespace: str, message_id: str) -> web.Response:
    E = etree.SubElement
    root = etree.Element(f"{{{namespace}}}SendMessageResponse", nsmap={"ns": namespace})
    response = E(root, "response")
    info = E(response, "responseInfo")
    E(info, "messageId").text = str(uuid.uuid4())
    E(info, "correlationId").text = message_id
    E(info, "responseDate").text = now_iso()
    status = E(info, "status")
    E(status, "code").text = SUCCESS_CODE
    E(status, "message").text = SUCCESS_MESSAGE
    E(info, "sessionId").text = outcome.application.id
    receipt = outcome.application.receipt
    # A long-running (async) service answers with the receipt now; its result follows in the cabinet.
    data = outcome.result if outcome.result is not None else receipt
    if data is not None:  # no xsi:type on data: zeep returns the child elements only when it is absent
        E(E(response, "responseData"), "data").append(own_xml(data))
    # SyncChannel's body has no slot for the receipt; a SOAP header carries it (clients may ignore it).
    return respond(root, own_xml(receipt) if receipt else None)
