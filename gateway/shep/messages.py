"""SHEP AsyncChannel messages the gateway writes: an answer as ``AsyncMessageInfo`` + ``messageData``, a
``MessageStatusInfo``, and the ``messageState`` an application's status maps to. Used by ``getMessages``,
``getMessageStatus`` and the callbacks alike, so the shapes are the same wherever a client meets them."""

from __future__ import annotations

import uuid

from lxml import etree

from gateway.errors import CATALOGUE
from gateway.lifecycle.application import Application, Status
from gateway.shep.envelope import now_iso, own_xml

GATEWAY_SENDER = "egov-gateway"
SUCCESS_CODE = "SCSS001"
REQUEST_MESSAGE_ID = "requestMessageId"
"Property of an answer carrying the messageId the sender's request had (the schema has no element for it)."

MESSAGE_STATES = {
    Status.ACCEPTED: "ON_DELIVERY", Status.ROUTED: "ON_DELIVERY", Status.IN_PROGRESS: "DELIVERED",
    Status.COMPLETED: "DELIVERED", Status.REFUSED: "DELIVERED", Status.FAILED: "NOT_DELIVERED",
    Status.STOPPED: "DELIVERY_STOPPED",
}
_STATE_MESSAGES = {
    "ON_DELIVERY": "The message is being delivered", "DELIVERED": "The message was delivered",
    "NOT_DELIVERED": "The message could not be delivered", "DELIVERY_STOPPED": "Delivery was stopped",
}


def message_state(app: Application) -> str:
    return MESSAGE_STATES[app.status]


def answer_correlation_id(app: Application) -> str:
    """The correlationId of an async exchange: the one ``sendMessage`` answered with."""
    return app.gateway_correlation_id or app.id


def status_info(parent: etree._Element, tag: str, app: Application) -> etree._Element:
    """A ``MessageStatusInfo`` (statusCode, statusMessage, statusDate) of ``app``."""
    E = etree.SubElement
    status = E(parent, tag)
    E(status, "statusCode").text = app.error_code or SUCCESS_CODE
    E(status, "statusMessage").text = f"{_STATE_MESSAGES[message_state(app)]} (application {app.status})"
    E(status, "statusDate").text = app.updated_at
    return status


def async_message(parent: etree._Element, tag: str, app: Application) -> etree._Element:
    """An AsyncMessageInfo + messageData carrying ``app``'s answer (RESPONSE) or failure (NOTIFICATION).

    ``messageId`` is the application's session id (one answer per application), ``correlationId`` the
    exchange's, and the properties say ``status``, ``errorCode`` for a failure, and ``requestMessageId``."""
    E = etree.SubElement
    message = E(parent, tag)
    info = E(message, "messageInfo")
    E(info, "messageId").text = app.id
    E(info, "correlationId").text = answer_correlation_id(app)
    E(info, "serviceId").text = app.service_id
    E(info, "messageType").text = "RESPONSE" if app.result else "NOTIFICATION"
    E(info, "messageDate").text = app.updated_at
    E(E(info, "sender"), "senderId").text = GATEWAY_SENDER
    for key, value in (("status", str(app.status)), ("errorCode", app.error_code),
                       (REQUEST_MESSAGE_ID, app.message_id)):
        if value:
            prop = E(info, "properties")
            E(prop, "key").text = key
            E(prop, "value").text = value
    E(info, "sessionId").text = app.id
    data = E(E(message, "messageData"), "data")
    if app.result:
        data.append(own_xml(app.result))
    return message


def change_status_notification(parent: etree._Element, app: Application, session_id: str | None = None) -> None:
    """The ``request`` of a ``changeMassageStatusNotification`` callback (an ``AsyncChangeStatusNotifyRequest``):
    a ``ChangeStatusNotification`` of the sender's message (its own ``messageId``), ``requestDate``, ``sessionId``.
    A failed application adds ``error`` (``ErrorInfo``) with its code and English message."""
    E = etree.SubElement
    request = E(parent, "request")
    notification = E(request, "notification")
    E(notification, "notificationId").text = str(uuid.uuid4())
    E(notification, "messageId").text = app.message_id
    E(notification, "notificationDate").text = now_iso()
    E(notification, "messageState").text = message_state(app)
    status_info(notification, "status", app)
    if app.error_code:
        error = E(notification, "error")
        E(error, "errorCode").text = app.error_code
        spec = CATALOGUE.get(app.error_code)
        E(error, "errorMessage").text = spec.message("en") if spec else app.error_code
        E(error, "errorDate").text = app.updated_at
        E(error, "sessionId").text = app.id
    E(request, "requestDate").text = now_iso()
    E(request, "sessionId").text = session_id or app.id
