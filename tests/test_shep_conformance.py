"""SHEP v10 as real clients speak it: zeep clients built from the test tree's schemas (tests/conformance/shep_v10,
written from the public v10 element names, orders and namespaces; not our served files) drive every operation
of both channels against the running gateway, a client-side receiver built from the test tree's
IAsyncChannelClient takes our callbacks, and every answer, fault and callback is validated strictly (lxml
XMLSchema) against the test tree's schemas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lxml import etree

from gateway.shell.app import create_app
from gateway.shell.serve import start_site
from mocks.library import parse_ticket
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from tests.helpers import (
    PORTAL,
    PORTAL_PASSWORD,
    PULL,
    PULL_PASSWORD,
    SOAP_ENV,
    GatewayUnderTest,
    free_port,
    message_id,
    sync_envelope_bytes,
    trusting_verifier,
    wait_for,
)
from tests.shep_clients import (
    ALMATY,
    OPS,
    RECEIVER,
    SYNC,
    RealClient,
    Receiver,
    document_data,
    in_thread,
    local_now,
    post,
    receiver_app,
)
from tests.shep_clients import async_message as client_message


def sender(sender_id: str = PULL, password: str = PULL_PASSWORD) -> dict[str, str]:
    return {"senderId": sender_id, "password": password}


def async_message(document: etree._Element, sender_of: dict[str, str] | None = None, **info: Any) -> dict[str, Any]:
    return client_message(document, sender_of or sender(), service_id=READER_TICKET_SERVICE, **info)


# ---------------------------------------------------------------- SyncChannel


async def test_sync_send_message_as_a_real_client(gw: GatewayUnderTest) -> None:
    client = await in_thread(RealClient, "SyncChannel_v10.wsdl", f"{gw.url}/shep/sync")
    saule = gw.pki.person("saule")
    mid = "MSG-" + "7" * 146  # 150 characters, as real ids come
    answer = await in_thread(client.call, "SendMessage", requestInfo={
        "messageId": mid, "correlationId": "", "serviceId": READER_TICKET_SERVICE, "messageDate": local_now(),
        "sender": sender(PORTAL, PORTAL_PASSWORD), "sessionId": str(uuid.uuid4())},
        requestData={"data": document_data(signed_application(saule, READER_TICKET_SERVICE))})
    assert (answer.responseInfo.status.code, answer.responseInfo.correlationId) == ("SCSS001", mid)
    ticket = etree.fromstring(etree.tostring(answer.responseData.data[0]))
    assert parse_ticket(trusting_verifier(gw.pki).verify(ticket).signed)["iin"] == saule.iin


async def test_sync_fault_is_named_as_the_public_schema(gw: GatewayUnderTest) -> None:
    client = await in_thread(RealClient, "SyncChannel_v10.wsdl", f"{gw.url}/shep/sync")
    detail = await in_thread(client.refused, "SendMessage", requestInfo={
        "messageId": message_id(), "serviceId": READER_TICKET_SERVICE, "messageDate": local_now(),
        "sender": sender(PORTAL, "wrong")},
        requestData={"data": document_data(signed_application(gw.pki.person("saule"), READER_TICKET_SERVICE))})
    assert detail.tag == f"{{{SYNC}}}SendMessageFault1_SendMessageFault"
    assert detail.findtext("errorCode") == "CLIENT_BAD_CREDENTIALS"


# ---------------------------------------------------------------- AsyncChannel


async def test_every_async_operation_as_a_real_client(gw: GatewayUnderTest) -> None:
    client = await in_thread(RealClient, "AsyncChannel_v10.wsdl", f"{gw.url}/shep/async")
    saule = gw.pki.person("saule")
    sent = await in_thread(client.call, "sendMessage",
                           **async_message(signed_application(saule, READER_TICKET_SERVICE)))  # no messageId
    assigned, correlation = sent.messageId, sent.correlationId
    assert uuid.UUID(assigned) and correlation and sent.sessionId, "the gateway names a message sent without id"

    async def delivered() -> Any:
        status = await in_thread(client.call, "getMessageStatus", messageId=assigned, requestDate=local_now(),
                                 sender=sender())
        return status if status.messageState == "DELIVERED" else None

    status = await wait_for(delivered, seconds=20)
    assert status.status.statusCode == "SCSS001" and status.status.statusMessage and status.status.statusDate
    assert status.sessionId == sent.sessionId

    # An unrelated correlationId selects nothing; the exchange's selects its answer.
    nothing = await in_thread(client.call, "getMessages", correlationId="not-ours", serviceId=READER_TICKET_SERVICE,
                              sender=sender(), amount=5)
    assert nothing.messages == [] and nothing.sessionId
    got = await in_thread(client.call, "getMessages", messageId=assigned, correlationId=correlation,
                          requestDate=local_now(), serviceId=READER_TICKET_SERVICE, sender=sender(), amount=5)
    (message,) = got.messages
    info = message.messageInfo
    assert (info.messageType, info.correlationId, info.serviceId) == ("RESPONSE", correlation, READER_TICKET_SERVICE)
    assert {p.key: p.value for p in info.properties}["requestMessageId"] == assigned
    ticket = etree.fromstring(etree.tostring(message.messageData.data[0]))
    assert parse_ticket(trusting_verifier(gw.pki).verify(ticket).signed)["iin"] == saule.iin

    now = local_now()
    acknowledged = await in_thread(client.call, "sendDeliveryNotification", notification={
        "messageId": info.messageId, "serviceId": READER_TICKET_SERVICE, "notificationDate": now,
        "deliveryStatus": {"receiveStatus": "MESSAGE_ACCEPTED", "statusDate": now, "resendMessage": "NOT_RESEND"}},
        requestDate=now, sender=sender())
    assert uuid.UUID(acknowledged.notificationId) and acknowledged.responseDate and acknowledged.sessionId
    assert await gw.redis.zcard(f"egov:inbox:{PULL}:{READER_TICKET_SERVICE}") == 0


@pytest.mark.parametrize(("operation", "request_of", "code"), [
    ("sendMessage", lambda gw: async_message(signed_application(gw.pki.person("saule"), READER_TICKET_SERVICE),
                                             sender(PULL, "wrong")), "CLIENT_BAD_CREDENTIALS"),
    ("getMessages", lambda gw: {"serviceId": "no.such.service", "sender": sender()}, "CLIENT_UNKNOWN_SERVICE"),
    ("getMessageStatus", lambda gw: {"messageId": "never-sent", "requestDate": local_now(), "sender": sender()},
     "CLIENT_NOT_FOUND"),
    ("sendDeliveryNotification", lambda gw: {"notification": {
        "messageId": "{00000000-0000-0000-0000-000000000000}", "serviceId": READER_TICKET_SERVICE,
        "notificationDate": local_now(), "deliveryStatus": {
            "receiveStatus": "MESSAGE_ACCEPTED", "statusDate": local_now(), "resendMessage": "NOT_RESEND"}},
        "requestDate": local_now(), "sender": sender()}, "CLIENT_NOT_FOUND"),
])
async def test_each_async_operation_has_its_own_fault(gw: GatewayUnderTest, operation: str, request_of: Any,
                                                      code: str) -> None:
    client = await in_thread(RealClient, "AsyncChannel_v10.wsdl", f"{gw.url}/shep/async")
    detail = await in_thread(client.refused, operation, **request_of(gw))
    assert detail.tag == f"{{{OPS}}}{operation}Fault1_{operation}Fault"
    assert detail.findtext("errorCode") == code


# ---------------------------------------------------------------- tolerant where clients differ, strict elsewhere


def raw_send(document: etree._Element, *, mid: str | None, when: str, correlation: str = "") -> bytes:
    message = f"<messageId>{mid}</messageId>" if mid is not None else ""
    return (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xmlns:a="{OPS}" xmlns:c="urn:client"><soap:Body><a:sendMessage><request><messageInfo>{message}'
            f"<correlationId>{correlation}</correlationId><serviceId>{READER_TICKET_SERVICE}</serviceId>"
            f"<messageType>REQUEST</messageType><messageDate>{when}</messageDate><sender><senderId>{PULL}</senderId>"
            f"<password>{PULL_PASSWORD}</password></sender></messageInfo><messageData>"
            f'<data xsi:type="c:Application">{etree.tostring(document, encoding="unicode")}</data>'
            "</messageData></request></a:sendMessage></soap:Body></soap:Envelope>").encode()


async def test_no_content_type_xsi_type_and_local_time_are_accepted(gw: GatewayUnderTest, http) -> None:  # type: ignore[no-untyped-def]
    document = signed_application(gw.pki.person("saule"), READER_TICKET_SERVICE)
    answer = await post(http, f"{gw.url}/shep/async", raw_send(document, mid=None, when=local_now().isoformat()))
    assert answer.tag == f"{{{OPS}}}sendMessageResponse", etree.tostring(answer)
    assert uuid.UUID(answer.findtext("response/messageId"))


async def test_sync_channel_without_content_type(gw: GatewayUnderTest, http) -> None:  # type: ignore[no-untyped-def]
    answer = await post(http, f"{gw.url}/shep/sync",
                        sync_envelope_bytes(signed_application(gw.pki.person("saule"), READER_TICKET_SERVICE)))
    assert answer.findtext("response/responseInfo/status/code") == "SCSS001", etree.tostring(answer)


async def test_the_lowercase_spelling_is_answered_in_kind(gw: GatewayUnderTest, http) -> None:  # type: ignore[no-untyped-def]
    """Operations in .../v10/types are read as .../v10/Types; the fault keeps the request's spelling."""
    lower = "http://bip.bee.kz/AsyncChannel/v10/types"
    body = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:a="{lower}"><soap:Body><a:getMessageStatus><request>'
            f"<messageId>never-sent</messageId><requestDate>{local_now().isoformat()}</requestDate>"
            f"<sender><senderId>{PULL}</senderId><password>{PULL_PASSWORD}</password></sender>"
            "</request></a:getMessageStatus></soap:Body></soap:Envelope>").encode()
    async with http.post(f"{gw.url}/shep/async", data=body, headers={"Content-Type": "text/xml"}) as response:
        envelope = etree.fromstring(await response.read())
    detail = envelope.find(f".//detail/{{{lower}}}getMessageStatusFault1_getMessageStatusFault")
    assert detail is not None and detail.findtext("errorCode") == "CLIENT_NOT_FOUND"


