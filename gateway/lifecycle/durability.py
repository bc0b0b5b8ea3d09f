"""Durable means durable: an application is acknowledged only once Redis has written it to its append-only file.

Redis answers a write once it is in memory; with the append-only file on, it writes (``write(2)``) the
command to the file before it sends that answer (and with ``appendfsync always`` also fsyncs it). When that
write fails (a full disk, an I/O error), the client still got its "OK": Redis only records the failure
(``INFO persistence``: ``aof_last_write_status:err``) and refuses the *next* writes with ``MISCONF``. So,
before acknowledging, the gateway reads the persistence status with a read *sent after its own write was
answered*: if that says the last write failed, or the file is off, the request is refused with
GATEWAY_STORAGE_NOT_DURABLE (503, Retry-After) instead of acknowledging data that lives only in memory.

Cost: concurrent requests share one read (a single-flight probe: every request waits for the first read that
starts after it asked), so under load the reads number at most one per Redis round trip, not one per request. On
a Redis Cluster every primary is asked (in parallel, still one read per batch). Caveat: with ``everysec``, Redis
may postpone a write by up to two seconds while a slow fsync is still running; the status cannot see that window
(``always`` has none).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from gateway.errors import GatewayError

NOT_DURABLE = "GATEWAY_STORAGE_NOT_DURABLE"


def judge(info: dict[str, Any], *, require_aof: bool) -> str | None:
    """Why ``INFO persistence`` forbids acknowledging, or None."""
    if int(info.get("aof_enabled", 0)) != 1:
        return "the storage's append-only file is off" if require_aof else None
    if info.get("aof_last_write_status") != "ok":
        return "the storage's last append-only write failed (disk full or I/O error)"
    return None


class DurabilityProbe:
    """Confirms, after a write, that Redis persisted it; one ``INFO persistence`` serves every waiting request."""

    def __init__(self, redis: Redis, *, require_aof: bool = True) -> None:
        self.redis = redis
        self.require_aof = require_aof
        self._waiting: list[asyncio.Future[str | None]] = []
        self._task: asyncio.Task[None] | None = None
        self.reads = 0
        "INFO reads made (for measurements and tests)."

    async def confirm(self) -> None:
        """Return if a status read started after this call says the writes reach the file; else raise
        GatewayError(GATEWAY_STORAGE_NOT_DURABLE). Storage trouble propagates as RedisError."""
        waiter: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        reason = await waiter
        if reason is not None:
            raise GatewayError(NOT_DURABLE, reason)

    async def _run(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                self.reads += 1
                reason = await self._read()
            except RedisError as exc:
                for waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for waiter in batch:
                if not waiter.done():
                    waiter.set_result(reason)

    async def _read(self) -> str | None:
        """The reason to refuse, from the server, or on a cluster from every primary (any one of them may hold
        the application's slot, and the read is shared by all waiting requests)."""
        client: Redis | RedisCluster = self.redis  # a cluster client comes typed as Redis (shell/redis_clients.py)
        if isinstance(client, RedisCluster):
            per_node = await client.info("persistence", target_nodes=RedisCluster.PRIMARIES)
            reasons = (judge(info, require_aof=self.require_aof) for info in per_node.values())
            return next((reason for reason in reasons if reason is not None), None)
        return judge(await self.redis.info("persistence"), require_aof=self.require_aof)
