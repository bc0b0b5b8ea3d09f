"""Durability you can choose: with ``[redis] min_replica_acks = N`` an application is acknowledged only once N
replicas of every primary its create steps wrote to have it.

Redis replicates asynchronously: a primary answers a write before any replica has it, so a primary that dies right
after the gateway acknowledged an application could take the application along (the promoted replica never saw
it). So, after the create steps and the durability confirmation and before the answer, the gateway waits with
Redis ``WAIT N timeout``.

``WAIT`` counts the writes made *on the connection it is sent on*, and the pool hands out any connection. So on one
connection the gateway writes a tiny marker (``P:replicated:{<tag>}``, expiring after a minute, one key per primary
that every wait overwrites) and sends ``WAIT`` right behind it on the same connection, without a retry in between
(a retried ``WAIT`` on a fresh connection would count nothing and pass at once). A primary replicates in order, so
a replica holding the marker holds everything written to that primary before it, by any connection. On a Redis
Cluster the written keys are grouped by the primary serving their slot, and each primary gets its own marker (in
the slot of one of its keys, so the node holds it; kept while that slot stays there) and ``WAIT``, all in
parallel; on one server or a Sentinel primary it is one marker (``P:replicated:{primary}``) and one ``WAIT``.

Concurrent requests share the wait (a single flight per primary, as :class:`~gateway.lifecycle.durability.
DurabilityProbe` shares its read): each request waits for the first marker written after it asked, so under load
a primary sees one marker and ``WAIT`` per replication round trip, not one per request.

Fewer replicas within ``replica_ack_timeout_ms``: GATEWAY_STORAGE_NOT_REPLICATED (503, Retry-After). Nothing is
undone: the application is recorded and claimed, so a repeat of the messageId finds it, waits again (the intake
pipeline waits on every answer, the repeat's too) and is answered once the replicas have it. Measured cost:
docs/storage.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import AbstractConnection, Connection
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from gateway.errors import GatewayError

log = logging.getLogger("egov.replicas")

NOT_REPLICATED = "GATEWAY_STORAGE_NOT_REPLICATED"
MARKER_MS = 60_000
"How long a marker lives after a primary's last wait: far longer than any wait, and then it is gone."
READ_SLACK_SECONDS = 5.0
"Beyond the WAIT's own timeout, how long its answer may take before the connection is given up."


def marker_tag(key: str) -> str:
    """A hash tag that puts a marker in ``key``'s slot: the key's own tag, else the whole key (Redis Cluster hashes
    the first non-empty ``{...}``, or the whole key without one)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    if "}" not in key:
        return key
    return _tag_of_slot(key_slot(key.encode()))  # a "}" would end the marker's tag early: any tag of that slot


@functools.lru_cache(maxsize=1024)
def _tag_of_slot(slot: int) -> str:
    """The first decimal number hashing to ``slot`` (rare: only keys with a stray ``}`` need one)."""
    return next(str(n) for n in itertools.count() if key_slot(str(n).encode()) == slot)


@dataclass(frozen=True)
class _Lane:
    """A way to one connection of one primary: the whole server's pool, or a cluster node's own."""

    name: str
    "The primary (host:port on a cluster, else ``primary``)."
    redis: Redis
    "The client whose pool serves a single server or Sentinel primary."
    node: ClusterNode | None = None
    "On a cluster: the node serving the keys' slot."

    async def acquire(self) -> AbstractConnection:
        if self.node is not None:
            return self.node.acquire_connection()
        connection: AbstractConnection = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        if self.node is not None:
            self.node.release(cast(Connection, connection))  # what its acquire_connection gave
        else:
            await self.redis.connection_pool.release(connection)


