"""Fault tests of delivery (issue 10, part A): nothing stuck, nothing lost, nothing processed twice.

Real processes (tests/fault_world.py): the gateway (``egov-gateway serve``), the library mock
(``python -m mocks.library``) and the commission desks each run in their own interpreter and are killed with
SIGKILL; Redis is the session's embedded server, each test under its own key prefix. Duplicates are counted at
the library (``GET /_control/stats``: a document processed more than once, by the gateway's application id in
``X-Request-Id``). Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from mocks.portal.applicant import FUND_SUBMISSION_SERVICE
from tests.fault_world import (
    PEOPLE,
    PORTAL_AUTH,
    World,
    assert_retryable,
    delivery_world,
    rest_body,
    result_of,
    soap_envelope,
    wait_until,
)
from tests.helpers import FINAL, PORTAL

pytestmark = pytest.mark.faults


@pytest.fixture
async def world(pki, redis_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with delivery_world(pki, redis_url, tmp_path) as built:
        yield built


@dataclass
class Load:
    """The applications a test's clients offered, and what they saw."""

    kind: dict[str, str] = field(default_factory=dict)
    """messageId -> 'sync' (REST, the ticket in the answer), 'soap' (SyncChannel), 'async' (AsyncChannel) or
    'fund' (REST, a queued fund submission the desks handle)."""
    owner: dict[str, str] = field(default_factory=dict)
    "messageId -> the owner whose cabinet holds it (the applicant's IIN, the organisation's BIN for 'fund')."
    body: dict[str, bytes] = field(default_factory=dict)
    "messageId -> the request, sent again byte for byte."
    acked: dict[str, str] = field(default_factory=dict)
    "messageId -> application id (sessionId) of every acknowledged application."
    tickets: dict[str, str] = field(default_factory=dict)
    "'sync' messageId -> the ticket in its first 200."
    in_flight: Counter[str] = field(default_factory=Counter)
    "Requests awaiting an answer now, by kind."
    cut: Counter[str] = field(default_factory=Counter)
    "Requests cut off by a kill (sent while the gateway ran, no answer), by kind."
    refusals: Counter[str] = field(default_factory=Counter)
    "Retryable refusals by code (each one checked for Retry-After)."

    def add(self, pki, kind: str) -> str:  # type: ignore[no-untyped-def]
        """A new application of ``kind``, signed now; its messageId."""
        mid, handle = str(uuid.uuid4()), "murager-signer" if kind == "fund" else PEOPLE[len(self.kind) % 3]
        self.body[mid] = (rest_body(pki, handle, mid, FUND_SUBMISSION_SERVICE) if kind == "fund"
                          else rest_body(pki, handle, mid) if kind == "sync"
                          else soap_envelope(pki, handle, "async" if kind == "async" else "sync", mid))
        person = pki.person(handle)
        self.kind[mid], self.owner[mid] = kind, person.bin if kind == "fund" else person.iin
        return mid

    def of(self, *kinds: str) -> list[str]:
        return [mid for mid, kind in self.kind.items() if kind in kinds]

    def line(self) -> str:
        return (f"offered {Counter(self.kind.values())}, acknowledged {len(self.acked)}, cut off {dict(self.cut)}, "
                f"refusals {dict(self.refusals)}")


async def attempt(world: World, load: Load, mid: str) -> bool:
    """Send the application once: True once acknowledged; False after a retryable refusal (checked for
    Retry-After) or no answer; any other answer fails the test."""
    kind, kills = load.kind[mid], world.kills
    load.in_flight[kind] += 1
    try:
        if kind in ("async", "soap"):
            status, answer, headers = await world.soap(kind.replace("soap", "sync"), load.body[mid])
            code, seconds = answer.get("errorCode"), answer["errorData"].get("retryAfterSeconds")
            session = answer["sessionId"] if status == 200 and code is None else None
        else:
            status, answer, headers = await world.send(load.body[mid])
            code, seconds = answer.get("code"), answer.get("retryAfterSeconds")
            session = answer["responseInfo"]["sessionId"] if status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        if world.kills != kills:
            load.cut[kind] += 1
        return False
    finally:
        load.in_flight[kind] -= 1
    if session is None:
        assert_retryable(status, code, headers, seconds)
        load.refusals[str(code)] += 1
        return False
    assert load.acked.setdefault(mid, session) == session, f"{mid}: one messageId, two applications"
    if kind == "sync":
        assert load.tickets.setdefault(mid, result_of(answer)) == result_of(answer), "a resend's other ticket"
    elif kind == "fund":  # a resend of one acknowledged unseen answers where it has got to since
        assert answer["applicationStatus"] in {"accepted", "routed", "in_progress", "completed"}, answer
    return True


