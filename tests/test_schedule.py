"""The lease schedule on the real embedded redis-server, with an injected wall clock: due times, leases that
hide a member until they expire, done, the count bound, and two leasers never sharing a member."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from gateway.delivery.schedule import LeaseSchedule

T0 = 1_750_000_000.0  # a fixed wall-clock moment: every score below is relative to it


class WallClock:
    """The schedule's clock, moved by the test (scores are stored in Redis, so no waiting is needed)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, seconds: float) -> None:
        """Set the time to ``seconds`` after T0 (set, not added, so the sums stay exact)."""
        self.now = T0 + seconds


def schedule_on(redis: Redis, prefix: str, clock: WallClock) -> LeaseSchedule:
    return LeaseSchedule(redis, f"{prefix}:outbox", clock=clock)


async def test_scheduled_member_is_due_after_its_delay(redis: Redis, prefix: str) -> None:
    clock = WallClock()
    outbox = schedule_on(redis, prefix, clock)
    await outbox.schedule("a1", 10.0)
    assert await redis.zscore(outbox.key, "a1") == T0 + 10.0
    assert await outbox.due_in("a1") == 10.0
    assert await outbox.lease(lease_seconds=60) == [], "not due yet"
    clock.at(10.0)
    assert await outbox.lease(lease_seconds=60) == ["a1"], "due exactly at its time"


async def test_lease_hides_a_member_until_the_lease_expires(redis: Redis, prefix: str) -> None:
    clock = WallClock()
    outbox = schedule_on(redis, prefix, clock)
    await outbox.schedule("a1")
    assert await outbox.lease(lease_seconds=30) == ["a1"]
    assert await outbox.due_in("a1") == 30.0, "leased: due again when the lease ends"
    clock.at(29.9)
    assert await outbox.lease(lease_seconds=30) == [], "still leased"
    clock.at(30.0)
    assert await outbox.lease(lease_seconds=30) == ["a1"], "the holder died: another leaser takes it"
    assert await outbox.size() == 1


async def test_done_removes_the_member_for_good(redis: Redis, prefix: str) -> None:
    clock = WallClock()
    outbox = schedule_on(redis, prefix, clock)
    await outbox.schedule("a1")
    assert await outbox.lease(lease_seconds=30) == ["a1"]
    assert await outbox.done("a1") is True
    assert await outbox.done("a1") is False, "done twice: nothing left to remove"
    assert await outbox.due_in("a1") is None
    assert await outbox.size() == 0
    clock.at(3600)
    assert await outbox.lease(lease_seconds=30) == []


async def test_lease_takes_at_most_count_members_oldest_first(redis: Redis, prefix: str) -> None:
    clock = WallClock()
    outbox = schedule_on(redis, prefix, clock)
    for index in range(5):
        await outbox.schedule(f"a{index}", -10.0 + index)  # explicitly overdue, a0 the most
    assert await outbox.lease(lease_seconds=30, count=2) == ["a0", "a1"]
    assert await outbox.lease(lease_seconds=30, count=2) == ["a2", "a3"]
    assert await outbox.lease(lease_seconds=30, count=2) == ["a4"]
    assert await outbox.lease(lease_seconds=30, count=2) == []
    assert await outbox.size() == 5


async def test_reschedule_replaces_the_due_time_and_any_lease(redis: Redis, prefix: str) -> None:
    clock = WallClock()
    outbox = schedule_on(redis, prefix, clock)
    await outbox.schedule("a1")
    assert await outbox.lease(lease_seconds=300) == ["a1"]
    await outbox.schedule("a1", 5.0)  # a retry with backoff, shorter than the lease
    assert await outbox.due_in("a1") == 5.0
    clock.at(5.0)
    assert await outbox.lease(lease_seconds=300) == ["a1"]
    await outbox.schedule("a1", 60.0)  # pushed later: due at 65
    clock.at(64.0)
    assert await outbox.lease(lease_seconds=300) == []
    assert await outbox.size() == 1, "one member, however often it is scheduled"


async def test_two_leasers_never_get_the_same_member(redis: Redis, prefix: str) -> None:
    clock = WallClock()
    first, second = schedule_on(redis, prefix, clock), schedule_on(redis, prefix, clock)  # two processes
    members = [f"a{index}" for index in range(200)]
    await redis.zadd(first.key, {member: T0 - 1 for member in members})
    leased = await asyncio.gather(*(leaser.lease(lease_seconds=30, count=7)
                                    for _ in range(20) for leaser in (first, second)))
    taken = [member for batch in leased for member in batch]
    assert len(taken) == len(set(taken)) == len(members), "every member leased once, none twice"
    assert sorted(taken) == sorted(members)


async def test_due_in_is_negative_when_overdue_and_none_when_unknown(redis: Redis, prefix: str) -> None:
    clock = WallClock()
    outbox = schedule_on(redis, prefix, clock)
    await outbox.schedule("a1", -4.0)
    assert await outbox.due_in("a1") == -4.0
    assert await outbox.due_in("never") is None


async def test_default_clock_is_wall_time(redis: Redis, prefix: str) -> None:
    outbox = LeaseSchedule(redis, f"{prefix}:outbox")
    assert outbox.clock is time.time
    before = time.time()
    await outbox.schedule("a1", 100.0)
    score = await redis.zscore(outbox.key, "a1")
    assert score is not None and before + 100.0 <= score <= time.time() + 100.0
