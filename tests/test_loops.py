"""Every background loop survives Redis failing under it: delivery, callbacks to the sender, the cabinet's
live event stream and the commission desk. Each test runs a gateway of its own (own key prefix, own
callback endpoint) on the shared Redis, makes one real component's method raise a Redis
``ConnectionError`` on its next calls, and shows the loop goes on working. The notifier's giving up after
its attempts is here too."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from lxml import etree
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.cabinet.context import CABINET
from gateway.delivery.desks import DESKS
from gateway.intake.context import INTAKE
from gateway.shell.app import create_app
from gateway.shell.serve import start_site
from mocks.backoffice import CommissionDesk, WorkerSettings
from mocks.library import build_fund_submission
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE, signed_application, signer_for
from mocks.portal.callback_server import RECEIVED, Received, create_callback_app
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    FINAL,
    PORTAL,
    PORTAL_PASSWORD,
    PULL,
    PULL_PASSWORD,
    GatewayUnderTest,
    free_port,
    wait_for,
)
from tests.helpers import (
    SOAP_ENV as SOAP,
)

ASYNC = "http://bip.bee.kz/AsyncChannel/v10/types"


@dataclass
class OwnGateway:
    """A gateway of this test's own, with handles on its components and on its portal's callback endpoint."""

    url: str
    app: web.Application
    received: Received
    system: GatewayUnderTest


@pytest_asyncio.fixture
async def own(system: GatewayUnderTest, tmp_path: Path) -> AsyncIterator[OwnGateway]:
    callback_app, callback_port, port = create_callback_app(), free_port(), free_port()
    callbacks = await start_site(callback_app, "127.0.0.1", callback_port)
    senders = dict(system.settings.senders)
    senders[PORTAL] = replace(senders[PORTAL], callback_url=f"http://127.0.0.1:{callback_port}/shep/client")
    settings = replace(system.settings, listen=replace(system.settings.listen, port=port), state_dir=tmp_path,
                       senders=senders, redis=replace(system.settings.redis, key_prefix=f"loops-{uuid.uuid4().hex}"))
    runner = await start_site(create_app(settings, redis_url=system.redis_url), "127.0.0.1", port)
    try:
        yield OwnGateway(f"http://127.0.0.1:{port}", runner.app, callback_app[RECEIVED], system)
    finally:
        await runner.cleanup()
        await callbacks.cleanup()


class Faults:
    """Makes real async methods raise a Redis ConnectionError on their next ``count`` calls (shared count)."""

    def __init__(self, count: int = 0) -> None:
        self.left, self.raised = count, 0

    def wrap(self, real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def faulty(*args: Any, **kwargs: Any) -> Any:
            if self.left > 0:
                self.left -= 1
                self.raised += 1
                raise RedisConnectionError("injected: Redis went away")
            return await real(*args, **kwargs)
        return faulty

    def on(self, monkeypatch: pytest.MonkeyPatch, target: object, method: str) -> Faults:
        monkeypatch.setattr(target, method, self.wrap(getattr(target, method)))
        return self


def async_send(document: etree._Element, mid: str, sender: str, password: str) -> bytes:
    return (f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:a="{ASYNC}"><soap:Body><a:sendMessage><request>'
            f"<messageInfo><messageId>{mid}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId>"
            f"<messageType>REQUEST</messageType><messageDate>{datetime.now(UTC).isoformat()}</messageDate>"
            f"<sender><senderId>{sender}</senderId><password>{password}</password></sender></messageInfo>"
            f"<messageData><data>{etree.tostring(document, encoding='unicode')}</data></messageData>"
            "</request></a:sendMessage></soap:Body></soap:Envelope>").encode()


async def submit_async(own: OwnGateway, http: aiohttp.ClientSession, handle: str, *, sender: str = PULL,
                       password: str = PULL_PASSWORD) -> str:
    """An AsyncChannel sendMessage; returns the message id."""
    mid = str(uuid.uuid4())
    document = signed_application(own.system.pki.person(handle), READER_TICKET_SERVICE)
    async with http.post(f"{own.url}/shep/async", data=async_send(document, mid, sender, password),
                         headers={"Content-Type": "text/xml"}) as response:
        assert response.status == 200, await response.text()
    return mid


async def cabinet_item(own: OwnGateway, http: aiohttp.ClientSession, owner: str, mid: str) -> dict[str, Any]:
    url = f"{own.url}/api/v1/cabinet/{owner}/applications/{mid}"
    async with http.get(url, headers=own.system.auth()) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def final_item(own: OwnGateway, http: aiohttp.ClientSession, owner: str, mid: str) -> dict[str, Any]:
    async def final() -> dict[str, Any] | None:
        item = await cabinet_item(own, http, owner, mid)
        return item if item["status"] in FINAL else None

    return await wait_for(final)


async def test_delivery_survives_an_unavailable_outbox(own, http, monkeypatch) -> None:
    delivery = own.app[DESKS].delivery
    faults = Faults(3).on(monkeypatch, delivery.outbox, "lease")
    aigerim = own.system.pki.person("aigerim")
    # As the portal: a sender reads in the cabinet only what it submitted itself.
    mid = await submit_async(own, http, "aigerim", sender=PORTAL, password=PORTAL_PASSWORD)
    item = await final_item(own, http, aigerim.iin, mid)
    assert item["status"] == "completed", item["history"]
    assert faults.raised == 3


async def test_callbacks_keep_going_after_storage_fails_in_a_push(own, http, monkeypatch) -> None:
    notifier = own.app[INTAKE].notifier
    # The answer reaches the portal, then recording that fails: before, the callback loop ended here.
    faults = Faults(2).on(monkeypatch, notifier.callbacks, "done")
    first = await submit_async(own, http, "aigerim", sender=PORTAL, password=PORTAL_PASSWORD)

    def answered(mid: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(a["requestMessageId"] == mid for a in own.received.answers)
        return check

    await wait_for(answered(first))

    async def faults_spent() -> bool:
        return faults.left == 0

    await wait_for(faults_spent)
    second = await submit_async(own, http, "daniyar", sender=PORTAL, password=PORTAL_PASSWORD)
    await wait_for(answered(second))  # the loop is still alive
    assert faults.raised == 2


async def test_the_notifier_gives_up_after_its_attempts_and_the_answer_stays_in_the_inbox(own, http) -> None:
    notifier = own.app[INTAKE].notifier
    notifier.settings = replace(notifier.settings, attempts=2, retry_base_seconds=0.01, retry_cap_seconds=0.02)
    own.received.fail_next = 1000  # the portal refuses every push
    saule = own.system.pki.person("saule")
    mid = await submit_async(own, http, "saule", sender=PORTAL, password=PORTAL_PASSWORD)

    async def gave_up() -> dict[str, Any] | None:
        item = await cabinet_item(own, http, saule.iin, mid)
        notes = [event.get("note") or "" for event in item["history"]]
        return item if any("did not take the answer after 2 attempts" in note for note in notes) else None

    item = await wait_for(gave_up)
    assert item["status"] == "completed"
    assert not own.received.answers
    body = (f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:a="{ASYNC}"><soap:Body><a:getMessages><request>'
            f"<serviceId>{READER_TICKET_SERVICE}</serviceId><sender><senderId>{PORTAL}</senderId>"
            f"<password>{PORTAL_PASSWORD}</password></sender><amount>10</amount>"
            "</request></a:getMessages></soap:Body></soap:Envelope>").encode()
    async with http.post(f"{own.url}/shep/async", data=body, headers={"Content-Type": "text/xml"}) as response:
        answer = etree.fromstring(await response.read())
    ids = [m.findtext("messageInfo/properties[key='requestMessageId']/value") for m in answer.iter("messages")]
    assert ids == [mid]


async def test_the_cabinet_stream_resubscribes_after_redis_fails_under_it(own, http, monkeypatch) -> None:
    hub = own.app[CABINET].events
    owner = own.system.pki.person("aigerim").iin
    # A sender may open the stream of an owner it has applications of: one, whose last event (the callback's
    # note) is written before the stream opens.
    mid = await submit_async(own, http, "aigerim", sender=PORTAL, password=PORTAL_PASSWORD)

    async def quiet() -> bool:
        item = await cabinet_item(own, http, owner, mid)
        return any("delivered to the sender's callback" in (e.get("note") or "") for e in item["history"])

    await wait_for(quiet)
    channel = own.app[CABINET].store.events_channel(owner)
    reads = Faults()
    real_pubsub = hub.redis.pubsub

    def pubsub() -> Any:  # the real PubSub, its reads going through the fault counter
        created = real_pubsub()
        reads.on(monkeypatch, created, "get_message")
        return created

    monkeypatch.setattr(hub.redis, "pubsub", pubsub)
    async with http.get(f"{own.url}/api/v1/cabinet/{owner}/events", headers=own.system.auth()) as response:
        assert response.status == 200
        lines = _lines(response)
        assert await anext(lines) == "retry: 3000"
        assert await _next_line(lines, "event: connected") == "event: connected"
        reads.left = 3  # the next three reads fail: each time the hub drops its subscription and makes a new one
        assert await _next_line(lines, "event:") == "event: resync"  # changes may have been missed: reload
        for n in (1, 2):  # the stream is whole again: every change arrives
            await own.system.redis.publish(channel, json.dumps({"n": n, "senderId": PORTAL}))  # the reader's own
            assert await _next_line(lines, 'data: {"n"') == f'data: {{"n": {n}, "senderId": "{PORTAL}"}}'
        name = hub.redis.connection_pool.connection_kwargs["client_name"]
        named = [c for c in await own.system.redis.client_list() if c["name"] == name]
        assert len(named) == 1  # the failed subscriptions were closed, not leaked
    assert reads.raised == 3


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for raw in response.content:
        if line := raw.decode().strip():
            yield line


async def _next_line(lines: AsyncIterator[str], prefix: str) -> str:
    async with asyncio.timeout(10):
        while not (line := await anext(lines)).startswith(prefix):
            pass
    return line


async def test_the_desk_keeps_taking_jobs_after_the_queue_failed(own, http, monkeypatch) -> None:
    faults = Faults(3).on(monkeypatch, own.app[DESKS].jobs, "claim")  # the gateway answers 503 three times
    head = own.system.pki.person("kitap-head")
    tag = uuid.uuid4().hex[:8]
    document = signer_for(head).sign(build_fund_submission(
        bin=head.bin or "", participant_name=head.organisation or "", kind="library",
        head_name=f"{head.surname} {head.name}",
        objects=[{"title": f"Loops ({tag})", "category": "local-history-literature", "pages": 10,
                  "format": "pdf", "access_level": "first-24-pages", "author_agreement": "АК-2025/018"}]))
    request = {"requestInfo": {"messageId": (mid := str(uuid.uuid4())), "serviceId": FUND_SUBMISSION_SERVICE,
                               "messageDate": datetime.now(UTC).isoformat(),
                               "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
               "requestData": {"data": etree.tostring(document, encoding="unicode")}}
    async with http.post(f"{own.url}/api/v1/requests", json=request) as response:
        assert response.status == 200, await response.text()
    settings = WorkerSettings(gateway_url=own.url, library_url=own.system.library_url, sender=DESK,
                              password=DESK_PASSWORD, worker_name=f"loops-{tag}", poll_wait=1, idle_pause=0.05,
                              max_pause=0.2)
    stop = asyncio.Event()
    async with CommissionDesk(settings) as desk:
        working = asyncio.create_task(desk.run_forever(stop))
        try:
            item = await final_item(own, http, head.bin or "", mid)
        finally:
            stop.set()
            await asyncio.wait_for(working, timeout=10)
    assert item["status"] == "completed", item["history"]
    assert faults.raised == 3