async def until_acknowledged(world: World, load: Load, mid: str) -> None:
    """A client: the same request again after every retryable refusal or lost answer (bounded)."""
    deadline = time.monotonic() + 90
    while not await attempt(world, load, mid):
        assert time.monotonic() < deadline, f"{load.kind[mid]} {mid} never acknowledged: {load.line()}"
        await asyncio.sleep(0.2)


async def assert_all_completed_once(world: World, load: Load) -> None:
    """acked = final, lost = 0 (every application the gateway acknowledged is completed in its cabinet, none
    stored twice), processed twice = 0 (the library processed each exactly once, and nothing else)."""
    assert set(load.acked) == set(load.kind), f"not acknowledged: {set(load.kind) - set(load.acked)}"
    final = await world.settle(load.owner)
    lost = [mid for mid, status in final.items() if status is None]
    assert not lost, f"lost: {len(lost)} acknowledged applications unknown to the gateway; {load.line()}"
    open_or_failed = Counter(f"{load.kind[mid]} {status}" for mid, status in final.items() if status != "completed")
    assert not open_or_failed, f"acked = final: not completed: {open_or_failed}; {load.line()}"
    for owner, count in Counter(load.owner.values()).items():
        assert await world.stored(owner) == count, "an application stored twice at the gateway"
    stats = await world.library("stats")
    assert stats["duplicates"] == [], f"processed twice at the library: {stats['duplicates'][:5]}"
    # each completed one was processed at least once (its ticket or receipt names it); no stray ids
    assert stats["documents"] == len(load.kind), stats


# ------------------------------------------------------------------------------------------ gateway killed

KILLS = 3
"SIGKILLs of the gateway under the mixed load, each followed by a restart."
MIX = ("sync", "async", "fund", "sync", "async")
"The order the kinds are offered in, over and over."
RATE = 5.0
"Applications offered per second while the gateway is killed and restarted."
ACKS_BEFORE_KILL = 6
"Each kill comes once this many applications were acknowledged since the gateway (re)started (an event)."
TAIL = 10
"Applications offered after the last restart."


async def test_gateway_killed_three_times_under_mixed_traffic_nothing_stuck_lost_or_registered_twice(
        world: World, pki) -> None:
    """Sync REST reader registrations, AsyncChannel SOAP ones and REST fund submissions (queued, two desk
    processes handle them) offered at a steady rate; the gateway is SIGKILLed three times, each while a sync call
    is under way, and started again. The library answers every call 0.5 s after doing the work, so a kill cuts
    calls off there. Clients resend the same request after no answer or a retryable refusal (each with
    Retry-After). In the end every acknowledged application is completed, stored once and processed once by the
    library (the orphans delivered again were answered from its Idempotency-Key memory); every sync messageId
    resent answers the ticket it first got, never 409 for good, and none is left ``routed``."""
    await world.library("fail", {"late": 0.5})
    desks = [world.desk(n) for n in (1, 2)]
    load, kinds = Load(), itertools.cycle(MIX)
    clients: list[asyncio.Future[None]] = []

    async def offer(until: Callable[[], bool]) -> None:
        start, n = time.monotonic(), 0
        while not until():
            await asyncio.sleep(max(0.0, start + n / RATE - time.monotonic()))  # the offered rate, not a wait
            clients.append(asyncio.ensure_future(until_acknowledged(world, load, load.add(pki, next(kinds)))))
            n += 1

    async def kill() -> None:
        for _ in range(KILLS):
            since = len(load.acked)

            async def under_way(since: int = since) -> bool:
                return len(load.acked) >= since + ACKS_BEFORE_KILL and load.in_flight["sync"] > 0
            await wait_until(under_way, 60, f"kill {world.kills + 1}: traffic under way; {load.line()}")
            world.kill_gateway()
            await world.start_gateway()

    killer = asyncio.ensure_future(kill())
    try:
        await offer(killer.done)
        await killer
        await world.library("reset")
        offered = len(load.kind)
        await offer(lambda: len(load.kind) >= offered + TAIL)
        await asyncio.wait_for(asyncio.gather(*clients), 120)
    finally:
        killer.cancel()
        for client in clients:
            client.cancel()
    print(load.line())
    assert load.cut["sync"] >= 1, f"the kills cut no sync call off: {load.line()}"

    await assert_all_completed_once(world, load)
    assert (await world.library("stats"))["replayed"] >= 1, "no call was repeated: no kill left an orphan"
    # acked = final on the sync channel: a resend answers the ticket the first 200 gave, at once
    for mid in load.of("sync"):
        status, answer, _ = await world.send(load.body[mid])
        assert status == 200 and result_of(answer) == load.tickets[mid], answer
    for mid in load.of("async"):  # the same acknowledgement, no second application
        status, answer, _ = await world.soap("async", load.body[mid])
        assert (status, answer["sessionId"]) == (200, load.acked[mid]), answer
    assert all(desk.poll() is None for desk in desks), world.processes.logs()


