"""SHEP AsyncChannel v10 intake at ``/shep/async``: sendMessage, getMessages, getMessageStatus,
sendDeliveryNotification (WSDL at ``?wsdl``).

``sendMessage`` accepts any service for background delivery and answers at once with the gateway's
``correlationId``; the answer comes back through ``getMessages`` (or the sender's callback), its
progress through ``getMessageStatus``. Both spellings of the types namespace are accepted.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from aiohttp import web
from lxml import etree

import schemas
from gateway.access.senders import AuthenticatedSender
from gateway.delivery.callbacks import INBOX_LEASE_SECONDS
from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.intake.pipeline import SUCCESS_CODE, IntakeRequest, Outcome, new_session_id
from gateway.intake.reading import parse_datetime
from gateway.intake.soap_io import (
    RAW_BODY,
    body_of,
    document_in,
    fault,
    read_operation,
    required,
    required_text,
    respond,
    validate,
)
from gateway.shep.envelope import now_iso
from gateway.shep.messages import async_message, message_state
from gateway.web.problems import language_of
from signing.xmlsafe import XmlLimits

log = logging.getLogger("egov.async")
_NAMESPACES = (schemas.ASYNC_TYPES_NS, schemas.ASYNC_TYPES_NS_UPPER)
_OPERATIONS = ("sendMessage", "getMessages", "getMessageStatus", "sendDeliveryNotification")
_MAX_BATCH = 100
_DEFAULT_BATCH = 10
_SCHEMAS: dict[str, etree.XMLSchema] = {}
_LOGGED = web.RequestKey("async_logged", tuple[IntakeRequest, Outcome])
"A sendMessage's request and outcome, for logging its answer once it is built."
_STATUS_MESSAGES = {
    "ON_DELIVERY": "The message is being delivered", "DELIVERED": "The message was delivered",
    "NOT_DELIVERED": "The message could not be delivered", "DELIVERY_STOPPED": "Delivery was stopped",
}


def _schema_for(namespace: str) -> etree.XMLSchema:
    if namespace not in _SCHEMAS:
        alias = None if namespace == schemas.ASYNC_TYPES_NS else (schemas.ASYNC_TYPES_NS, namespace)
        _SCHEMAS[namespace] = schemas.load_xml_schema(schemas.ASYNC_TYPES_XSD, namespace_alias=alias)
    return _SCHEMAS[namespace]


def preload_schemas() -> None:
    for namespace in _NAMESPACES:
        _schema_for(namespace)


async def handle_wsdl(request: web.Request) -> web.Response:
    if "wsdl" not in request.query:
        raise web.HTTPMethodNotAllowed("GET", ["POST"])
    base = request.app[INTAKE].settings.base_url
    return web.Response(body=schemas.async_channel_wsdl(f"{base}/shep/async"), content_type="text/xml",
                        charset="utf-8")


async def handle(request: web.Request) -> web.Response:
    components = request.app[INTAKE]
    limits = components.settings.limits
    xml_limits = XmlLimits(limits.max_body_bytes, limits.max_xml_depth, limits.max_xml_elements)
    language, session_id, namespace = language_of(request), new_session_id(), schemas.ASYNC_TYPES_NS
    try:
        # The in-flight gate, before anything is read. The operation is only known from the body (soapAction
        # is ""), so every AsyncChannel call takes a slot; the ones other than sendMessage are short.
        with components.pipeline.admit():
            operation = await read_operation(request, xml_limits, _NAMESPACES, _OPERATIONS)
            namespace = etree.QName(operation).namespace or namespace
            answer = await _dispatch(request, operation, namespace, session_id, xml_limits)
            response = respond(answer)
            if _LOGGED in request:
                intake, outcome = request[_LOGGED]
                await components.pipeline.log_answer(intake, outcome, body_of(response))
    except GatewayError as error:
        return fault(error, language, session_id, f"{{{namespace}}}AsyncChannelFault")
    except Exception:  # never a stack trace to the caller
        log.exception("unexpected error in %s", session_id)
        return fault(GatewayError("GATEWAY_INTERNAL"), language, session_id, f"{{{namespace}}}AsyncChannelFault")
    return response


async def _dispatch(request: web.Request, operation: etree._Element, namespace: str, session_id: str,
                    limits: XmlLimits) -> etree._Element:
    validate(_schema_for(namespace), operation)
    name, body = etree.QName(operation).localname, required(operation, "request")
    if name == "sendMessage":
        return await _send_message(request, body, namespace, session_id, limits)
    if name == "getMessages":
        return await _get_messages(request, body, namespace, session_id)
    if name == "getMessageStatus":
        return await _get_message_status(request, body, namespace)
    return await _delivery_notification(request, body, namespace)


async def _authenticate(request: web.Request, sender: etree._Element | None) -> AuthenticatedSender:
    if sender is None:
        raise GatewayError("CLIENT_BAD_CREDENTIALS", "sender is required")
    return await request.app[INTAKE].senders.authenticate(sender.findtext("senderId", ""),
                                                          sender.findtext("password"), client=request.remote)


def _wrapper(namespace: str, name: str) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(f"{{{namespace}}}{name}", nsmap={"ns": namespace})
    return root, etree.SubElement(root, "response")


async def _send_message(request: web.Request, body: etree._Element, namespace: str, session_id: str,
                        limits: XmlLimits) -> etree._Element:
    info = required(body, "messageInfo")
    if info.findtext("messageType") != "REQUEST":
        raise GatewayError("CLIENT_UNKNOWN_OPERATION", "only messageType REQUEST is accepted from senders")
    intake = IntakeRequest(
        channel="soap-async",
        message_id=required_text(info, "messageId"),
        correlation_id=info.findtext("SenderCorrelationId") or info.findtext("correlationId"),
        service_id=required_text(info, "serviceId"),
        message_date=parse_datetime(required_text(info, "messageDate")),
        sender_id=required_text(info, "sender/senderId"),
        password=info.findtext("sender/password"),
        properties={p.findtext("key", ""): p.findtext("value", "") for p in info.iterfind("properties")},
        document=document_in(body.find("messageData/data"), limits),
    )
    outcome = await request.app[INTAKE].pipeline.process(intake, session_id, asynchronous=True, client=request.remote,
                                                         raw=request.get(RAW_BODY))
    request[_LOGGED] = (intake, outcome)  # its answer goes into the message log once it is built
    app = outcome.application
    root, response = _wrapper(namespace, "sendMessageResponse")
    E = etree.SubElement
    E(response, "messageId").text = str(uuid.uuid4())
    E(response, "correlationId").text = app.gateway_correlation_id or app.id
    E(response, "responseDate").text = now_iso()
    E(response, "sessionId").text = app.id
    return root


async def _get_messages(request: web.Request, body: etree._Element, namespace: str,
                        session_id: str) -> etree._Element:
    components = request.app[INTAKE]
    sender = await _authenticate(request, body.find("sender"))
    service_id = body.findtext("serviceId", "")
    service = components.registry.get(service_id)
    if service is None:
        raise GatewayError("CLIENT_UNKNOWN_SERVICE")
    if not (sender.may_call(service_id) and service.admits(sender.sender_id)):
        raise GatewayError("CLIENT_ACCESS_DENIED")
    amount = min(_MAX_BATCH, int(body.findtext("amount") or _DEFAULT_BATCH))
    inbox = components.notifier.inbox(sender.sender_id, service_id)
    root, response = _wrapper(namespace, "getMessagesResponse")
    E = etree.SubElement
    E(response, "responseDate").text = now_iso()
    E(response, "sessionId").text = session_id
    for app_id in await inbox.lease(lease_seconds=INBOX_LEASE_SECONDS, count=amount):
        app = await components.store.get(app_id)
        if app is None or app.sender_id != sender.sender_id:
            await inbox.done(app_id)
            continue
        async_message(response, "messages", app)
    return root


async def _get_message_status(request: web.Request, body: etree._Element, namespace: str) -> etree._Element:
    components = request.app[INTAKE]
    sender = await _authenticate(request, body.find("sender"))
    app = await components.store.find_by_message(sender.sender_id, body.findtext("messageId", ""))
    if app is None:
        raise GatewayError("CLIENT_NOT_FOUND", "no message with this messageId from this sender")
    state = message_state(app)
    root, response = _wrapper(namespace, "getMessageStatusResponse")
    E = etree.SubElement
    E(response, "messageState").text = state
    status = E(response, "status")
    E(status, "code").text = app.error_code or SUCCESS_CODE
    E(status, "message").text = f"{_STATUS_MESSAGES[state]} (application {app.status})"[:250]
    E(response, "responseDate").text = now_iso()
    return root


async def _delivery_notification(request: web.Request, body: etree._Element, namespace: str) -> etree._Element:
    components = request.app[INTAKE]
    sender = await _authenticate(request, body.find("sender"))
    notification = required(body, "notification")
    app = await components.store.get(notification.findtext("messageId", ""))
    if app is None or app.sender_id != sender.sender_id:
        raise GatewayError("CLIENT_NOT_FOUND", "no answer with this messageId was sent to this sender")
    status = required(notification, "deliveryStatus")
    inbox = components.notifier.inbox(app.sender_id, app.service_id)
    if status.findtext("receiveStatus") == "MESSAGE_ACCEPTED":
        await inbox.done(app.id)
        await components.lifecycle.note(app, "the sender confirmed it received the answer")
    elif status.findtext("resendMessage") == "RESEND":
        await inbox.schedule(app.id)
        await components.lifecycle.note(app, "the sender could not take the answer and asked for it again")
    else:
        await inbox.done(app.id)
        await components.lifecycle.note(app, "the sender refused the answer and asked not to resend it")
    root, response = _wrapper(namespace, "sendDeliveryNotificationResponse")
    etree.SubElement(response, "responseDate").text = datetime.now(UTC).isoformat(timespec="milliseconds")
    return root
