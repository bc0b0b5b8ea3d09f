"""The portal's IAsyncChannelClient: where the gateway pushes answers (sendMessage) and status changes
(changeMassageStatusNotification, spelt as in SHEP). Keeps what it received, for the demo and tests.

``POST /shep/client`` SOAP; ``GET /received`` JSON of what arrived; ``POST /_control/fail {"count": N}``
makes the next N pushes fail with 503 (to see the gateway retry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from lxml import etree

from signing.xmlsafe import UnsafeXmlError, XmlLimits, detach, parse_untrusted

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass
class Received:
    """Everything the gateway pushed."""

    answers: list[dict[str, object]] = field(default_factory=list)
    "sendMessage calls: messageId, correlationId, serviceId, type, the data document."
    statuses: list[dict[str, str]] = field(default_factory=list)
    "changeMassageStatusNotification calls."
    fail_next: int = 0
    "Pushes still to refuse with 503."


RECEIVED = web.AppKey("received", Received)


async def client_endpoint(request: web.Request) -> web.Response:
    received = request.app[RECEIVED]
    if received.fail_next > 0:
        received.fail_next -= 1
        return web.Response(status=503, text="portal busy")
    try:
        envelope = parse_untrusted(await request.read(), XmlLimits(max_bytes=8 * 1024 * 1024))
    except UnsafeXmlError as exc:
        return web.Response(status=400, text=exc.detail)
    body = envelope.find(f"{{{SOAP_ENV}}}Body")
    operation = body[0] if body is not None and len(body) else None
    if operation is None:
        return web.Response(status=400, text="empty body")
    name, namespace = etree.QName(operation).localname, etree.QName(operation).namespace
    request_part = operation.find("request")
    if name == "sendMessage":
        info = request_part.find("messageInfo")
        data = request_part.find("messageData/data")
        document = next((detach(child) for child in data if isinstance(child.tag, str)), None) if data is not None \
            else None
        received.answers.append({
            "messageId": info.findtext("messageId"), "correlationId": info.findtext("correlationId"),
            "serviceId": info.findtext("serviceId"), "messageType": info.findtext("messageType"),
            "senderCorrelationId": info.findtext("SenderCorrelationId"),
            "document": etree.tostring(document, encoding="unicode") if document is not None else None,
        })
        answer = etree.Element(f"{{{namespace}}}sendMessageResponse", nsmap={"ns": namespace})
        response = etree.SubElement(answer, "response")
        etree.SubElement(response, "messageId").text = info.findtext("messageId")
        etree.SubElement(response, "correlationId").text = info.findtext("correlationId")
        etree.SubElement(response, "responseDate").text = datetime.now(UTC).isoformat()
    elif name == "changeMassageStatusNotification":
        received.statuses.append({key: request_part.findtext(key) or "" for key in
                                  ("messageId", "correlationId", "messageState", "statusDate")})
        answer = etree.Element(f"{{{namespace}}}changeMassageStatusNotificationResponse", nsmap={"ns": namespace})
        etree.SubElement(etree.SubElement(answer, "response"), "responseDate").text = datetime.now(UTC).isoformat()
    else:
        return web.Response(status=400, text=f"unknown operation {name}")
    out = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(out, f"{{{SOAP_ENV}}}Body").append(answer)
    return web.Response(body=etree.tostring(out, xml_declaration=True, encoding="UTF-8"), content_type="text/xml")


async def received_endpoint(request: web.Request) -> web.Response:
    received = request.app[RECEIVED]
    return web.json_response({"answers": received.answers, "statuses": received.statuses})


async def control_fail(request: web.Request) -> web.Response:
    data = await request.json()
    request.app[RECEIVED].fail_next = int(data.get("count", 1))
    return web.json_response({"fail_next": request.app[RECEIVED].fail_next})


def create_callback_app() -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[RECEIVED] = Received()
    app.router.add_post("/shep/client", client_endpoint)
    app.router.add_get("/received", received_endpoint)
    app.router.add_post("/_control/fail", control_fail)
    return app
