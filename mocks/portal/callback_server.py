"""The portal's IAsyncChannelClient: where the gateway pushes answers (sendMessage) and status changes
(changeMassageStatusNotification, spelt as in SHEP), both in ``.../AsyncChannel/v10/Types/Client``. Each push is
checked against the client-side schema (a non-conforming one is refused with 400 and noted in ``invalid``).
Keeps what it received, for the demo and tests.

``POST /shep/client`` SOAP; ``GET /received`` JSON of what arrived; ``POST /_control/fail {"count": N}``
makes the next N pushes fail with 503 (to see the gateway retry), ``{"count": N, "answers": true}`` the next N
answer pushes (sendMessage) only, status notifications passing.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from lxml import etree

import schemas
from signing.xmlsafe import UnsafeXmlError, XmlLimits, detach, parse_untrusted

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
CLIENT_NS = schemas.ASYNC_CLIENT_NS


@dataclass
class Received:
    """Everything the gateway pushed."""

    answers: list[dict[str, object]] = field(default_factory=list)
    """sendMessage calls: messageId, correlationId, serviceId, type, requestMessageId, the data document, and the
    SHA-256 of the HTTP body as it arrived."""
    statuses: list[dict[str, str]] = field(default_factory=list)
    "changeMassageStatusNotification calls."
    fail_next: int = 0
    "Pushes still to refuse with 503."
    fail_answers: int = 0
    "Answer pushes (sendMessage) still to refuse with 503; status notifications pass."
    invalid: list[str] = field(default_factory=list)
    "Why pushes that did not conform to the client-side schema were refused."


RECEIVED = web.AppKey("received", Received)


@functools.cache
def _client_schema() -> etree.XMLSchema:
    return schemas.load_xml_schema(schemas.ASYNC_CLIENT_XSD)


def _properties(info: etree._Element) -> dict[str, str]:
    return {p.findtext("key", ""): p.findtext("value", "") for p in info.iterfind("properties")}


def _take_answer(received: Received, request_part: etree._Element, raw: bytes) -> etree._Element:
    info = request_part.find("messageInfo")
    data = request_part.find("messageData/data")
    document = next((detach(child) for child in data if isinstance(child.tag, str)), None) if data is not None \
        else None
    received.answers.append({
        "messageId": info.findtext("messageId"), "correlationId": info.findtext("correlationId"),
        "serviceId": info.findtext("serviceId"), "messageType": info.findtext("messageType"),
        "requestMessageId": _properties(info).get("requestMessageId"),
        "document": etree.tostring(document, encoding="unicode") if document is not None else None,
        "sha256": hashlib.sha256(raw).hexdigest(),
    })
    answer = etree.Element(f"{{{CLIENT_NS}}}sendMessageResponse", nsmap={"ns": CLIENT_NS})
    response = etree.SubElement(answer, "response")
    etree.SubElement(response, "messageId").text = info.findtext("messageId")
    etree.SubElement(response, "correlationId").text = info.findtext("correlationId")
    etree.SubElement(response, "responseDate").text = datetime.now(UTC).isoformat()
    return answer


def _take_status(received: Received, request_part: etree._Element) -> etree._Element:
    notification = request_part.find("notification")
    received.statuses.append({
        "notificationId": notification.findtext("notificationId", ""),
        "messageId": notification.findtext("messageId", ""),
        "messageState": notification.findtext("messageState", ""),
        "statusCode": notification.findtext("status/statusCode", ""),
        "notificationDate": notification.findtext("notificationDate", ""),
        "errorCode": notification.findtext("error/errorCode", ""),
    })
    answer = etree.Element(f"{{{CLIENT_NS}}}changeMassageStatusNotificationResponse", nsmap={"ns": CLIENT_NS})
    response = etree.SubElement(answer, "response")
    etree.SubElement(response, "responseDate").text = datetime.now(UTC).isoformat()
    etree.SubElement(response, "sessionId").text = request_part.findtext("sessionId") or "portal"
    return answer


async def client_endpoint(request: web.Request) -> web.Response:
    """One callback, checked against the client-side schema: a message that does not conform is a 400."""
    received = request.app[RECEIVED]
    if received.fail_next > 0:
        received.fail_next -= 1
        return web.Response(status=503, text="portal busy")
    raw = await request.read()
    try:
        envelope = parse_untrusted(raw, XmlLimits(max_bytes=8 * 1024 * 1024))
    except UnsafeXmlError as exc:
        return web.Response(status=400, text=exc.detail)
    body = envelope.find(f"{{{SOAP_ENV}}}Body")
    operation = body[0] if body is not None and len(body) else None
    if operation is None:
        return web.Response(status=400, text="empty body")
    schema = _client_schema()
    if not schema.validate(operation):
        received.invalid.append(str(schema.error_log.last_error))
        return web.Response(status=400, text=f"not an IAsyncChannelClient message: {schema.error_log.last_error}")
    name = etree.QName(operation).localname
    if name == "sendMessage" and received.fail_answers > 0:
        received.fail_answers -= 1
        return web.Response(status=503, text="portal busy")
    request_part = operation.find("request")
    answer = _take_answer(received, request_part, raw) if name == "sendMessage" \
        else _take_status(received, request_part)
    out = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(out, f"{{{SOAP_ENV}}}Body").append(answer)
    return web.Response(body=etree.tostring(out, xml_declaration=True, encoding="UTF-8"), content_type="text/xml")


async def received_endpoint(request: web.Request) -> web.Response:
    received = request.app[RECEIVED]
    return web.json_response({"answers": received.answers, "statuses": received.statuses,
                              "invalid": received.invalid})


async def control_fail(request: web.Request) -> web.Response:
    data = await request.json()
    received = request.app[RECEIVED]
    if data.get("answers"):
        received.fail_answers = int(data.get("count", 1))
    else:
        received.fail_next = int(data.get("count", 1))
    return web.json_response({"fail_next": received.fail_next, "fail_answers": received.fail_answers})


def create_callback_app() -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[RECEIVED] = Received()
    app.router.add_post("/shep/client", client_endpoint)
    app.router.add_get("/received", received_endpoint)
    app.router.add_post("/_control/fail", control_fail)
    return app
