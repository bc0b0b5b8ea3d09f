"""AsyncChannel and delivery: nothing acknowledged is lost, a back-end that fails is retried and its breaker
opens and closes, a full gateway says 503, answers reach the portal by getMessages and by callback."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from lxml import etree

from mocks.library import parse_ticket
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from mocks.portal.callback_server import RECEIVED
from tests.helpers import (
    FLAKY_SERVICE,
    PORTAL,
    PORTAL_PASSWORD,
    PULL,
    PULL_PASSWORD,
    SOAP_ENV,
    message_id,
    second_gateway,
    send_soap,
    trusting_verifier,
    wait_for,
)

ASYNC = "http://bip.bee.kz/AsyncChannel/v10/Types"


def envelope(operation: str, body: str) -> bytes:
    return (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:a="{ASYNC}"><soap:Body><a:{operation}><request>{body}'
            f"</request></a:{operation}></soap:Body></soap:Envelope>").encode()


PUSHED = f"<sender><senderId>{PORTAL}</senderId><password>{PORTAL_PASSWORD}</password></sender>"
SENDER = f"<sender><senderId>{PULL}</senderId><password>{PULL_PASSWORD}</password></sender>"  # no callback


def send_message(document: etree._Element, *, mid: str, service: str = READER_TICKET_SERVICE,
                 sender: str = SENDER) -> bytes:
    return envelope("sendMessage", f"""<messageInfo><messageId>{mid}</messageId><serviceId>{service}</serviceId>
        <messageType>REQUEST</messageType><messageDate>{datetime.now(UTC).isoformat()}</messageDate>{sender}
        </messageInfo><messageData><data>{etree.tostring(document, encoding="unicode")}</data></messageData>""")


async def call(http, url: str, body: bytes) -> etree._Element:  # type: ignore[no-untyped-def]
    async with http.post(f"{url}/shep/async", data=body, headers={"Content-Type": "text/xml"}) as response:
        answer = etree.fromstring(await response.read())
    fault = answer.find(f".//{{{SOAP_ENV}}}Fault")
    assert fault is None, etree.tostring(fault)
    return answer.find(f"{{{SOAP_ENV}}}Body")[0]


async def get_messages(http, url: str, *, service: str = READER_TICKET_SERVICE, amount: int = 10):  # type: ignore[no-untyped-def]
    body = envelope("getMessages", f"<serviceId>{service}</serviceId>{SENDER}<amount>{amount}</amount>")
    return (await call(http, url, body)).findall("response/messages")


async def test_async_conversation_get_messages_status_and_notification(gw, http) -> None:
    saule = gw.pki.person("saule")
    mid = message_id()
    answer = await call(http, gw.url, send_message(signed_application(saule, READER_TICKET_SERVICE), mid=mid))
    correlation = answer.findtext("response/correlationId")
    session = answer.findtext("response/sessionId")
    assert correlation and session.startswith("{")
    assert answer.findtext("response/messageId") == mid, "the answer names the sender's message"

    messages = await wait_for(lambda: get_messages(http, gw.url))
    assert len(messages) == 1
    info = messages[0].find("messageInfo")
    assert info.findtext("messageType") == "RESPONSE"
    assert info.findtext("correlationId") == correlation
    assert info.find("SenderCorrelationId") is None
    properties = {p.findtext("key"): p.findtext("value") for p in info.iterfind("properties")}
    assert properties == {"status": "completed", "requestMessageId": mid}
    ticket = etree.fromstring(etree.tostring(messages[0].find("messageData/data")[0]))
    assert parse_ticket(trusting_verifier(gw.pki).verify(ticket).signed)["iin"] == saule.iin

    status = await call(http, gw.url, envelope("getMessageStatus", f"<messageId>{mid}</messageId>"
                                               f"<requestDate>{datetime.now(UTC).isoformat()}</requestDate>{SENDER}"))
    assert status.findtext("response/messageState") == "DELIVERED"
    assert status.findtext("response/status/statusCode") == "SCSS001"
    assert status.findtext("response/status/statusMessage").startswith("The message was delivered")
    assert status.findtext("response/status/statusDate")
    assert status.findtext("response/sessionId") == session

    assert await get_messages(http, gw.url) == [], "a leased message is not handed out twice"
    notification = envelope("sendDeliveryNotification", f"""<notification>
        <messageId>{info.findtext('messageId')}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId>
        <notificationDate>{datetime.now(UTC).isoformat()}</notificationDate><deliveryStatus>
        <receiveStatus>MESSAGE_ACCEPTED</receiveStatus><statusDate>{datetime.now(UTC).isoformat()}</statusDate>
        <resendMessage>NOT_RESEND</resendMessage></deliveryStatus></notification>
        <requestDate>{datetime.now(UTC).isoformat()}</requestDate>{SENDER}""")
    acknowledged = (await call(http, gw.url, notification)).find("response")
    assert [child.tag for child in acknowledged] == ["notificationId", "responseDate", "sessionId"]
    assert await gw.redis.zcard(f"egov:inbox:{PULL}:{READER_TICKET_SERVICE}") == 0


async def test_answer_is_pushed_to_the_portals_callback_even_after_failures(gw, http) -> None:
    received = gw.callbacks[RECEIVED]
    received.fail_next = 2  # the portal is busy twice: the gateway retries with backoff
    before = len(received.answers)
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    await call(http, gw.url, send_message(signed_application(aigerim, READER_TICKET_SERVICE), mid=mid, sender=PUSHED))

    async def pushed():  # type: ignore[no-untyped-def]
        return [a for a in received.answers[before:] if a["requestMessageId"] == mid]

    answers = await wait_for(pushed, seconds=20)
    assert answers[0]["messageType"] == "RESPONSE"
    assert "ReaderTicket" in answers[0]["document"]


async def test_status_changes_are_notified_to_the_portal(gw, http) -> None:
    received = gw.callbacks[RECEIVED]
    mid = message_id()
    document = signed_application(gw.pki.person("saule"), READER_TICKET_SERVICE)
    await call(http, gw.url, send_message(document, mid=mid, sender=PUSHED))

    async def delivered():  # type: ignore[no-untyped-def]
        return [s for s in received.statuses if s["messageId"] == mid and s["messageState"] == "DELIVERED"]

    statuses = await wait_for(delivered)
    assert statuses[0]["statusCode"] == "SCSS001" and statuses[0]["notificationId"]
    assert received.invalid == [], "every callback conforms to the client-side schema"


async def test_backend_down_for_a_while_nothing_is_lost(gw, http) -> None:
    """Five async applications while the library fails 6 times: every one is delivered once it is back."""
    async with http.post(f"{gw.library_url}/_control/fail", json={"status": 503, "count": 6}):
        pass
    calls = gw.library_calls
    people = ["aigerim", "daniyar", "saule", "kitap-head", "murager-head"]
    documents = [signed_application(gw.pki.person(p), READER_TICKET_SERVICE) for p in people[:3]]
    sessions = []
    for document in documents:
        answer = await call(http, gw.url, send_message(document, mid=message_id()))
        sessions.append(answer.findtext("response/sessionId"))

    async def all_done():  # type: ignore[no-untyped-def]
        apps = [await gw_app(gw, session) for session in sessions]
        return all(app and app.status == "completed" for app in apps) and apps

    apps = await wait_for(all_done, seconds=30)
    assert gw.library_calls == calls + 3  # each delivered exactly once
    notes = [event["note"] for app in apps for event in await gw_history(gw, app.id)]
    assert any("back-end unavailable" in note for note in notes), "the outage is visible in the history"


async def gw_app(gw, session_id: str):  # type: ignore[no-untyped-def]
    from gateway.lifecycle.store import ApplicationStore

    return await ApplicationStore(gw.redis).get(session_id)


async def gw_history(gw, session_id: str):  # type: ignore[no-untyped-def]
    from gateway.lifecycle.store import ApplicationStore

    return await ApplicationStore(gw.redis).history(session_id)


async def test_same_message_id_twice_async_one_backend_call(gw, http) -> None:
    daniyar = gw.pki.person("daniyar")
    mid = message_id()
    calls = gw.library_calls
    document = signed_application(daniyar, READER_TICKET_SERVICE)  # a repeat sends the same document
    first = await call(http, gw.url, send_message(document, mid=mid))
    await wait_for(lambda: get_messages(http, gw.url))
    second = await call(http, gw.url, send_message(document, mid=mid))
    assert second.findtext("response/sessionId") == first.findtext("response/sessionId")
    assert second.findtext("response/correlationId") == first.findtext("response/correlationId")
    await asyncio.sleep(0.5)
    assert gw.library_calls == calls + 1


async def test_circuit_breaker_opens_and_closes(gw, shep, http) -> None:
    """Two failures open the flaky service's breaker: the next call fails fast without reaching the back-end;
    after the reset time a trial call goes through and closes it."""
    async with http.post(f"{gw.library_url}/_control/fail", json={"status": 503, "count": 2}):
        pass
    for _ in range(2):
        result = await send_soap(shep, signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE),
                                 service_id=FLAKY_SERVICE)
        assert result.status_code == "PROVIDER_UNAVAILABLE"
        assert "breaker" not in result.error_data.get("detail", "")
    calls = gw.library_calls
    result = await send_soap(shep, signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE),
                             service_id=FLAKY_SERVICE)
    assert result.status_code == "PROVIDER_UNAVAILABLE"
    assert "circuit breaker open" in result.error_data["detail"]
    assert gw.library_calls == calls, "an open breaker does not call the back-end"
    await asyncio.sleep(0.35)  # breaker_reset_seconds = 0.3
    result = await send_soap(shep, signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE),
                             service_id=FLAKY_SERVICE)
    assert result.ok, result


async def test_full_gateway_answers_503_with_retry_after(system, http, tmp_path) -> None:
    runner, url = await second_gateway(system, tmp_path, limits=replace(system.settings.limits, max_in_flight=1))
    async with http.post(f"{system.library_url}/_control/fail", json={"delay": 1.0}):
        pass
    try:
        def request(handle: str) -> dict:
            document = signed_application(system.pki.person(handle), READER_TICKET_SERVICE)
            return {"requestInfo": {"messageId": message_id(), "serviceId": READER_TICKET_SERVICE,
                                    "messageDate": datetime.now(UTC).isoformat(),
                                    "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
                    "requestData": {"data": etree.tostring(document, encoding="unicode")}}

        async def post(handle: str):  # type: ignore[no-untyped-def]
            async with http.post(f"{url}/api/v1/requests", json=request(handle)) as response:
                return response.status, response.headers.get("Retry-After"), await response.json(content_type=None)

        first, second = await asyncio.gather(post("aigerim"), post("daniyar"))
    finally:
        async with http.post(f"{system.library_url}/_control/reset"):
            pass
        await runner.cleanup()
    outcomes = sorted([first, second], key=lambda o: o[0])
    assert outcomes[0][0] == 200
    assert outcomes[1][0] == 503 and outcomes[1][1]
    assert outcomes[1][2]["code"] == "GATEWAY_OVERLOADED"


async def test_service_discovery(gw, http) -> None:
    async with http.get(f"{gw.url}/api/v1/services") as response:
        listing = {s["serviceId"]: s for s in (await response.json())["services"]}
    assert {"kazneb.reader-ticket", "kazneb.fund-submission", "elicense.cultural-export"} <= set(listing)
    assert listing["kazneb.fund-submission"]["connector"] == "queue"
    assert listing["kazneb.fund-submission"]["requiredRoles"] == ["first_head", "can_sign"]
    async with http.get(f"{gw.url}/api/v1/services/allowed", headers=gw.auth("registry-office",
                                                                             "office-test-password")) as response:
        assert (await response.json())["services"] == []
    async with http.get(f"{gw.url}/api/v1/services/kazneb.reader-ticket/schema") as response:
        assert b"ReaderRegistration" in await response.read()
    async with http.get(f"{gw.url}/api/v1/services/kazneb.reader-ticket/wsdl?channel=async") as response:
        assert b"IAsyncChannel" in await response.read()
    async with http.get(f"{gw.url}/api/v1/services/kazneb.reader-ticket/openapi") as response:
        spec = await response.json()
    assert spec["paths"]["/api/v1/requests"]["post"]
    async with http.get(f"{gw.url}/api/v1/services/nope") as response:
        assert (await response.json(content_type=None))["code"] == "CLIENT_UNKNOWN_SERVICE"
