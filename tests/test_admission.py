"""Admission by queueing delay (issue 9, graceful overload): a standing event-loop delay above the target for an
interval sheds requests beyond the floor with 503 GATEWAY_OVERLOADED and Retry-After, before their body is read;
the gateway admits again once the delay has stayed below the target for an interval.

The decisions are tested with an injected clock (no sleeps); one test makes a real gateway's loop late (a
blocking callback on the loop of the thread it runs in) and talks to it over sockets. That test uses only
bodies that are refused without a back-end call if admitted (malformed JSON and XML), so no admitted request can
time out on a provider while the loop is blocked (the flake of an earlier attempt: 504 PROVIDER_TIMEOUT)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from gateway.access.admission import Admission, AdmissionPolicy, QueueDelay
from gateway.config import ConfigError, LimitSettings, check_settings, settings_from_dict
from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.shell.app import create_app
from gateway.shell.serve import start_site
from tests.helpers import SOAP_ENV, free_port, wait_for

MS = 0.001


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def admission(clock: FakeClock, *, floor: int = 2, cap: int = 5) -> Admission:
    return Admission(AdmissionPolicy(max_in_flight=cap, min_in_flight=floor, target=5 * MS, interval=100 * MS,
                                     retry_after=1), clock=clock)


def feed(gate: Admission, clock: FakeClock, delays_ms: list[float], every_ms: float = 10) -> None:
    for delay in delays_ms:
        clock.now += every_ms * MS
        gate.observe(delay * MS)


def test_a_burst_shorter_than_the_interval_is_let_through() -> None:
    delay = QueueDelay(target=5 * MS, interval=100 * MS)
    now = 0.0
    for sample in [20, 30, 40, 30, 20, 10, 10]:  # about 80 ms above the target
        now += 0.010
        assert not delay.observe(now, sample * MS)
    now += 0.010
    delay.observe(now, 1 * MS)  # on time again: the burst is over
    for _ in range(7):
        now += 0.010
        delay.observe(now, 20 * MS)
    assert not delay.overloaded


def test_a_delay_standing_for_the_interval_sheds_and_a_quiet_interval_admits_again() -> None:
    delay = QueueDelay(target=5 * MS, interval=100 * MS)
    now, changes = 0.0, []
    for sample in [1] + [8] * 15 + [2] * 5 + [9] + [1] * 15:
        now += 0.010
        if delay.observe(now, sample * MS):
            changes.append((round(now, 3), delay.overloaded))
    # over the target from the sample at 20 ms (late by 8 ms: behind since 12 ms), overloaded 100 ms later; the
    # first five on-time samples (a quiet 40 ms) do not end it, the late one at 220 ms restarts the count, and
    # 100 ms of on-time samples after it end it.
    assert changes == [(0.120, True), (0.330, False)]


def test_one_very_late_sample_sheds_at_once() -> None:
    delay = QueueDelay(target=5 * MS, interval=100 * MS)
    assert delay.observe(10.0, 0.300)  # the loop was blocked for 300 ms: a standing delay longer than the interval
    assert delay.overloaded


def test_beyond_the_floor_requests_are_refused_while_overloaded_and_admitted_after() -> None:
    clock = FakeClock()
    gate = admission(clock, floor=2)
    held = [gate.__enter__(), gate.__enter__(), gate.__enter__()]  # not overloaded: up to the cap
    assert gate.in_flight == 3
    feed(gate, clock, [20] * 12)
    assert gate.delay.overloaded
    with pytest.raises(GatewayError) as refused:
        gate.__enter__()
    assert refused.value.code == "GATEWAY_OVERLOADED" and refused.value.retry_after_seconds() == 1
    assert "queueing delay" in (refused.value.detail or "")
    assert gate.in_flight == 3, "a refusal takes no slot"
    for _ in held[:2]:
        gate.__exit__(None, None, None)
    with gate:  # one in flight: under the floor, admitted however late the loop is
        assert gate.in_flight == 2
        with pytest.raises(GatewayError):
            gate.__enter__()
    feed(gate, clock, [1] * 11)  # a quiet interval
    assert not gate.delay.overloaded
    with gate, gate, gate:
        assert gate.in_flight == 4


def test_after_an_overload_the_bound_ramps_up_from_what_is_in_flight_not_at_once() -> None:
    """Requests that waited while the gateway shed are not all admitted in one burst: the bound starts at what is
    in flight plus the floor and grows by the floor for each on-time interval, up to the cap."""
    clock = FakeClock()
    gate = admission(clock, floor=2, cap=9)
    held = [gate.__enter__() for _ in range(3)]
    feed(gate, clock, [20] * 12)
    assert gate.delay.overloaded and gate.bound == 2
    feed(gate, clock, [1] * 11)  # a quiet interval: admitting again, from 3 in flight
    assert not gate.delay.overloaded and gate.bound == 5
    gate.__enter__(), gate.__enter__()
    with pytest.raises(GatewayError) as refused:  # the ramp, not the cap (9)
        gate.__enter__()
    assert refused.value.code == "GATEWAY_OVERLOADED" and "queueing delay" in (refused.value.detail or "")
    feed(gate, clock, [4, 6, 3, 2, 1, 1, 1, 1, 1, 1])  # a late sample (6 ms) starts the on-time interval again
    assert gate.bound == 5
    feed(gate, clock, [1, 1])  # 100 ms on time since the late one
    assert gate.bound == 7
    feed(gate, clock, [1] * 10)
    assert gate.bound == 9  # the cap: never above it
    feed(gate, clock, [1] * 30)
    assert gate.bound == 9
    feed(gate, clock, [20] * 12)  # the next standing queue: back to the floor at once
    assert gate.bound == 2
    assert len(held) == 3


def test_the_in_flight_cap_holds_whatever_the_delay() -> None:
    clock = FakeClock()
    gate = admission(clock, floor=2, cap=3)
    for _ in range(3):
        gate.__enter__()
    with pytest.raises(GatewayError) as refused:
        gate.__enter__()
    assert refused.value.code == "GATEWAY_OVERLOADED" and "in-flight cap" in (refused.value.detail or "")


def test_refusals_are_logged_once_per_interval_never_per_request(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    gate = admission(clock, floor=1)
    gate.__enter__()
    caplog.set_level(logging.WARNING, logger="egov.admission")
    feed(gate, clock, [50] * 12)
    for _ in range(800):  # a second of refusals at 800/s
        clock.now += 1 / 800
        with pytest.raises(GatewayError):
            gate.__enter__()
    assert [record.getMessage().split(";")[0] for record in caplog.records] == ["admission: shedding load"]
    clock.now += 10
    with pytest.raises(GatewayError):
        gate.__enter__()
    assert len(caplog.records) == 2 and "since the last line 801 refused" in caplog.records[1].getMessage()


def test_the_settings_and_their_defaults() -> None:
    limits = LimitSettings()
    assert (limits.queue_delay_target_ms, limits.queue_delay_interval_ms, limits.min_in_flight,
            limits.overload_retry_after_seconds) == (5.0, 25.0, 16, 1)
    policy = AdmissionPolicy.from_limits(replace(limits, max_in_flight=4))
    assert policy.min_in_flight == 4, "the floor never exceeds the cap"
    assert policy.probe_period == pytest.approx(0.0025)
    loaded = settings_from_dict({"limits": {"queue_delay_target_ms": 2, "queue_delay_interval_ms": 50.5}})
    assert (loaded.limits.queue_delay_target_ms, loaded.limits.queue_delay_interval_ms) == (2.0, 50.5)


@pytest.mark.parametrize(("raw", "message"), [
    ({"limits": {"queue_delay_target_ms": 0}}, "limits.queue_delay_target_ms: must be positive"),
    ({"limits": {"queue_delay_interval_ms": float("inf")}}, "limits.queue_delay_interval_ms: must be positive"),
    ({"limits": {"min_in_flight": 0}}, "limits.min_in_flight: must be positive"),
    ({"limits": {"overload_retry_after_seconds": 0}}, "limits.overload_retry_after_seconds: must be positive"),
])
def test_bad_admission_settings_are_refused(raw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        check_settings(settings_from_dict(raw))


# --- end to end: a real gateway whose event loop is made late --------------------------------------------------


class ThreadedGateway:
    """A gateway on its own event loop in a thread, so a test can block that loop while its client goes on."""

    def __init__(self, app: web.Application, port: int) -> None:
        self.app, self.port = app, port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    def __enter__(self) -> ThreadedGateway:
        self.thread.start()
        self.runner = asyncio.run_coroutine_threadsafe(start_site(self.app, "127.0.0.1", self.port),
                                                       self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def block(self, seconds: float) -> threading.Event:
        """Run a callback on the gateway's loop that holds it for ``seconds``; set once it holds it."""
        holding = threading.Event()

        def hold() -> None:
            holding.set()
            time.sleep(seconds)

        self.loop.call_soon_threadsafe(hold)
        return holding