async def test_a_date_without_offset_is_kazakhstan_time_not_utc(gw: GatewayUnderTest, http) -> None:  # type: ignore[no-untyped-def]
    """UTC wall-clock time without an offset reads as five hours ago in Almaty: outside the replay window."""
    document = signed_application(gw.pki.person("saule"), READER_TICKET_SERVICE)
    utc_wall_clock = datetime.now(UTC).replace(tzinfo=None).isoformat()
    fault = await post(http, f"{gw.url}/shep/async", raw_send(document, mid=message_id(), when=utc_wall_clock),
                       **{"Content-Type": "text/xml"})
    assert (fault.tag, fault.findtext("errorCode")) == (f"{{{OPS}}}sendMessageFault1_sendMessageFault",
                                                        "CLIENT_STALE_MESSAGE")
    assert datetime.now(ALMATY).utcoffset() == timedelta(hours=5)


@pytest.mark.parametrize(("field", "length", "accepted"), [
    ("messageId", 200, True), ("messageId", 201, False), ("correlationId", 200, True), ("correlationId", 201, False),
])
async def test_ids_up_to_200_characters(gw: GatewayUnderTest, http, field: str, length: int,  # type: ignore[no-untyped-def]
                                        accepted: bool) -> None:
    document = signed_application(gw.pki.person("saule"), READER_TICKET_SERVICE)
    long_id = "I" * length
    body = raw_send(document, mid=long_id if field == "messageId" else message_id(), when=local_now().isoformat(),
                    correlation=long_id if field == "correlationId" else "")
    answer = await post(http, f"{gw.url}/shep/async", body, **{"Content-Type": "text/xml; charset=utf-8"})
    if accepted:
        assert answer.tag == f"{{{OPS}}}sendMessageResponse", etree.tostring(answer)
    else:
        assert answer.findtext("errorCode") == "CLIENT_ENVELOPE_INVALID"


