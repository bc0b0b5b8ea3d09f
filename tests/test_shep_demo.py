"""SHEP v10 as real clients speak it, against `egov-gateway demo` as a tester runs it (issue 12): zeep clients built
from the test tree's public-shaped schemas (tests/conformance/shep_v10) drive SyncChannel SendMessage and every
AsyncChannel operation, an IAsyncChannelClient served by this test takes the demo's callbacks in its own namespace
(`demo --callback-url`), and the demo's WS-Security sender's signed SendMessage is accepted while the same envelope
tampered, replayed, replayed after its Timestamp expired, or sent unsigned is refused with its code. Every answer,
fault and callback is validated strictly against the test tree's schemas. One demo process for the module."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from lxml import etree

from gateway.shell.serve import start_site
from mocks.demo_secrets import DEMO_PULL_SENDER, DEMO_SENDER, DEMO_WSS_SENDER, DemoSecrets, read_demo_secrets
from mocks.library import parse_ticket
from mocks.pki import TestPki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from signing.signer import SigningKey
from signing.wssecurity import SECURITY, WSU
from tests.helpers import SOAP_ENV, free_port, message_id, trusting_verifier, wait_for
from tests.processes import Demo
from tests.shep_clients import (
    OPS,
    RECEIVER,
    SYNC,
    RealClient,
    Receiver,
    WsSecurity,
    async_message,
    document_data,
    in_thread,
    local_now,
    post,
    receiver_app,
)

TEXT_XML = {"Content-Type": "text/xml; charset=utf-8"}


@dataclass(frozen=True)
class DemoUnderTest:
    """The demo process, the IAsyncChannelClient its portal's callbacks go to, and the demo's passwords."""

    demo: Demo
    "The running `egov-gateway demo`."
    receiver: Receiver
    "What this test's client-side endpoint took."
    passwords: DemoSecrets
    "The demo's senders' passwords, from its state directory."
    pki: TestPki
    "The test PKI the demo runs on (the session's, copied into its state directory)."

    @property
    def sync(self) -> str:
        return f"{self.demo.url['gateway']}/shep/sync"

    @property
    def async_(self) -> str:
        return f"{self.demo.url['gateway']}/shep/async"

    def sender(self, sender_id: str) -> dict[str, str]:
        password = self.passwords.of(sender_id)
        return {"senderId": sender_id, **({"password": password} if password else {})}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DemoUnderTest]:
    state = tmp_path_factory.mktemp("shep-demo") / "state"
    shutil.copytree(pki.root, state / "pki")
    app, port = await asyncio.to_thread(receiver_app), free_port()
    receiver = await start_site(app, "127.0.0.1", port)
    demo = Demo(state, "--callback-url", f"http://127.0.0.1:{port}/client")
    try:
        await demo.up()
        passwords = read_demo_secrets(state)
        assert passwords is not None and passwords.pull, "the demo made its senders' passwords"
        yield DemoUnderTest(demo, app[RECEIVER], passwords, pki)
    finally:
        output = demo.interrupt()
        await receiver.cleanup()
    assert "Traceback" not in output, output
    assert f"pushed to http://127.0.0.1:{port}/client" in output, "the banner says where the callbacks go"


def application(world: DemoUnderTest, person: str) -> Any:
    return document_data(signed_application(world.pki.person(person), READER_TICKET_SERVICE))


def ticket_iin(world: DemoUnderTest, data: Any) -> str:
    """The IIN of the library's reader ticket in ``data`` (an answer's data element), its signature checked."""
    ticket = etree.fromstring(etree.tostring(data[0]))
    return str(parse_ticket(trusting_verifier(world.pki).verify(ticket).signed)["iin"])


def properties(info: Any) -> dict[str, str]:
    return {p.key: p.value for p in info.properties}


async def test_sync_send_message(world: DemoUnderTest) -> None:
    client = await in_thread(RealClient, "SyncChannel_v10.wsdl", world.sync)
    mid = message_id()
    answer = await in_thread(client.call, "SendMessage", requestInfo={
        "messageId": mid, "serviceId": READER_TICKET_SERVICE, "messageDate": local_now(),
        "sender": world.sender(DEMO_SENDER)}, requestData={"data": application(world, "saule")})
    info = answer.responseInfo
    assert (info.status.code, info.correlationId) == ("SCSS001", mid)
    assert ticket_iin(world, answer.responseData.data) == world.pki.person("saule").iin


async def test_every_async_operation_of_a_pulling_client(world: DemoUnderTest) -> None:
    """portal-pull has no callbacks: its answers wait in getMessages, found by messageId, correlationId and
    requestDate; getMessageStatus and sendDeliveryNotification are parsed as a generated client parses them."""
    client = await in_thread(RealClient, "AsyncChannel_v10.wsdl", world.async_)
    pull = world.sender(DEMO_PULL_SENDER)

    def send(**info: Any) -> Any:
        return client.call("sendMessage", **async_message(signed_application(world.pki.person("daniyar"),
                                                                             READER_TICKET_SERVICE),
                                                          pull, service_id=READER_TICKET_SERVICE, **info))

    first = await in_thread(send)  # no messageId: the gateway names the message
    assert uuid.UUID(first.messageId) and first.correlationId and first.sessionId
    own = message_id()
    second = await in_thread(send, messageId=own, correlationId=f"client-{own}")
    assert second.messageId == own and second.correlationId != first.correlationId

    def delivered(mid: str) -> Callable[[], Awaitable[Any]]:
        async def check() -> Any:
            status = await in_thread(client.call, "getMessageStatus", messageId=mid, requestDate=local_now(),
                                     sender=pull)
            return status if status.messageState == "DELIVERED" else None
        return check

    changed = {}
    for sent in (first, second):
        status = await wait_for(delivered(sent.messageId), seconds=20)
        assert (status.status.statusCode, status.status.statusMessage, status.sessionId) == (
            "SCSS001", "The message was delivered (application completed)", sent.sessionId)
        assert isinstance(status.status.statusDate, datetime) and status.status.statusDate.tzinfo is not None
        assert abs(status.status.statusDate - datetime.now(UTC)) < timedelta(minutes=5)
        changed[sent.messageId] = status.status.statusDate
    unknown = await in_thread(client.refused, "getMessageStatus", messageId="never-sent", requestDate=local_now(),
                              sender=pull)
    assert (unknown.tag, unknown.findtext("errorCode")) == (f"{{{OPS}}}getMessageStatusFault1_getMessageStatusFault",
                                                            "CLIENT_NOT_FOUND")

    def messages(**query: Any) -> list[Any]:
        got = client.call("getMessages", serviceId=READER_TICKET_SERVICE, sender=pull, amount=10, **query)
        assert got.sessionId and got.responseDate
        return list(got.messages)

    (by_id,) = await in_thread(messages, messageId=first.messageId)
    assert (by_id.messageInfo.messageType, by_id.messageInfo.correlationId) == ("RESPONSE", first.correlationId)
    assert properties(by_id.messageInfo)["requestMessageId"] == first.messageId
    assert by_id.messageInfo.messageDate == changed[first.messageId], "the answer's date is the status's"
    assert ticket_iin(world, by_id.messageData.data) == world.pki.person("daniyar").iin
    (by_correlation,) = await in_thread(messages, correlationId=second.correlationId)
    assert properties(by_correlation.messageInfo)["requestMessageId"] == own

    def notify(answer: Any, receive: str, resend: str) -> Any:
        now = local_now()
        return client.call("sendDeliveryNotification", notification={
            "messageId": answer.messageInfo.messageId, "serviceId": READER_TICKET_SERVICE, "notificationDate": now,
            "deliveryStatus": {"receiveStatus": receive, "statusDate": now, "resendMessage": resend}},
            requestDate=now, sender=pull)

    # Not taken, resend: the first answer is handed out again, to a query by requestDate (which selects all due).
    again = await in_thread(notify, by_id, "MESSAGE_NOT_ACCTEPTED", "RESEND")
    assert uuid.UUID(again.notificationId) and again.sessionId
    (by_date,) = await in_thread(messages, requestDate=local_now())
    assert by_date.messageInfo.messageId == by_id.messageInfo.messageId, "the second one is still leased"
    taken = [await in_thread(notify, answer, "MESSAGE_ACCEPTED", "NOT_RESEND") for answer in (by_date, by_correlation)]
    assert len({again.notificationId, *(t.notificationId for t in taken)}) == 3, "a fresh notificationId each"
    assert await in_thread(messages, messageId=first.messageId) == [], "accepted: gone from the inbox"


async def test_callbacks_reach_the_clients_own_endpoint(world: DemoUnderTest) -> None:
    """The demo pushes the portal's answer and status changes to this test's IAsyncChannelClient, which takes only
    callbacks valid in its own namespace (.../AsyncChannel/v10/Types/Client)."""
    client = await in_thread(RealClient, "AsyncChannel_v10.wsdl", world.async_)
    mid = message_id()
    sent = await in_thread(client.call, "sendMessage", **async_message(
        signed_application(world.pki.person("aigerim"), READER_TICKET_SERVICE), world.sender(DEMO_SENDER),
        service_id=READER_TICKET_SERVICE, messageId=mid))

    async def answered() -> list[Any]:
        return [a for a in world.receiver.answers if a.messageInfo.correlationId == sent.correlationId]

    (answer,) = await wait_for(answered, seconds=20)
    assert answer.messageInfo.messageType == "RESPONSE"
    assert properties(answer.messageInfo)["requestMessageId"] == mid
    assert ticket_iin(world, answer.messageData.data) == world.pki.person("aigerim").iin

    async def delivered() -> list[Any]:
        return [s for s in world.receiver.statuses
                if s.notification.messageId == mid and s.notification.messageState == "DELIVERED"]

    (status, *_) = await wait_for(delivered, seconds=20)
    assert status.notification.status.statusCode == "SCSS001" and uuid.UUID(status.notification.notificationId)
    assert isinstance(status.notification.status.statusDate, datetime) and status.requestDate
    assert world.receiver.refused == []


async def test_ws_security_sender(world: DemoUnderTest, http: aiohttp.ClientSession) -> None:
    """portal-wss (`auth = ["ws-security"]`, the portal system certificate's BIN): a signed SendMessage from the
    generated client is accepted; that envelope tampered, replayed, and replayed after its Timestamp expired is
    refused, as is an unsigned one."""
    lifetime = timedelta(seconds=3)  # short, so the replay after expiry waits little
    portal = world.pki.systems["portal"]
    key = SigningKey.from_pem(portal.cert, portal.key)
    signed = await in_thread(RealClient, "SyncChannel_v10.wsdl", world.sync, wsse=WsSecurity(key, lifetime))

    def request(person: str) -> dict[str, Any]:
        return {"requestInfo": {"messageId": message_id(), "serviceId": READER_TICKET_SERVICE,
                                "messageDate": local_now(), "sender": world.sender(DEMO_WSS_SENDER)},
                "requestData": {"data": application(world, person)}}

    answer = await in_thread(signed.call, "SendMessage", **request("aigerim"))
    envelope = signed.last_sent()
    assert answer.responseInfo.status.code == "SCSS001"
    assert ticket_iin(world, answer.responseData.data) == world.pki.person("aigerim").iin

    async def refused(body: etree._Element) -> str | None:
        detail = await post(http, world.sync, etree.tostring(body), **TEXT_XML)
        assert detail.tag == f"{{{SYNC}}}SendMessageFault1_SendMessageFault", etree.tostring(detail)
        return detail.findtext("errorCode")

    tampered = etree.fromstring(etree.tostring(envelope))
    mid = tampered.find(f"{{{SOAP_ENV}}}Body//requestInfo/messageId")
    assert mid is not None
    mid.text = message_id()
    assert await refused(tampered) == "SIG_HASH_FAILURE"
    assert await refused(envelope) == "CLIENT_WSS_REPLAY"
    expires = envelope.findtext(f"{{{SOAP_ENV}}}Header/{SECURITY}/{{{WSU}}}Timestamp/{{{WSU}}}Expires")
    assert expires is not None
    deadline = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    while datetime.now(UTC) <= deadline:  # waiting for the clock itself: the Timestamp's own deadline
        await asyncio.sleep(0.1)
    assert await refused(envelope) == "CLIENT_WSS_TIMESTAMP_EXPIRED"

    unsigned = await in_thread(RealClient, "SyncChannel_v10.wsdl", world.sync)
    detail = await in_thread(unsigned.refused, "SendMessage", **request("saule"))
    assert detail.findtext("errorCode") == "CLIENT_WSS_REQUIRED"

    # The AsyncChannel takes the same sender's signed sendMessage.
    signed_async = await in_thread(RealClient, "AsyncChannel_v10.wsdl", world.async_, wsse=WsSecurity(key))
    sent = await in_thread(signed_async.call, "sendMessage", **async_message(
        signed_application(world.pki.person("saule"), READER_TICKET_SERVICE), world.sender(DEMO_WSS_SENDER),
        service_id=READER_TICKET_SERVICE))
    assert uuid.UUID(sent.messageId) and sent.correlationId
