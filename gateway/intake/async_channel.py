"""SHEP AsyncChannel v10 intake at ``/shep/async``: sendMessage, getMessages, getMessageStatus,
sendDeliveryNotification (WSDL at ``?wsdl``), shaped as the public v10 schema (docs/shep.md).

``sendMessage`` accepts any service for background delivery and answers at once with the message's
``messageId`` (assigned when the sender sent none) and the exchange's ``correlationId``; the answer comes
back through ``getMessages`` (or the sender's callback), its progress through ``getMessageStatus``.
Operations are read in ``.../v10/Types`` and, as real clients mix them, in ``.../v10/types``; the answer
and the fault (``<op>Fault1_<op>Fault``) use the request's spelling.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid

from aiohttp import web
from lxml import etree
from redis.exceptions import RedisError

import schemas
from gateway.access.senders import AuthenticatedSender
from gateway.delivery.callbacks import INBOX_LEASE_SECONDS
from gateway.errors import GatewayError
from gateway.intake.context import INTAKE, IntakeContext
from gateway.intake.pipeline import SUCCESS_CODE, IntakeRequest, Outcome, new_session_id
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
from gateway.lifecycle.application import Application
from gateway.lifecycle.archive import unreadable_refused
from gateway.messagelog import deliveries
from gateway.monitor.metrics import observe_request
from gateway.shep.envelope import now_iso
from gateway.shep.messages import answer_correlation_id, async_message, message_state, status_info
from gateway.web.problems import language_of
from signing.xmlsafe import XmlLimits

log = logging.getLogger("egov.async")
_NAMESPACES = (schemas.ASYNC_OPERATIONS_NS, schemas.ASYNC_TYPES_NS)
_OPERATIONS = ("sendMessage", "getMessages", "getMessageStatus", "sendDeliveryNotification")
_MAX_BATCH = 100
_DEFAULT_BATCH = 10
_SCAN = 1000
"Most due answers a getMessages filtered by correlationId looks through."
_LOGGED = web.RequestKey("async_logged", tuple[IntakeRequest, Outcome])
"A sendMessage's request and outcome, for logging its answer once it is built."
_HANDED_OVER = web.RequestKey("async_handed_over", list[Application])
"The applications whose results a getMessages answer holds, for logging their delivery once it is built."


@functools.cache
def _schema() -> etree.XMLSchema:
    """The operations schema (it imports the types and the common types), compiled once per process."""
    return schemas.load_xml_schema(schemas.ASYNC_OPERATIONS_XSD)


def preload_schemas() -> None:
    _schema()


def fault_name(operation: str) -> str:
    """The fault detail element of an operation, as the public v10 schema names it."""
    return f"{operation}Fault1_{operation}Fault"


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
    language, session_id = language_of(request), new_session_id()
    namespace, name = schemas.ASYNC_OPERATIONS_NS, "sendMessage"  # the fault of a request not understood
    started, code, service_id = time.perf_counter(), SUCCESS_CODE, None
    try:
        # The in-flight gate, before anything is read. The operation is only known from the body (soapAction
        # is ""), so every AsyncChannel call takes a slot; the ones other than sendMessage are short.
        with components.pipeline.admit():
            message = await read_message(request, xml_limits, _NAMESPACES, _OPERATIONS)
            operation = message.operation
            qname = etree.QName(operation)
            namespace, name = qname.namespace or namespace, qname.localname
            # The metrics' service label: sendMessage names it in messageInfo, getMessages in the request.
            service_id = operation.findtext("request/messageInfo/serviceId") or operation.findtext("request/serviceId")
            answer = await _dispatch(request, operation, namespace, session_id, xml_limits)
            response = respond(answer)
            if _LOGGED in request:
                intake, outcome = request[_LOGGED]
                await components.pipeline.log_answer(intake, outcome, body_of(response))
            if request.get(_HANDED_OVER):
                await _log_handed_over(components, request[_HANDED_OVER], body_of(response))
        return response
    except GatewayError as error:
        code = error.code
        return fault(error, language, session_id, f"{{{namespace}}}{fault_name(name)}")
    except Exception:  # never a stack trace to the caller
        log.exception("unexpected error in %s", session_id)
        code = "GATEWAY_INTERNAL"
        return fault(GatewayError(code), language, session_id, f"{{{namespace}}}{fault_name(name)}")
    finally:
        observe_request("soap-async", service_label(components.registry, service_id), code, started)


async def _dispatch(request: web.Request, operation: etree._Element, namespace: str, session_id: str,
                    limits: XmlLimits) -> etree._Element:
    name = etree.QName(operation).localname
    # One schema, in the public spelling: a request in .../v10/types is read as if it were in .../v10/Types.
    operation.tag = f"{{{schemas.ASYNC_OPERATIONS_NS}}}{name}"
    drop_data_type(operation.find("request/messageData/data"))
    validate(_schema(), operation)
    body = required(operation, "request")
    if name == "sendMessage":
        return await _send_message(request, body, namespace, session_id, limits)
    if name == "getMessages":
        return await _get_messages(request, body, namespace, session_id)
    if name == "getMessageStatus":
        return await _get_message_status(request, body, namespace)
    return await _delivery_notification(request, body, namespace, session_id)


async def _authenticate(request: web.Request, sender: etree._Element | None) -> AuthenticatedSender:
    if sender is None:
        raise GatewayError("CLIENT_BAD_CREDENTIALS", "sender is required")
    return await request.app[INTAKE].senders.authenticate(sender.findtext("senderId", ""),
                                                          sender.findtext("password"), client=request.remote,
                                                          signed_by=signed_by(request))


def _wrapper(namespace: str, name: str) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(f"{{{namespace}}}{name}", nsmap={"ns": namespace})
    return root, etree.SubElement(root, "response")


async def _send_message(request: web.Request, body: etree._Element, namespace: str, session_id: str,
                        limits: XmlLimits) -> etree._Element:
    info = required(body, "messageInfo")
    if info.findtext("messageType") != "REQUEST":
        raise GatewayError("CLIENT_UNKNOWN_OPERATION", "only messageType REQUEST is accepted from senders")
    components = request.app[INTAKE]
    intake = IntakeRequest(
        channel="soap-async",
        message_id=info.findtext("messageId") or str(uuid.uuid4()),  # optional: the gateway names it then
        correlation_id=info.findtext("correlationId"),
        service_id=required_text(info, "serviceId"),
        message_date=parse_datetime(required_text(info, "messageDate"), components.settings.shep.zone()),
        sender_id=required_text(info, "sender/senderId"),
        password=info.findtext("sender/password"),
        properties={p.findtext("key", ""): p.findtext("value", "") for p in info.iterfind("properties")},
        document=document_in(body.find("messageData/data"), limits),
    )
    outcome = await components.pipeline.process(intake, session_id, asynchronous=True, client=request.remote,
                                                signed_by=signed_by(request), raw=request.get(RAW_BODY))
    request[_LOGGED] = (intake, outcome)  # its answer goes into the message log once it is built
    app = outcome.application
    root, response = _wrapper(namespace, "sendMessageResponse")
    E = etree.SubElement
    E(response, "messageId").text = app.message_id
    E(response, "correlationId").text = answer_correlation_id(app)
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
    root, response = _wrapper(namespace, "getMessagesResponse")
    E = etree.SubElement
    E(response, "responseDate").text = now_iso()
    E(response, "sessionId").text = session_id
    apps = await _take_answers(components, sender.sender_id, service_id, body, amount)
    for app in apps:
        async_message(response, "messages", app)
    request[_HANDED_OVER] = apps  # their delivery goes into the message log once the answer is built
    return root


async def _log_handed_over(components: IntakeContext, apps: list[Application], body: bytes) -> None:
    """Each result of a getMessages answer as delivered, before the answer is sent; when the log cannot take
    them the answer is GATEWAY_STORAGE_UNAVAILABLE (the leased results come back when their lease ends)."""
    messagelog = components.pipeline.messagelog
    if messagelog is None or not messagelog.enabled:
        return
    try:
        await messagelog.append(*deliveries.handed_over(apps, body))
    except RedisError as exc:
        log.warning("getMessages delivery of %d result(s) not logged: %s", len(apps), type(exc).__name__)
        raise GatewayError("GATEWAY_STORAGE_UNAVAILABLE", type(exc).__name__) from None


async def _take_answers(components: IntakeContext, sender_id: str, service_id: str, body: etree._Element,
                        amount: int) -> list[Application]:
    """Lease up to ``amount`` answers of the inbox; ``messageId`` / ``correlationId`` narrow them down.

    ``messageId`` is the answer's (the session id) or the sender's own request's; ``correlationId`` the
    exchange's or the sender's own. ``requestDate`` is only the request's date: it selects nothing."""
    inbox = components.notifier.inbox(sender_id, service_id)
    message_id, correlation_id = body.findtext("messageId"), body.findtext("correlationId")
    if message_id is None and correlation_id is None:
        apps = []
        for app_id in await inbox.lease(lease_seconds=INBOX_LEASE_SECONDS, count=amount):
            app = await components.store.get(app_id)
            if app is None or app.sender_id != sender_id:
                await inbox.done(app_id)
                continue
            apps.append(app)
        return apps
    if message_id is not None:
        app = await components.store.get(message_id) or await components.store.find_by_message(sender_id, message_id)
        candidates = [app.id] if app is not None else []
    else:
        candidates = await inbox.due(count=_SCAN)
    taken: list[Application] = []
    for app_id in candidates:
        app = await components.store.get(app_id)
        if app is None or app.sender_id != sender_id or app.service_id != service_id:
            continue
        if message_id is not None and message_id not in (app.id, app.message_id):
            continue
        if correlation_id is not None and correlation_id not in (answer_correlation_id(app), app.correlation_id):
            continue
        if await inbox.lease_member(app.id, lease_seconds=INBOX_LEASE_SECONDS):
            taken.append(app)
            if len(taken) >= amount:
                break
    return taken


async def _get_message_status(request: web.Request, body: etree._Element, namespace: str) -> etree._Element:
    components = request.app[INTAKE]
    sender = await _authenticate(request, body.find("sender"))
    message_id = body.findtext("messageId", "")
    app = await components.store.find_by_message(sender.sender_id, message_id)
    archive = components.pipeline.archive
    if app is None and archive is not None:  # it left Redis after the retention
        with unreadable_refused():
            found = await archive.find(sender.sender_id, message_id)
        app = found.application if found is not None else None
    if app is None:
        raise GatewayError("CLIENT_NOT_FOUND", "no message with this messageId from this sender")
    root, response = _wrapper(namespace, "getMessageStatusResponse")
    E = etree.SubElement
    E(response, "messageState").text = message_state(app)
    status_info(response, "status", app)
    E(response, "responseDate").text = now_iso()
    E(response, "sessionId").text = app.id
    return root


async def _delivery_notification(request: web.Request, body: etree._Element, namespace: str,
                                 session_id: str) -> etree._Element:
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
    E = etree.SubElement
    E(response, "notificationId").text = str(uuid.uuid4())
    E(response, "responseDate").text = now_iso()
    E(response, "sessionId").text = session_id
    return root