# ------------------------------------------------------------------------------------------ library down

OUTAGE_SECONDS = 6.0
"How long the library answers 503 under load."
OUTAGE_RATE = 5.0
"Sync and async applications offered per second each during the outage."


async def test_library_down_under_sync_and_async_load_sync_gets_retryable_refusals_then_every_message_succeeds(
        world: World, pki) -> None:
    """The library answers 503 for six seconds while 5 sync REST and 5 AsyncChannel applications a second
    arrive: every sync call gets 502 PROVIDER_UNAVAILABLE with Retry-After and stays open (never stored as
    failed), a SyncChannel call gets the same as a Fault, every async one is acknowledged. The half-open breaker
    lets exactly one trial through. Once the library is back every sync messageId, sent again, gets its result
    and every application, async ones too, is completed, each processed once by the library."""
    await world.library("fail", {"status": 503, "count": 100_000})
    load = Load()

    async def one(kind: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))  # the offered rate, not a wait
        mid = load.add(pki, kind)
        if kind == "async":
            await until_acknowledged(world, load, mid)
            return
        status, answer, headers = await world.send(load.body[mid])
        assert (status, answer.get("code")) == (502, "PROVIDER_UNAVAILABLE"), answer
        assert_retryable(status, answer["code"], headers, answer["retryAfterSeconds"])

    start = time.monotonic()
    await asyncio.gather(*(one(kind, start + n / OUTAGE_RATE) for n in range(int(OUTAGE_SECONDS * OUTAGE_RATE))
                           for kind in ("sync", "async")))
    mid = load.add(pki, "soap")
    status, fault, headers = await world.soap("sync", load.body[mid])
    assert (status, fault["errorCode"]) == (500, "PROVIDER_UNAVAILABLE"), fault
    assert_retryable(status, fault["errorCode"], headers, fault["errorData"]["retryAfterSeconds"])
    sync = load.of("sync", "soap")
    statuses = await asyncio.gather(*(world.status(load.owner[mid], mid) for mid in sync))
    assert all(status is not None and status not in FINAL for status in statuses), Counter(statuses)

    # The breaker is open. Hold the trial at the library, then ask five times at once while it is out.
    await world.library("fail", {"status": 503, "count": 100_000, "delay": 3.0})
    before = (await world.library("stats"))["requests"]
    # The open applications are retried in the background: one of them is the trial (the old code retried none,
    # so there the burst below finds the breaker half-open itself).
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: world.library_has(before + 1), 5, "the half-open trial call")
    started = time.monotonic()
    burst = await asyncio.gather(*(world.send(load.body[load.add(pki, "sync")]) for _ in range(5)))
    assert (await world.library("stats"))["requests"] == before + 1, "half-open: exactly one trial call"
    assert time.monotonic() - started < 2.5, "refused at once while the trial is out, not sent to the library"
    assert [(s, a["code"]) for s, a, _ in burst] == [(502, "PROVIDER_UNAVAILABLE")] * 5
    for status, answer, headers in burst:
        assert_retryable(status, answer["code"], headers, answer["retryAfterSeconds"])

    await world.library("reset")
    await asyncio.wait_for(asyncio.gather(*(until_acknowledged(world, load, mid) for mid in load.of("sync", "soap"))),
                           120)
    print(load.line())
    await assert_all_completed_once(world, load)