@pytest.fixture
def late_gateway(system, tmp_path) -> Iterator[tuple[ThreadedGateway, str]]:  # type: ignore[no-untyped-def]
    port = free_port()
    limits = replace(system.settings.limits, min_in_flight=2, queue_delay_target_ms=5.0,
                     queue_delay_interval_ms=1000.0)  # a long interval: overloaded for a second after the block
    settings = replace(system.settings, listen=replace(system.settings.listen, port=port), state_dir=tmp_path,
                       limits=limits)
    with ThreadedGateway(create_app(settings, redis_url=system.redis_url), port) as gateway:
        yield gateway, f"http://127.0.0.1:{port}"


async def answer(http: aiohttp.ClientSession, url: str, body: bytes, content_type: str) -> tuple[int, str | None, str]:
    """Status, Retry-After and the error code of one request (REST problem document or SOAP Fault)."""
    async with http.post(url, data=body, headers={"Content-Type": content_type}) as response:
        raw, retry_after = await response.read(), response.headers.get("Retry-After")
    if content_type == "application/json":
        problem = json.loads(raw)
        assert problem.get("retryAfterSeconds") == (int(retry_after) if retry_after else None)
        return response.status, retry_after, problem["code"]
    info = etree.fromstring(raw).find(f".//{{{SOAP_ENV}}}Fault/detail/*")
    assert info is not None
    data = json.loads(info.findtext("errorData") or "{}")
    assert data.get("retryAfterSeconds") == (int(retry_after) if retry_after else None)
    return response.status, retry_after, info.findtext("errorCode") or ""


