"""SHEP AsyncChannel messages the gateway writes: an answer as ``AsyncMessageInfo`` + ``messageData``, and the
``messageState`` an application's status maps to. Used by ``getMessages`` and by the callbacks alike."""

from __future__ import annotations

from lxml import etree

from gateway.lifecycle.application import Application, Status
from gateway.shep.envelope import own_xml

GATEWAY_SENDER = "egov-gateway"


MESSAGE_STATES = {
    Status.ACCEPTED: "ON_DELIVERY", Status.ROUTED: "ON_DELIVERY", Status.IN_PROGRESS: "DELIVERED",
    Status.COMPLETED: "DELIVERED", Status.REFUSED: "DELIVERED", Status.FAILED: "NOT_DELIVERED",
    Status.STOPPED: "DELIVERY_STOPPED",
}


def message_state(app: Application) -> str:
    return MESSAGE_STATES[app.status]


def async_message(parent: etree._Element, tag: str, app: Application) -> etree._Element:
    """An AsyncMessageInfo + messageData carrying ``app``'s answer (RESPONSE) or failure (NOTIFICATION)."""
    E = etree.SubElement
    message = E(parent, tag)
    info = E(message, "messageInfo")
    E(info, "messageId").text = app.id  # one answer per application: its session id names it
    E(info, "correlationId").text = app.gateway_correlation_id or app.id
    E(info, "serviceId").text = app.service_id
    E(info, "messageType").text = "RESPONSE" if app.result else "NOTIFICATION"
    E(info, "messageDate").text = app.updated_at
    E(E(info, "sender"), "senderId").text = GATEWAY_SENDER
    for key, value in (("status", str(app.status)), ("errorCode", app.error_code)):
        if value:
            prop = E(info, "properties")
            E(prop, "key").text = key
            E(prop, "value").text = value
    E(info, "sessionId").text = app.id
    E(info, "SenderCorrelationId").text = app.message_id
    data = E(E(message, "messageData"), "data")
    if app.result:
        data.append(own_xml(app.result))
    return message