# ------------------------------------------------------------------------- killed between claim and record


async def test_a_kill_right_after_the_message_id_claim_never_blocks_the_message_id(
        world: World, pki, redis_url: str) -> None:
    """SIGKILL the gateway the moment Redis executes the messageId claim, with writes paused so nothing after it
    lands: the claim was written together with its application or not at all, so the restarted gateway answers
    the resent messageId with its ticket (on the old code: 409 CLIENT_DUPLICATE_IN_PROGRESS for good)."""
    mid = str(uuid.uuid4())
    body = rest_body(pki, "daniyar", mid)
    # MONITOR reports the claim a moment after it ran: should this process read it late, the library's held
    # answer keeps the request from finishing before the kill (seen once under load: "DID NOT RAISE")
    await world.library("fail", {"delay": 3.0})
    redis, pauser = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        async with redis.monitor() as monitor:
            request = asyncio.ensure_future(world.send(body))
            async for command in monitor.listen():
                words = str(command.get("command", ""))
                if words.startswith("SET ") and f":msg:{PORTAL}:{mid}" in words:
                    await pauser.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
                    world.kill_gateway()
                    break
        await pauser.execute_command("CLIENT", "UNPAUSE")
        with pytest.raises(aiohttp.ClientError):
            await request
    finally:
        await pauser.execute_command("CLIENT", "UNPAUSE")
        await redis.aclose()
        await pauser.aclose()
    await world.library("reset")
    await world.start_gateway()
    status, answer = await world.outcome(body, seconds=20)
    assert status == 200, answer
    result_of(answer)
    assert (await world.library("stats"))["duplicates"] == []


# ------------------------------------------------------------------------------------------- desks killed


async def test_desks_killed_mid_job_the_next_desk_finishes_it_registered_once(world: World, pki) -> None:
    """Two commission desks are SIGKILLed in turn while the library holds back its registration receipt; the third
    desk takes the reclaimed job over and completes it: the registration the first desk made is answered again
    (Idempotency-Key), never refused as LIB_DUPLICATE_OBJECT, and the library registered the submission once."""
    head = pki.person("murager-signer")
    mid = str(uuid.uuid4())
    status, answer, _ = await world.send(rest_body(pki, "murager-signer", mid, FUND_SUBMISSION_SERVICE))
    assert (status, answer["applicationStatus"]) == (200, "accepted"), answer
    await world.library("fail", {"late": 30})  # registered, the receipt held back: the desk dies waiting
    for desk in (1, 2):
        before = (await world.library("stats"))["requests"]
        process = world.desk(desk)
        await wait_until(lambda b=before: world.library_has(b + 1), 20, f"desk {desk} registering")
        await wait_until(lambda: _registered(world), 5, "the library handling the registration")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    await world.library("reset")
    world.desk(3)

    async def final() -> dict[str, Any] | None:
        async with world.http.get(f"{world.gateway_url}/api/v1/cabinet/{head.bin}/applications/{mid}",
                                  headers=PORTAL_AUTH) as response:
            item = dict(await response.json())
        return item if item.get("status") in FINAL else None
    item = await wait_until(final, 40, "the application final", every=0.2)
    assert item["status"] == "completed", (item.get("errorCode"), [e["note"] for e in item["history"]])
    stats = await world.library("stats")
    assert stats["documents"] == 1 and stats["duplicates"] == [], "registered once at the library"
    assert stats["replayed"] >= 2, "the reclaimed jobs got the first receipt again"




async def _registered(world: World) -> bool:
    stats = await world.library("stats")
    return bool(stats["documents"] >= 1)