async def hold_slot(url: str) -> asyncio.StreamWriter:
    """A REST request whose body never finishes: admitted, it holds its slot while it waits for the rest."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    writer.write(b"POST /api/v1/requests HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{")
    await writer.drain()
    return writer


async def test_a_late_event_loop_makes_the_gateway_refuse_then_admit_again(late_gateway, http) -> None:  # type: ignore[no-untyped-def]
    gateway, url = late_gateway
    gate = gateway.app[INTAKE].pipeline.admit()
    cases = {  # admitted, each is refused by its parser (no back-end call); shed, each is GATEWAY_OVERLOADED
        "REST": (f"{url}/api/v1/requests", b"{not json", "application/json"),
        "SyncChannel": (f"{url}/shep/sync", b"<not xml", "text/xml; charset=utf-8"),
        "AsyncChannel": (f"{url}/shep/async", b"<not xml", "text/xml; charset=utf-8"),
    }
    admitted = {"REST": "CLIENT_MALFORMED_JSON", "SyncChannel": "CLIENT_MALFORMED_XML",
                "AsyncChannel": "CLIENT_MALFORMED_XML"}

    async def all_of_them() -> dict[str, tuple[int, str | None, str]]:
        return dict(zip(cases, await asyncio.gather(*(answer(http, *case) for case in cases.values())), strict=True))

    held = [await hold_slot(url) for _ in range(2)]  # the floor is taken
    try:
        async def floor_taken() -> bool:
            return gate.in_flight == 2

        await wait_for(floor_taken)
        before = await all_of_them()
        assert {case: code for case, (_, _, code) in before.items()} == admitted, "not overloaded: admitted"

        refused = None
        for _ in range(3):  # sent while the loop is held, or in the overloaded second after it
            holding = gateway.block(1.2)
            assert await asyncio.to_thread(holding.wait, 10)
            outcome = await all_of_them()
            if all(code == "GATEWAY_OVERLOADED" for _, _, code in outcome.values()):
                refused = outcome
                break
        assert refused is not None, f"never shed: {outcome}"
        assert refused == {"REST": (503, "1", "GATEWAY_OVERLOADED"), "SyncChannel": (500, "1", "GATEWAY_OVERLOADED"),
                           "AsyncChannel": (500, "1", "GATEWAY_OVERLOADED")}
        assert gate.in_flight == 2, "the refused took no slot; the held ones are still held"

        async def admitted_again() -> bool:
            outcome = await all_of_them()
            return {case: code for case, (_, _, code) in outcome.items()} == admitted

        await wait_for(admitted_again, seconds=20)
        assert not gate.delay.overloaded
    finally:
        for writer in held:
            writer.close()

    async def slots_back() -> bool:
        return gate.in_flight == 0

    await wait_for(slots_back)
