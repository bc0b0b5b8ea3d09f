"""A durable schedule with leases, on one Redis sorted set (member = application id, score = due time).

``lease`` atomically takes the due members and pushes their score forward by the lease time, so a
member being worked on is invisible to other gateway processes; if the process dies, the lease
expires and another process takes it (at-least-once). ``done`` removes a member; ``schedule`` sets its
next due time (a retry with backoff, a status poll). One key per command: Redis Cluster friendly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

# Take up to ARGV[3] members due by ARGV[1] and lease them until ARGV[2], atomically.
_LEASE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
"""

# Lease the member ARGV[1] until ARGV[3] if it is due by ARGV[2]; 1 when taken.
_LEASE_ONE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
"""


class LeaseSchedule:
    """Due times and leases of members on the sorted set ``key``.

    Scores are wall-clock seconds (``clock``, ``time.time`` by default), not monotonic time: they are
    compared across gateway processes and restarts, so their clocks must agree (NTP).
    """

    def __init__(self, redis: Redis, key: str, *, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.key = key
        self.clock = clock
        self._lease = redis.register_script(_LEASE)
        self._lease_one = redis.register_script(_LEASE_ONE)

    async def schedule(self, member: str, delay_seconds: float = 0.0) -> None:
        """Make ``member`` due after ``delay_seconds`` (replacing any earlier due time or lease)."""
        await self.redis.zadd(self.key, {member: self.clock() + delay_seconds})

    async def lease(self, *, lease_seconds: float, count: int = 16) -> list[str]:
        """Take up to ``count`` due members; they come back due after ``lease_seconds`` unless done."""
        now = self.clock()
        members = await self._lease(keys=[self.key], args=[now, now + lease_seconds, count])
        return [m.decode() if isinstance(m, bytes) else m for m in members]

    async def lease_member(self, member: str, *, lease_seconds: float) -> bool:
        """Take ``member`` alone if it is due (atomically, as :meth:`lease`); False when absent or leased."""
        now = self.clock()
        return bool(await self._lease_one(keys=[self.key], args=[member, now, now + lease_seconds]))

    async def due(self, *, count: int) -> list[str]:
        """Up to ``count`` due members, oldest first, without leasing them."""
        members = await self.redis.zrangebyscore(self.key, "-inf", self.clock(), start=0, num=count)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def done(self, member: str) -> bool:
        """Remove ``member`` (finished for good); False when it was not scheduled."""
        return bool(await self.redis.zrem(self.key, member))

    def done_on(self, member: str) -> Callable[[Pipeline], None]:
        """:meth:`done` as a command queued on someone else's pipeline (the lifecycle's writes after a save)."""
        def queue(pipe: Pipeline) -> None:
            pipe.zrem(self.key, member)

        return queue

    async def due_in(self, member: str) -> float | None:
        """Seconds until ``member`` is due (negative when overdue), None when not scheduled."""
        score = await self.redis.zscore(self.key, member)
        return None if score is None else score - self.clock()

    async def size(self) -> int:
        """Members scheduled, leased ones included."""
        return int(await self.redis.zcard(self.key))
