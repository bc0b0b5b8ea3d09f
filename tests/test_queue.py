"""The job queue on the real embedded redis-server: delivery, reclaim, dead letters, replay, trimming."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.asyncio import Redis

from connectors.queue import JobQueue, QueueError, QueueFull, QueueSettings

SERVICE = "kazneb.reader-ticket"
SHORT = QueueSettings(visibility_timeout_ms=150, max_attempts=3)


async def test_enqueue_claim_ack(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix)
    entry_id = await queue.enqueue(SERVICE, {"application": "a1", "kind": "new"})
    assert await redis.exists(f"{prefix}:queue:{SERVICE}")
    job = await queue.claim(SERVICE, "office-1")
    assert job is not None
    assert (job.entry_id, job.service_id, job.fields, job.attempt, job.claimed_by) == (
        entry_id, SERVICE, {"application": "a1", "kind": "new"}, 1, "office-1")
    assert await queue.claim(SERVICE, "office-2") is None
    assert await queue.stats(SERVICE) == {"length": 1, "pending": 1, "dead": 0}
    assert await queue.ack(SERVICE, entry_id) is True
    assert await queue.ack(SERVICE, entry_id) is False
    assert await queue.stats(SERVICE) == {"length": 1, "pending": 0, "dead": 0}


async def test_ack_unknown_and_misuse(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix)
    assert await queue.ack(SERVICE, "1-0") is False
    assert await queue.stats(SERVICE) == {"length": 0, "pending": 0, "dead": 0}
    assert await queue.claim(SERVICE, "office-1") is None  # creates the group on an empty stream
    assert await queue.ack(SERVICE, "1-0") is False
    for bad in ("", "a:dead", "a{b}", "a b"):
        with pytest.raises(QueueError):
            await queue.enqueue(bad, {"x": "1"})
    with pytest.raises(QueueError):
        await queue.enqueue(SERVICE, {})
    with pytest.raises(QueueError):
        await queue.fail(SERVICE, "1-0", "office-1", "some-lease", "nope")
    with pytest.raises(ValueError):
        QueueSettings(max_attempts=0)


async def test_concurrent_workers_never_share_a_fresh_job(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix)
    enqueued = {await queue.enqueue(SERVICE, {"n": str(n)}) for n in range(20)}

    async def worker(name: str) -> list[str]:
        taken = []
        while job := await queue.claim(SERVICE, name):
            taken.append(job.entry_id)
            await asyncio.sleep(0)
        return taken

    results = await asyncio.gather(*(worker(f"office-{i}") for i in range(5)))
    counts = Counter(entry for taken in results for entry in taken)
    assert set(counts) == enqueued
    assert set(counts.values()) == {1}
    assert sum(1 for taken in results if taken) > 1  # the claims really interleaved


async def test_dead_worker_job_is_reclaimed_after_visibility_timeout(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix, settings=SHORT)
    entry_id = await queue.enqueue(SERVICE, {"application": "a1"})
    first = await queue.claim(SERVICE, "dies")
    assert first is not None and first.attempt == 1
    assert await queue.claim(SERVICE, "office-2") is None  # still within the visibility timeout
    await asyncio.sleep(0.2)
    second = await queue.claim(SERVICE, "office-2")
    assert second is not None
    assert (second.entry_id, second.attempt, second.claimed_by, second.fields) == (
        entry_id, 2, "office-2", {"application": "a1"})
    assert await queue.claim(SERVICE, "office-3") is None  # the reclaim restarted the timeout
    assert await queue.ack(SERVICE, entry_id) is True


async def test_too_many_attempts_dead_letter_then_replay(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix, settings=SHORT)
    entry_id = await queue.enqueue(SERVICE, {"application": "a1"})
    for attempt in (1, 2, 3):
        job = await queue.claim(SERVICE, f"office-{attempt}")
        assert job is not None and job.attempt == attempt
        await asyncio.sleep(0.2)  # every worker dies holding it
    assert await queue.claim(SERVICE, "office-4") is None
    assert await queue.stats(SERVICE) == {"length": 1, "pending": 0, "dead": 1}
    [letter] = await queue.dead_letters(SERVICE)
    assert (letter.original_id, letter.fields, letter.attempts, letter.reason, letter.service_id) == (
        entry_id, {"application": "a1"}, 3, "too many attempts", SERVICE)
    assert letter.dead_at.endswith("+00:00")

    new_id = await queue.replay(SERVICE, letter.dead_id)
    assert new_id != entry_id
    assert await queue.dead_letters(SERVICE) == []
    with pytest.raises(KeyError):
        await queue.replay(SERVICE, letter.dead_id)
    job = await queue.claim(SERVICE, "office-5")
    assert job is not None and (job.entry_id, job.attempt, job.fields) == (new_id, 1, {"application": "a1"})
    assert await queue.ack(SERVICE, new_id) is True
    assert await queue.stats(SERVICE) == {"length": 2, "pending": 0, "dead": 0}


async def test_fail_releases_at_once_and_keeps_the_reason(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix, settings=QueueSettings(max_attempts=2))  # 30 s visibility
    entry_id = await queue.enqueue(SERVICE, {"application": "a1"})
    job = await queue.claim(SERVICE, "office-1")
    assert job is not None
    with pytest.raises(QueueError):
        await queue.fail(SERVICE, entry_id, "office-2", job.lease, "not mine")
    await queue.fail(SERVICE, entry_id, "office-1", job.lease, "registry answered 503")
    assert await queue.last_reason(SERVICE, entry_id) == "registry answered 503"
    again = await queue.claim(SERVICE, "office-2")  # at once, despite the 30 s visibility timeout
    assert again is not None and (again.entry_id, again.attempt, again.claimed_by) == (entry_id, 2, "office-2")
    with pytest.raises(QueueError):  # office-1 holds it no longer
        await queue.fail(SERVICE, entry_id, "office-1", job.lease, "late")
    assert await queue.last_reason(SERVICE, entry_id) == "registry answered 503"

    # The last allowed attempt fails too: dead-lettered at once, with the worker's reason.
    await queue.fail(SERVICE, entry_id, "office-2", again.lease, "registry rejected the form")
    assert await queue.claim(SERVICE, "office-3") is None
    [letter] = await queue.dead_letters(SERVICE)
    assert letter.attempts == 2
    assert letter.reason == "too many attempts; last failure: registry rejected the form"
    assert await queue.last_reason(SERVICE, entry_id) is None
    assert await redis.exists(f"{prefix}:queue:{SERVICE}:reasons") == 0


async def test_ack_forgets_the_reason(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix)
    entry_id = await queue.enqueue(SERVICE, {"application": "a1"})
    first = await queue.claim(SERVICE, "office-1")
    assert first is not None
    await queue.fail(SERVICE, entry_id, "office-1", first.lease, "timeout")
    job = await queue.claim(SERVICE, "office-2")
    assert job is not None and job.attempt == 2
    assert await queue.ack(SERVICE, entry_id) is True
    assert await queue.last_reason(SERVICE, entry_id) is None


async def test_survives_restart(redis: Redis, redis_url: str, prefix: str) -> None:
    before = JobQueue(redis, prefix=prefix, settings=SHORT)
    held = await before.enqueue(SERVICE, {"n": "1"})
    waiting = await before.enqueue(SERVICE, {"n": "2"})
    assert (await before.claim(SERVICE, "office-1")).entry_id == held  # type: ignore[union-attr]

    other = Redis.from_url(redis_url)
    try:
        after = JobQueue(other, prefix=prefix, settings=SHORT)
        job = await after.claim(SERVICE, "office-2")
        assert job is not None and (job.entry_id, job.attempt) == (waiting, 1)
        await asyncio.sleep(0.2)
        job = await after.claim(SERVICE, "office-2")
        assert job is not None and (job.entry_id, job.attempt) == (held, 2)
        assert await after.stats(SERVICE) == {"length": 2, "pending": 2, "dead": 0}
    finally:
        await other.aclose()


async def test_entry_deleted_while_pending_is_skipped(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix, settings=SHORT)
    gone = await queue.enqueue(SERVICE, {"n": "1"})
    kept = await queue.enqueue(SERVICE, {"n": "2"})
    assert (await queue.claim(SERVICE, "office-1")).entry_id == gone  # type: ignore[union-attr]
    await redis.xdel(f"{prefix}:queue:{SERVICE}", gone)
    await asyncio.sleep(0.2)
    job = await queue.claim(SERVICE, "office-2")
    assert job is not None and job.entry_id == kept
    assert await queue.stats(SERVICE) == {"length": 1, "pending": 1, "dead": 0}


async def test_trim_acknowledged_keeps_pending_and_waiting(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix)
    ids = [await queue.enqueue(SERVICE, {"n": str(n)}) for n in range(5)]
    assert await queue.trim_acknowledged(SERVICE) == 0
    for _ in range(3):
        assert await queue.claim(SERVICE, "office-1") is not None
    assert await queue.ack(SERVICE, ids[0]) and await queue.ack(SERVICE, ids[2])
    assert await queue.trim_acknowledged(SERVICE) == 1  # ids[1] is still pending: ids[2] must wait
    assert await queue.ack(SERVICE, ids[1])
    assert await queue.trim_acknowledged(SERVICE) == 2  # ids[3], ids[4] were never delivered
    entries = await redis.xrange(f"{prefix}:queue:{SERVICE}")
    assert [e[0].decode() for e in entries] == ids[3:]
    assert [job.entry_id for job in [await queue.claim(SERVICE, "office-1") for _ in range(2)] if job] == ids[3:]


async def test_full_queue_refuses_until_acknowledged(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix, settings=QueueSettings(max_length=3))
    ids = [await queue.enqueue(SERVICE, {"n": str(n)}) for n in range(3)]
    with pytest.raises(QueueFull):
        await queue.enqueue(SERVICE, {"n": "3"})
    job = await queue.claim(SERVICE, "office-1")
    assert job is not None and job.entry_id == ids[0]
    with pytest.raises(QueueFull):  # claimed is not done
        await queue.enqueue(SERVICE, {"n": "3"})
    await queue.ack(SERVICE, ids[0])
    await queue.enqueue(SERVICE, {"n": "3"})
    assert (await queue.stats(SERVICE))["length"] == 3


async def test_blocking_claim(redis: Redis, prefix: str) -> None:
    queue = JobQueue(redis, prefix=prefix)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await queue.claim(SERVICE, "office-1", block_ms=100) is None
    assert loop.time() - started >= 0.09

    waiting = asyncio.create_task(queue.claim(SERVICE, "office-1", block_ms=2000))
    await asyncio.sleep(0.05)
    entry_id = await queue.enqueue(SERVICE, {"n": "1"})
    job = await asyncio.wait_for(waiting, 1)
    assert job is not None and job.entry_id == entry_id


async def test_keep_holds_a_job_past_its_visibility_timeout(redis: Redis, prefix: str) -> None:
    """A worker that is still on the job (a person deciding) keeps it; nobody else gets it meanwhile."""
    queue = JobQueue(redis, prefix=prefix, settings=SHORT)
    await queue.enqueue(SERVICE, {"n": "1"})
    job = await queue.claim(SERVICE, "slow")
    for _ in range(3):
        await asyncio.sleep(SHORT.visibility_timeout_ms / 1000 * 0.7)
        assert await queue.keep(SERVICE, job.entry_id, "slow", job.lease)
        assert await queue.claim(SERVICE, "eager") is None
    assert not await queue.keep(SERVICE, job.entry_id, "eager", job.lease), "only the holder may keep it"
    assert await queue.ack(SERVICE, job.entry_id)
    assert not await queue.keep(SERVICE, job.entry_id, "slow", job.lease), "an answered job cannot be kept"
    assert (await queue.stats(SERVICE))["pending"] == 0


@pytest.mark.parametrize("protocol", [2, 3])
async def test_claim_reads_both_reply_shapes(redis_url: str, prefix: str, protocol: int) -> None:
    # XREADGROUP answers [[key, entries]] over RESP2 and a map over RESP3; a job is read from either.
    client = Redis.from_url(redis_url, protocol=protocol, decode_responses=protocol == 3)
    try:
        queue = JobQueue(client, prefix=prefix)
        entry_id = await queue.enqueue(SERVICE, {"application": "a1"})
        job = await queue.claim(SERVICE, "office-1")
        assert job is not None and (job.entry_id, job.fields) == (entry_id, {"application": "a1"})
        assert await queue.claim(SERVICE, "office-1") is None
        assert await queue.fields(SERVICE, entry_id) == {"application": "a1"}
    finally:
        await client.aclose()


async def test_a_lease_binds_the_job_to_one_delivery(redis: Redis, prefix: str) -> None:
    """keep/fail/holds need the claim's worker and lease token: a guessed token, another worker with the right
    token, and the first holder after a reclaim (same worker name, stale token) are all refused."""
    queue = JobQueue(redis, prefix=prefix, settings=SHORT)
    entry_id = await queue.enqueue(SERVICE, {"application": "a1"})
    first = await queue.claim(SERVICE, "office-1")
    assert first is not None and len(first.lease) >= 32
    assert await queue.holds(SERVICE, entry_id, "office-1", first.lease)
    for worker, lease in (("office-1", ""), ("office-1", "guess"), ("office-2", first.lease)):
        assert not await queue.holds(SERVICE, entry_id, worker, lease)
        assert not await queue.keep(SERVICE, entry_id, worker, lease)
        with pytest.raises(QueueError):
            await queue.fail(SERVICE, entry_id, worker, lease, "not mine")

    await asyncio.sleep(0.2)  # office-1 stalls past the visibility timeout; the job goes to a new delivery
    second = await queue.claim(SERVICE, "office-1")
    assert second is not None and second.attempt == 2 and second.lease != first.lease
    assert not await queue.keep(SERVICE, entry_id, "office-1", first.lease), "the stale lease is refused"
    with pytest.raises(QueueError):
        await queue.fail(SERVICE, entry_id, "office-1", first.lease, "late")
    assert await queue.keep(SERVICE, entry_id, "office-1", second.lease)


async def test_lease_consumers_do_not_pile_up(redis: Redis, prefix: str) -> None:
    """Every delivery is a consumer of its own; it is deleted once its entry moved on, and empty claims leave none."""
    queue = JobQueue(redis, prefix=prefix, settings=SHORT)
    key = f"{prefix}:queue:{SERVICE}"
    assert await queue.claim(SERVICE, "office-1") is None
    entry_id = await queue.enqueue(SERVICE, {"application": "a1"})
    assert await queue.claim(SERVICE, "office-1") is not None
    await asyncio.sleep(0.2)
    assert await queue.claim(SERVICE, "office-2") is not None  # the stale holder's consumer is dropped
    [consumer] = await redis.xinfo_consumers(key, "backoffice")
    assert consumer["name"].decode().startswith("office-2|") and consumer["pending"] == 1
    assert await queue.ack(SERVICE, entry_id)
    assert await queue.claim(SERVICE, "office-3") is None
    assert await redis.xinfo_consumers(key, "backoffice") == []