@dataclass
class _Flight:
    """One primary's waiting requests (lane, key, future) and the task taking them in batches."""

    waiting: list[tuple[_Lane, str, asyncio.Future[int]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class ReplicaAcks:
    """Makes sure ``replicas`` replicas of every primary holding the given keys caught up (one per process)."""

    def __init__(self, redis: Redis, prefix: str, *, replicas: int, timeout_ms: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self._flights: dict[str, _Flight] = {}
        self._markers: dict[str, str] = {}
        "The marker of each primary: one key each, overwritten by every wait (markers never pile up)."
        self.waits = 0
        "Markers written and WAITs sent, each for a batch of requests (for measurements and tests)."

    async def confirm(self, keys: Iterable[str]) -> None:
        """Return once ``replicas`` replicas of every primary serving ``keys`` have everything written to it
        before this call; else raise GatewayError(GATEWAY_STORAGE_NOT_REPLICATED). Storage trouble propagates as
        RedisError. With ``replicas`` 0, returns at once."""
        if self.replicas <= 0:
            return
        lanes = self._lanes(keys)
        acked = await asyncio.gather(*(self._join(lane, key) for lane, key in lanes))
        short = [f"{count} of {self.replicas} replicas of {lane.name}"
                 for (lane, _key), count in zip(lanes, acked, strict=True) if count < self.replicas]
        if short:
            raise GatewayError(NOT_REPLICATED, f"{', '.join(short)} confirmed within {self.timeout_ms} ms")

    def _lanes(self, keys: Iterable[str]) -> list[tuple[_Lane, str]]:
        """One (lane, key) per primary the keys live on: on a cluster by the client's slot map, else one."""
        client: Redis | RedisCluster = self.redis  # a cluster client comes typed as Redis (shell/redis_clients.py)
        if not isinstance(client, RedisCluster):  # one primary: its marker needs no slot of the keys'
            return [(_Lane("primary", self.redis), "")]
        by_node: dict[str, tuple[_Lane, str]] = {}
        for key in keys:
            try:
                node = client.get_node_from_key(key)
            except RedisClusterException as exc:  # a slot without a primary (mid-failover): retry later
                raise GatewayError("GATEWAY_STORAGE_UNAVAILABLE", type(exc).__name__) from None
            if node is not None and node.name not in by_node:
                by_node[node.name] = (_Lane(node.name, self.redis, node), key)
        return list(by_node.values())

    async def _join(self, lane: _Lane, key: str) -> int:
        """The replicas that acknowledged the first marker of ``lane``'s primary written after this call."""
        flight = self._flights.setdefault(lane.name, _Flight())
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        flight.waiting.append((lane, key, waiter))
        if flight.task is None or flight.task.done():
            flight.task = asyncio.create_task(self._fly(flight))
        return await waiter

    async def _fly(self, flight: _Flight) -> None:
        while flight.waiting:
            batch, flight.waiting = flight.waiting, []
            lane, key, _ = batch[-1]  # the latest view of where the primary is
            try:
                self.waits += 1
                acked = await self._wait_on(lane, self._marker(lane, key))
            except Exception as exc:  # every waiter hears it (a RedisError: 503 at the intake)
                for *_, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            if acked < self.replicas:
                log.warning("only %d of %d replicas of %s confirmed within %d ms: %d requests refused", acked,
                            self.replicas, lane.name, self.timeout_ms, len(batch))
            for *_, waiter in batch:
                if not waiter.done():
                    waiter.set_result(acked)

    def _marker(self, lane: _Lane, key: str) -> str:
        """The primary's marker key: kept while its slot stays on that primary, else one in ``key``'s slot."""
        if lane.node is None:
            return f"{self.prefix}:replicated:{{primary}}"
        client: Any = self.redis  # a RedisCluster (only cluster lanes have a node)
        marker = self._markers.get(lane.name)
        if marker is not None:
            with contextlib.suppress(RedisClusterException):  # its slot without a primary now: take the key's
                if getattr(client.get_node_from_key(marker), "name", None) == lane.name:
                    return marker
        marker = self._markers[lane.name] = f"{self.prefix}:replicated:{{{marker_tag(key)}}}"
        return marker

    async def _wait_on(self, lane: _Lane, marker: str) -> int:
        """SET the marker and WAIT, pipelined on one connection; the replicas that acknowledged it."""
        connection = await lane.acquire()
        try:
            commands: list[tuple[Any, ...]] = [("SET", marker, "1", "PX", MARKER_MS),
                                               ("WAIT", self.replicas, self.timeout_ms)]
            await connection.send_packed_command(connection.pack_commands(commands))
            timeout = self.timeout_ms / 1000 + READ_SLACK_SECONDS
            await connection.read_response(timeout=timeout)  # OK, or raised (MOVED, MISCONF, READONLY)
            return int(await connection.read_response(timeout=timeout))
        except BaseException:
            await connection.disconnect()  # a reply may still be on its way: never hand the connection out again
            raise
        finally:
            await lane.release(connection)