async def test_another_content_type_is_still_refused(gw: GatewayUnderTest, http) -> None:  # type: ignore[no-untyped-def]
    document = signed_application(gw.pki.person("saule"), READER_TICKET_SERVICE)
    fault = await post(http, f"{gw.url}/shep/async", raw_send(document, mid=None, when=local_now().isoformat()),
                       **{"Content-Type": "text/plain"})
    assert fault.findtext("errorCode") == "CLIENT_UNSUPPORTED_MEDIA_TYPE"


# ---------------------------------------------------------------- callbacks to a real IAsyncChannelClient


@pytest_asyncio.fixture
async def pushed_to(system: GatewayUnderTest, tmp_path: Path) -> AsyncIterator[tuple[str, Receiver]]:
    """A gateway of its own (own key prefix) whose portal's callback_url is the test tree's receiver."""
    app, receiver_port, port = await asyncio.to_thread(receiver_app), free_port(), free_port()
    receiver = await start_site(app, "127.0.0.1", receiver_port)
    senders = dict(system.settings.senders)
    senders[PORTAL] = replace(senders[PORTAL], callback_url=f"http://127.0.0.1:{receiver_port}/client")
    settings = replace(system.settings, listen=replace(system.settings.listen, port=port), state_dir=tmp_path,
                       senders=senders, redis=replace(system.settings.redis, key_prefix=f"conf-{uuid.uuid4().hex}"))
    runner = await start_site(create_app(settings, redis_url=system.redis_url), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}", app[RECEIVER]
    finally:
        await runner.cleanup()
        await receiver.cleanup()


