"""The storage, delivery schedule, queue, throttle/quota and cabinet code against BOTH a single redis-server and
a local Redis Cluster (3 primaries, 3 replicas): every multi-key write must stay within one slot, and the create
steps of an application must leave it whole after a crash between any two of them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import cast

import pytest
import pytest_asyncio
from redis.asyncio import Redis, RedisCluster

from connectors.queue import JobQueue
from gateway.access.quotas import QuotaCounter
from gateway.access.throttle import Admission, FailureThrottle
from gateway.config import AuthSettings, QuotaSettings, SenderSettings
from gateway.delivery.schedule import LeaseSchedule
from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.lifecycle.application import Application, Status
from gateway.lifecycle.store import ApplicationStore, OpenSteps, utc_now
from gateway.messagelog.journal import LogKeys, is_cluster
from gateway.shell.app import create_app
from gateway.shell.serve import start_site
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from tests.helpers import PORTAL, free_port, make_settings, rest_request

IIN, BIN = "900101300001", "123456789012"


@pytest_asyncio.fixture(params=["single", "cluster"])
async def backend(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[tuple[Redis, str]]:
    """(client, key prefix) of a single redis-server or of the local cluster (flushed)."""
    if request.param == "single":
        client: Redis = Redis.from_url(request.getfixturevalue("redis_url"))
    else:
        cluster = request.getfixturevalue("redis_cluster")
        await asyncio.to_thread(cluster.wait_healthy, 30.0)
        client = cast(Redis, RedisCluster.from_url(cluster.url))  # the same command API, one slot per command
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]
    try:
        yield client, prefix
    finally:
        await client.aclose()


def application(message_id: str | None = None) -> Application:
    now = utc_now()
    return Application(id="{" + str(uuid.uuid4()) + "}", sender_id="portal", message_id=message_id or str(uuid.uuid4()),
                       service_id="svc", channel="rest", applicant_iin=IIN, applicant_bin=BIN, applicant_name="A",
                       status=Status.ACCEPTED, created_at=now, updated_at=now, document=b"<d/>", report={},
                       mode="async")


ACCEPTED = [(Status.ACCEPTED, "recorded")]


async def whole(store: ApplicationStore, app: Application, outbox: str) -> None:
    """Recorded once, claimed, scheduled once, listed once in both owners' cabinets, findable, not open."""
    assert await store.holder("portal", app.message_id) == app.id
    assert (await store.find_by_message("portal", app.message_id)).id == app.id  # type: ignore[union-attr]
    assert await store.redis.zscore(outbox, app.id) is not None
    assert await store.redis.zcard(outbox) == 1
    for owner in (IIN, BIN):
        total, listed = await store.list_for(owner, sender_id="portal")
        assert total == 1 and [a.id for a in listed] == [app.id]
        assert (await store.find_for(owner, app.message_id, sender_id="portal")).id == app.id  # type: ignore[union-attr]
    assert not await store.is_open(app.id)


async def test_store_create_duplicate_list_find_save_and_the_final_guard(backend: tuple[Redis, str]) -> None:
    redis, prefix = backend
    store, outbox = ApplicationStore(redis, prefix), f"{prefix}:outbox"
    first = application()
    assert await store.create(first, ACCEPTED, schedule=outbox) is None
    await whole(store, first, outbox)
    rival = application(first.message_id)
    assert await store.create(rival, ACCEPTED, schedule=outbox) == first.id
    assert await store.get(rival.id) is None and await store.history(rival.id) == []  # nothing of the loser left
    others = [application() for _ in range(3)]
    for other in others:
        assert await store.create(other, ACCEPTED, schedule=outbox) is None
    total, page = await store.list_for(IIN, sender_id=None, offset=0, limit=2)
    assert total == 4 and len(page) == 2 and {a.id for a in page} <= {first.id, *(o.id for o in others)}
    done = replace(first, status=Status.COMPLETED, result="<r/>")
    assert await store.save(done, "completed")
    stale = replace(first, status=Status.ROUTED)
    assert not await store.save(stale, "a stale copy"), "a final state is never overwritten"
    assert (await store.get(first.id)).status is Status.COMPLETED  # type: ignore[union-attr]
    await store.note(done, "a note")
    assert [e["note"] for e in await store.history(first.id)] == ["recorded", "completed", "a note"]


