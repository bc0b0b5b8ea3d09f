"""Delivery's failure paths, fast: the real Delivery, the real Redis, a real back-end on a local socket.

Each test drives ``Delivery.process`` / ``deliver_now`` itself (no loop timing), except the crash recovery,
which waits for the application to become final (an event), never for a fixed time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from lxml import etree
from redis.asyncio import Redis

from connectors.base import ConnectorError, Submission
from connectors.rest import MAX_ANSWER_BYTES, RestConnector
from gateway.config import (
    ConnectorKind,
    DeliverySettings,
    ServiceSettings,
    Settings,
    TrustSettings,
)
from gateway.delivery.engine import Delivery
from gateway.delivery.registry import Service, ServiceRegistry
from gateway.errors import GatewayError
from gateway.lifecycle.application import Application, Status
from gateway.lifecycle.store import ApplicationStore, utc_now
from gateway.lifecycle.transitions import IllegalTransition, Lifecycle
from gateway.shell.app import build_verifier
from mocks.pki import TestPki
from signing.policy import RevocationMode
from signing.revocation import RevocationSettings
from signing.signer import DocumentSigner, SigningKey
from signing.xmlsafe import XmlLimits

SERVICE = "test.paths"
ANSWER = (b"<?xml version='1.0' encoding='UTF-8'?><answer><iin>900101300001</iin>"
          b"<applicationId>{request_id}</applicationId><ticket>T-1</ticket></answer>")
"What the back-end answers; it names the application it answers by the gateway's X-Request-Id, as a real one does."


@dataclass
class Backend:
    """A REST back-end on a real socket whose next answers the test sets."""

    url: str = ""
    status: int = 200
    body: bytes = ANSWER
    content_type: str = "application/xml"
    hang: bool = False
    signer: DocumentSigner | None = None
    "Signs each answer (after naming the application in it), as a provider does."
    sent: bytes = b""
    calls: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        await request.read()
        if self.hang:  # held until the test ends: only the caller's timeout ends the call
            await self.released.wait()
        body = self.body.replace(b"{request_id}", request.headers.get("X-Request-Id", "").encode())
        if self.signer is not None:
            body = self.signer.sign_bytes(etree.fromstring(body))
        self.sent = body
        return web.Response(status=self.status, body=body, content_type=self.content_type)


@pytest_asyncio.fixture
async def backend() -> AsyncIterator[Backend]:
    state = Backend()
    app = web.Application()
    app.router.add_post("/answer", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/answer"
    try:
        yield state
    finally:
        state.released.set()
        await runner.cleanup()


@dataclass
class Rig:
    """The parts a delivery needs, over a key prefix of its own."""

    redis: Redis
    lifecycle: Lifecycle
    session: aiohttp.ClientSession
    pki: TestPki
    backend: Backend

    def delivery(self, settings: DeliverySettings | None = None, **service: object) -> tuple[Delivery, Service]:
        options: dict[str, object] = {"endpoint": self.backend.url, "retry_attempts": 1, "breaker_failures": 50,
                                      "timeout_seconds": 5.0, **service}
        registry = ServiceRegistry.build({SERVICE: ServiceSettings(**options)},  # type: ignore[arg-type]
                                         {ConnectorKind.REST: RestConnector(self.session)})
        files = self.pki.systems["gateway"]
        verifier = build_verifier(Settings(trust=TrustSettings(anchors=self.pki.trust_anchors,
                                                               intermediates=self.pki.intermediates),
                                           revocation=RevocationSettings(mode=RevocationMode.OFF)))
        delivery = Delivery(redis=self.redis, prefix=self.lifecycle.store.prefix, store=self.lifecycle.store,
                            lifecycle=self.lifecycle, registry=registry,
                            signer=DocumentSigner(SigningKey.from_pem(files.cert, files.key)),
                            provider_verifier=verifier, xml_limits=XmlLimits(MAX_ANSWER_BYTES * 2, 64, 20_000),
                            settings=settings or DeliverySettings())
        found = registry.get(SERVICE)
        assert found is not None
        return delivery, found

    async def accept(self, delivery: Delivery, mode: str = "async") -> Application:
        now = utc_now()
        app = Application(id="{" + str(uuid.uuid4()) + "}", sender_id="portal", message_id=str(uuid.uuid4()),
                          service_id=SERVICE, channel="rest", applicant_iin="900101300001", applicant_name="A",
                          status=Status.ACCEPTED, created_at=now, updated_at=now,
                          document=b"<application><iin>900101300001</iin></application>", report={}, mode=mode)
        await self.lifecycle.accept(app, lease=delivery.lease_for(app),
                                    route_note="sent to the back-end over rest" if mode == "sync" else None)
        return app

    async def stored(self, app: Application) -> Application:
        found = await self.lifecycle.store.get(app.id)
        assert found is not None
        return found

    def provider(self, name: str = "library") -> DocumentSigner:
        files = self.pki.systems[name]
        return DocumentSigner(SigningKey.from_pem(files.cert, files.key))

    def provider_signed(self, name: str = "library") -> bytes:
        return self.provider(name).sign_bytes(etree.fromstring(ANSWER))


@pytest_asyncio.fixture
async def rig(redis_url: str, pki: TestPki, backend: Backend) -> AsyncIterator[Rig]:
    redis = Redis.from_url(redis_url)
    async with aiohttp.ClientSession() as session:
        yield Rig(redis, Lifecycle(ApplicationStore(redis, f"t{uuid.uuid4().hex[:8]}")), session, pki, backend)
    await redis.aclose()


# ----------------------------------------------------------------------------------- attempts and replay

async def test_stopped_after_delivery_attempts_then_replayed_by_an_operator(rig: Rig) -> None:
    delivery, _ = rig.delivery(DeliverySettings(delivery_attempts=3))
    app = await rig.accept(delivery)
    rig.backend.status = 503
    for _ in range(3):
        await delivery.process(app.id)
    stopped = await rig.stored(app)
    assert stopped.status is Status.STOPPED and stopped.error_code == "PROVIDER_UNAVAILABLE"
    assert rig.backend.calls == 3 and await delivery.outbox.due_in(app.id) is None
    notes = [event["note"] for event in await rig.lifecycle.store.history(app.id)]
    assert notes[-1] == "delivery stopped after 3 attempts; an operator may replay it"

    rig.backend.status = 200
    await delivery.replay(stopped)
    due = await delivery.outbox.due_in(app.id)
    assert due is not None and due <= 0, "replayed: due at once"
    await delivery.process(app.id)
    done = await rig.stored(app)
    assert done.status is Status.COMPLETED and done.attempts == 1 and done.error_code is None
    assert b"Signature" in (done.result or "").encode(), "signed by the gateway"
    with pytest.raises(IllegalTransition):
        await delivery.replay(done)


# ----------------------------------------------------------------------------------------- the answer

async def test_missing_provider_signature_fails_async_and_sync(rig: Rig) -> None:
    delivery, service = rig.delivery(provider_signature="required")
    app = await rig.accept(delivery)
    await delivery.process(app.id)
    failed = await rig.stored(app)
    assert failed.status is Status.FAILED and failed.error_code == "PROVIDER_SIGNATURE_INVALID"
    assert await delivery.outbox.due_in(app.id) is None

    sync = await rig.accept(delivery, mode="sync")
    with pytest.raises(GatewayError) as caught:
        await delivery.deliver_now(sync, service)
    assert caught.value.code == "PROVIDER_SIGNATURE_INVALID"
    assert (await rig.stored(sync)).status is Status.FAILED and await delivery.outbox.due_in(sync.id) is None


async def test_tampered_provider_signature_is_invalid(rig: Rig) -> None:
    delivery, service = rig.delivery(provider_signature="required")
    rig.backend.body = rig.provider_signed().replace(b"T-1", b"T-2")
    app = await rig.accept(delivery, mode="sync")
    with pytest.raises(GatewayError) as caught:
        await delivery.deliver_now(app, service)
    assert caught.value.code == "PROVIDER_SIGNATURE_INVALID"
    assert (await rig.stored(app)).error_code == "PROVIDER_SIGNATURE_INVALID"


async def test_an_answer_signed_by_another_organisation_is_invalid(rig: Rig) -> None:
    delivery, _ = rig.delivery(provider_signature="required", provider_bin=rig.pki.system_bins["elicense"])
    rig.backend.signer = rig.provider("library")
    app = await rig.accept(delivery)
    await delivery.process(app.id)
    failed = await rig.stored(app)
    assert failed.error_code == "PROVIDER_SIGNATURE_INVALID" and "not by the provider" in (failed.error_detail or "")


async def test_a_correctly_signed_answer_is_stored_as_the_provider_signed_it(rig: Rig) -> None:
    delivery, service = rig.delivery(provider_signature="required", provider_bin=rig.pki.system_bins["library"])
    rig.backend.signer = rig.provider("library")
    app = await rig.accept(delivery, mode="sync")
    assert await delivery.deliver_now(app, service) == rig.backend.sent
    assert (await rig.stored(app)).status is Status.COMPLETED


async def test_a_result_failing_its_schema_is_a_bad_response(rig: Rig) -> None:
    delivery, _ = rig.delivery(result_schema="kazneb/reader-ticket.xsd")
    app = await rig.accept(delivery)
    await delivery.process(app.id)
    failed = await rig.stored(app)
    assert failed.status is Status.FAILED and failed.error_code == "PROVIDER_BAD_RESPONSE"
    assert await delivery.outbox.due_in(app.id) is None


# ------------------------------------------------------------------------------------------ the breaker

async def test_an_open_breaker_keeps_the_async_path_off_the_back_end(rig: Rig) -> None:
    now = [1000.0]
    delivery, service = rig.delivery(breaker_failures=1, breaker_reset_seconds=30.0)
    delivery.breaker(service).clock = lambda: now[0]
    app = await rig.accept(delivery)
    rig.backend.status = 503
    await delivery.process(app.id)  # fails once: the breaker opens
    assert rig.backend.calls == 1
    await delivery.process(app.id)
    assert rig.backend.calls == 1, "the back-end is not called while the breaker is open"
    due = await delivery.outbox.due_in(app.id)
    assert due is not None and 25 < due <= 30, "the application waits for the breaker's trial call"
    assert (await rig.stored(app)).status is Status.ROUTED

    rig.backend.status, now[0] = 200, now[0] + 31  # the reset time passed: one trial call closes it
    await delivery.process(app.id)
    assert rig.backend.calls == 2 and (await rig.stored(app)).status is Status.COMPLETED


# ------------------------------------------------------------------------------------ the REST connector

async def test_rest_timeout(rig: Rig) -> None:
    delivery, service = rig.delivery(timeout_seconds=0.2)
    rig.backend.hang = True
    app = await rig.accept(delivery, mode="sync")
    with pytest.raises(GatewayError) as caught:
        await delivery.deliver_now(app, service)
    assert caught.value.code == "PROVIDER_TIMEOUT" and caught.value.retry_after_seconds() is not None
    stored = await rig.stored(app)
    assert (stored.status, stored.error_code) == (Status.ROUTED, None), "a transient failure is not final"
    due = await delivery.outbox.due_in(app.id)
    assert due is not None and due <= caught.value.retry_after_seconds(), "delivered in the background then"


@pytest.mark.parametrize(("body", "content_type", "detail"), [
    (b"<a>" + b"x" * MAX_ANSWER_BYTES + b"</a>", "application/xml", "answer larger than 4 MiB"),
    (ANSWER, "text/plain", "unexpected content type text/plain"),
])
async def test_rest_oversize_or_wrong_content_type_is_a_bad_response(
        rig: Rig, body: bytes, content_type: str, detail: str) -> None:
    rig.backend.body, rig.backend.content_type = body, content_type
    with pytest.raises(ConnectorError) as raw:
        await RestConnector(rig.session).submit(Submission(rig.backend.url, SERVICE, "{id}", b"<a/>", 5.0))
    assert (raw.value.code, raw.value.detail, raw.value.transient) == ("PROVIDER_BAD_RESPONSE", detail, False)

    delivery, _ = rig.delivery()
    app = await rig.accept(delivery)
    await delivery.process(app.id)
    failed = await rig.stored(app)
    assert (failed.status, failed.error_code, failed.error_detail) == (Status.FAILED, "PROVIDER_BAD_RESPONSE", detail)


# ------------------------------------------------------------------------------------ one lease model

async def test_a_sync_application_releases_its_lease_when_answered(rig: Rig) -> None:
    delivery, service = rig.delivery()
    app = await rig.accept(delivery, mode="sync")
    due = await delivery.outbox.due_in(app.id)
    assert due is not None and due > 60, "recorded with a lease due only after lease_seconds"
    await delivery.deliver_now(app, service)
    assert await delivery.outbox.due_in(app.id) is None and rig.backend.calls == 1


async def test_a_sync_application_whose_request_died_is_delivered_once_by_the_loop(rig: Rig) -> None:
    delivery, _ = rig.delivery(DeliverySettings(lease_seconds=0.3, idle_poll_seconds=0.05))
    final = asyncio.Event()

    async def listener(changed: Application) -> None:
        if changed.status.final:
            final.set()

    rig.lifecycle.listeners.append(listener)
    app = await rig.accept(delivery, mode="sync")  # ... and the process "dies": deliver_now never runs
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.create_task(delivery.run(stop))
    try:
        await asyncio.wait_for(final.wait(), timeout=10)
    finally:
        stop.set()
        await loop
    assert time.monotonic() - started >= 0.25, "not before its lease fell due"
    done = await rig.stored(app)
    assert done.status is Status.COMPLETED and rig.backend.calls == 1
    assert await delivery.outbox.size() == 0, "nothing left to deliver twice"