async def test_callbacks_are_taken_by_a_real_client_endpoint(system: GatewayUnderTest, pushed_to) -> None:  # type: ignore[no-untyped-def]
    url, receiver = pushed_to
    client = await in_thread(RealClient, "AsyncChannel_v10.wsdl", f"{url}/shep/async")
    saule = gw_person = system.pki.person("saule")
    mid = message_id()
    sent = await in_thread(client.call, "sendMessage", **async_message(
        signed_application(gw_person, READER_TICKET_SERVICE), sender(PORTAL, PORTAL_PASSWORD), messageId=mid))

    async def answered() -> Any:
        return [a for a in receiver.answers if a.messageInfo.correlationId == sent.correlationId]

    (answer,) = await wait_for(answered, seconds=20)
    assert answer.messageInfo.messageType == "RESPONSE"
    assert {p.key: p.value for p in answer.messageInfo.properties}["requestMessageId"] == mid
    ticket = etree.fromstring(etree.tostring(answer.messageData.data[0]))
    assert parse_ticket(trusting_verifier(system.pki).verify(ticket).signed)["iin"] == saule.iin

    async def delivered() -> Any:
        return [s for s in receiver.statuses if s.notification.messageId == mid
                and s.notification.messageState == "DELIVERED"]

    (status, *_) = await wait_for(delivered)
    assert status.notification.status.statusCode == "SCSS001" and status.notification.notificationId
    assert status.requestDate and status.notification.status.statusDate
    assert receiver.refused == []