async def test_lease_schedule_lease_renew_done(backend: tuple[Redis, str]) -> None:
    redis, prefix = backend
    schedule = LeaseSchedule(redis, f"{prefix}:outbox")
    await schedule.schedule("a")
    await schedule.schedule("b", 60)
    assert await schedule.lease(lease_seconds=30) == ["a"]
    assert await schedule.lease(lease_seconds=30) == [], "leased: invisible"
    await schedule.schedule("a")  # renewed as due now (a retry)
    assert await schedule.lease_member("a", lease_seconds=30)
    assert await schedule.done("a") and not await schedule.done("a")
    assert await schedule.size() == 1


async def test_queue_enqueue_claim_ack_release(backend: tuple[Redis, str]) -> None:
    redis, prefix = backend
    queue = JobQueue(redis, prefix=prefix)
    first = await queue.enqueue("svc", {"n": "1"})
    job = await queue.claim("svc", "w1", block_ms=100)
    assert job is not None and job.entry_id == first
    await queue.fail("svc", job.entry_id, "w1", job.lease, "try again")  # released: claimable at once
    again = await queue.claim("svc", "w2", block_ms=100)
    assert again is not None and again.entry_id == first and again.attempt == 2
    assert await queue.ack("svc", again.entry_id) and not await queue.ack("svc", again.entry_id)
    assert (await queue.stats("svc"))["pending"] == 0


async def test_throttle_and_quotas(backend: tuple[Redis, str]) -> None:
    redis, prefix = backend
    throttle = FailureThrottle(redis, prefix, AuthSettings(address_failures=2, sender_failures=100,
                                                           window_seconds=60, lockout_seconds=300))
    admission = await throttle.admit("portal", "10.0.0.1")
    await throttle.failed(admission)
    await throttle.failed(admission)
    with pytest.raises(GatewayError) as refused:
        await throttle.admit("portal", "10.0.0.1")
    assert refused.value.code == "CLIENT_TOO_MANY_ATTEMPTS"
    await throttle.failed(Admission(admission.address_key, admission.sender_key, False))
    await throttle.failed(Admission(admission.address_key, admission.sender_key, False))
    with pytest.raises(GatewayError) as locked:
        await throttle.admit("portal", "10.0.0.1")
    assert locked.value.code == "CLIENT_LOCKED_OUT"
    quotas = QuotaCounter(redis, prefix, {"portal": SenderSettings(
        password_hash="x", quotas={"svc": QuotaSettings(per_second=100, per_day=2)})})
    await quotas.count("portal", "svc")
    await quotas.count("portal", "svc")
    with pytest.raises(GatewayError) as over:
        await quotas.count("portal", "svc")
    assert over.value.code == "CLIENT_QUOTA_EXCEEDED"
    (usage,) = await quotas.usage("portal", ["svc", "other"])
    assert usage.today == 2


async def test_message_log_keys_share_one_slot_on_a_cluster(backend: tuple[Redis, str]) -> None:
    redis, prefix = backend
    keys = LogKeys.under(prefix, cluster=is_cluster(redis))
    if is_cluster(redis):
        slots = {redis.keyslot(k) for k in (keys.seq, keys.records, keys.pending_since, keys.sealed,  # type: ignore[attr-defined]
                                            keys.failing_since, keys.lease, keys.tsa_failing)}
        assert len(slots) == 1
    else:
        assert keys.seq == f"{prefix}:mlog:seq", "a single server keeps the names: the chain carries on"


class Crash(Exception):
    """The process died here."""


class CrashingStore(ApplicationStore):
    """The real store, dying right after step ``after`` of create (1: own keys, 2: claim, 5: steps 3-5)."""

    def __init__(self, redis: Redis, prefix: str, after: int) -> None:
        super().__init__(redis, prefix)
        self.after = after

    async def _record_own(self, app: Application, history: list[str], steps: OpenSteps) -> bool | None:
        claimed = await super()._record_own(app, history, steps)
        if self.after == 1:
            raise Crash
        return claimed

    async def _spread(self, app, steps, also, *, schedule=True) -> None:  # type: ignore[no-untyped-def]
        if self.after == 2:
            raise Crash  # the claim (step 2) is done, nothing after it
        await super()._spread(app, steps, also, schedule=schedule)
        if self.after == 5:
            raise Crash  # steps 3-5 done, the open marker (step 6) not removed


@pytest.mark.parametrize("after", [1, 2, 5])
async def test_a_crash_between_create_steps_is_repaired_by_the_repeat(backend: tuple[Redis, str], after: int) -> None:
    """On a cluster every step is a round trip of its own; on one server (1)+(2) and (3)-(6) are one MULTI each, so a
    crash "after 1" has claimed too and one "after 5" has left nothing open."""
    redis, prefix = backend
    outbox = f"{prefix}:outbox"
    logged: list[str] = []
    first = application()
    crashing = CrashingStore(redis, prefix, after)
    with pytest.raises(Crash):
        await crashing.create(first, ACCEPTED, schedule=outbox, due_at=time.time())
    store = ApplicationStore(redis, prefix, repair_after_seconds=0)  # another process, after the crash
    repeat = application(first.message_id)
    earlier = await store.create(repeat, ACCEPTED, schedule=outbox)
    if after == 1 and not crashing.one_server:  # never claimed: the repeat is new, the first unreachable (never acked)
        assert earlier is None
        await whole(store, repeat, outbox)
        return
    assert earlier == first.id and await store.get(repeat.id) is None
    held = await store.get(earlier)
    assert held is not None
    if after == 5 and crashing.one_server:  # the marker went in the same MULTI: whole, nothing to repair
        assert await store.finish(held, also=lambda pipe: logged.append("log step"))
        await whole(store, first, outbox)
        assert logged == []
        return
    young = ApplicationStore(redis, prefix, repair_after_seconds=3600)
    assert not await young.finish(held), "a young open create may still be running: in progress, not repaired"
    assert await store.finish(held, also=lambda pipe: logged.append("log step"))
    await whole(store, first, outbox)
    assert logged == ["log step"]
    assert await store.finish(held), "whole now: nothing more to do"


async def test_the_repair_does_not_reschedule_a_finished_application(backend: tuple[Redis, str]) -> None:
    redis, prefix = backend
    outbox = f"{prefix}:outbox"
    first = application()
    with pytest.raises(Crash):
        await CrashingStore(redis, prefix, 5).create(first, ACCEPTED, schedule=outbox)
    store = ApplicationStore(redis, prefix, repair_after_seconds=0)
    done = replace(first, status=Status.COMPLETED, result="<r/>")
    assert await store.save(done, "delivered by the loop")
    await redis.zrem(outbox, first.id)  # the delivery loop's done()
    assert await store.finish(done)
    assert await redis.zcard(outbox) == 0 and not await store.is_open(first.id)


async def test_a_gateway_on_the_cluster_accepts_a_rest_submission_and_completes_it(system, http, tmp_path,
                                                                                    redis_cluster) -> None:
    """End to end: ``[redis] cluster = true`` against the local cluster; the REST submission is answered with
    its result, and the application is whole (claimed, findable in the cabinet, out of the outbox)."""
    library_url = system.settings.services[READER_TICKET_SERVICE].endpoint.rsplit("/api/", 1)[0]
    port = free_port()
    settings = make_settings(tmp_path, system.pki, port=port, library_url=library_url)
    settings = replace(settings, redis=replace(settings.redis, url=redis_cluster.url, cluster=True))
    await asyncio.to_thread(redis_cluster.wait_healthy, 30.0)
    runner = await start_site(create_app(settings, redis_url=redis_cluster.url), "127.0.0.1", port)
    try:
        aigerim = system.pki.person("aigerim")
        request = rest_request(signed_application(aigerim, READER_TICKET_SERVICE))
        async with http.post(f"{settings.base_url}/api/v1/requests", json=request) as response:
            body = await response.json(content_type=None)
        assert response.status == 200, body
        mid = request["requestInfo"]["messageId"]
        store = runner.app[INTAKE].store
        assert is_cluster(store.redis)
        app = await store.find_for(aigerim.iin, mid, sender_id=PORTAL)
        assert app is not None and app.status == "completed" and not await store.is_open(app.id)
        async with http.post(f"{settings.base_url}/api/v1/requests", json=request) as again:  # the repeat
            repeated = await again.json(content_type=None)
        assert again.status == 200
        assert {k: v for k, v in repeated.items() if k != "responseInfo"} == \
               {k: v for k, v in body.items() if k != "responseInfo"}, "the first answer, the back-end not called"
    finally:
        await runner.cleanup()
