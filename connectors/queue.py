"""A durable job queue per service on Redis Streams, taken by back-office systems through a consumer group.

Keys (``P`` is the configured prefix, ``S`` the service id):

- ``P:queue:S``          the stream of jobs; consumer group ``backoffice``
- ``P:queue:S:dead``     dead letters: jobs delivered ``max_attempts`` times without being acknowledged
- ``P:queue:S:reasons``  hash entry id -> the last reason a worker gave to :meth:`JobQueue.fail`

Every command touches exactly one key (there are no MULTI blocks or scripts spanning keys), so the keys need no
hash tags and spread over a Redis Cluster like any others. The price is that the few multi-step moves (dead-letter,
replay) are not atomic: each step is ordered so that a crash in between duplicates a job, never loses one.

Delivery is at least once. A worker claims a job, does it and acknowledges it; a claim that is not acknowledged
within ``visibility_timeout_ms`` (the worker died, hung or lost its connection) is handed to the next worker that
asks, and after ``max_attempts`` deliveries the job moves to the dead-letter stream for an operator to
:meth:`~JobQueue.replay`. Back-office handlers must therefore be idempotent on the job's own id fields.

``worker`` names the back-office process (for instance ``host:pid`` or a configured instance name). Every
delivery also gets a lease token (:attr:`Job.lease`, ``secrets.token_urlsafe``): the consumer in the group is
``worker|lease``, so the token lives with the pending entry in Redis, and :meth:`~JobQueue.keep`,
:meth:`~JobQueue.fail` and :meth:`~JobQueue.holds` succeed only for the worker and token of the current delivery.
A worker whose job was reclaimed after the visibility timeout holds a stale token and is refused, as is a
worker that never claimed it, even with the same name. Each such consumer holds at most one entry in its life,
so it is deleted once its entry is acknowledged, dead-lettered or taken over.

Why the main stream is never trimmed automatically: ``XADD MAXLEN``/``XTRIM`` delete the oldest entries whether
or not they were delivered or acknowledged, so an approximate cap would silently drop jobs that are still waiting
or in progress (their ids stay in the pending list with no data). Acknowledged entries are instead removed by
:meth:`JobQueue.trim_acknowledged`, which only deletes entries older than both the oldest pending one and the
first one not yet delivered; ``max_length`` bounds the backlog by refusing new jobs (:class:`QueueFull`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from connectors.queue_scripts import (
    ACK,
    KEEP,
    RELEASE,
    first_entry,
    is_nogroup,
    text,
    text_fields,
    with_data,
)

GROUP = "backoffice"
RECLAIM_BATCH = 10
"Stale entries looked at per XPENDING round trip when reclaiming."
LEASE_SEPARATOR = "|"
"Between the worker's name and the lease token in a consumer name (tokens never contain it)."


class QueueError(Exception):
    """The queue was used wrongly: a bad service id or fields, or a job the worker does not hold."""


class QueueFull(QueueError):
    """The service's stream holds ``max_length`` entries; the caller should answer 503 with Retry-After."""


@dataclass(frozen=True)
class QueueSettings:
    """How long claims last, how often a job is tried, how large a backlog may grow."""

    visibility_timeout_ms: int = 30_000
    "A claimed job not acknowledged within this may be reclaimed by another worker."
    max_attempts: int = 5
    "Deliveries before a job is moved to the dead-letter stream."
    max_length: int = 100_000
    "Backlog bound: at this many stream entries enqueue trims acknowledged ones, then raises QueueFull if still full."
    block_ms: int = 0
    "Default wait in claim() for a new job when none is ready; 0 returns at once (unlike Redis' BLOCK 0)."

    def __post_init__(self) -> None:
        if self.visibility_timeout_ms < 1 or self.max_attempts < 1 or self.max_length < 1 or self.block_ms < 0:
            raise ValueError(f"invalid queue settings: {self}")


@dataclass(frozen=True)
class Job:
    """One delivery of a queued job to a worker."""

    entry_id: str
    "Stream entry id; pass it to ack() or fail()."
    service_id: str
    "The service whose queue it came from."
    fields: dict[str, str]
    "What the producer enqueued."
    attempt: int
    "Delivery count, 1 on first delivery."
    claimed_by: str
    "The worker holding it now."
    lease: str = field(default="", repr=False)
    "This delivery's lease token: keep(), fail() and holds() need it; a later delivery gets a new one."


@dataclass(frozen=True)
class DeadLetter:
    """A job given up on after too many deliveries."""

    dead_id: str
    "Entry id in the dead-letter stream; pass it to replay()."
    service_id: str
    "The service whose queue it came from."
    original_id: str
    "Its entry id in the main stream."
    fields: dict[str, str]
    "What the producer enqueued."
    attempts: int
    "Deliveries made to workers."
    reason: str
    "Why it was dead-lettered, with the last reason a worker gave, if any."
    dead_at: str
    "ISO time it was dead-lettered."


def holder(worker: str, lease: str) -> str:
    """The consumer name of one delivery: the worker's name and its lease token."""
    return f"{worker}{LEASE_SEPARATOR}{lease}"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class JobQueue:
    """Queues for all services; one instance per process, sharing the Redis connection pool.

    A blocking claim holds a pooled connection for up to ``block_ms``; the client's socket timeout must be longer.
    """

    def __init__(self, redis: Redis, *, prefix: str = "egov", settings: QueueSettings = QueueSettings(),
                 on_dead_letter: Callable[[str, dict[str, str], str], Awaitable[None]] | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.settings = settings
        self.on_dead_letter = on_dead_letter
        "Called with (service_id, fields, reason) after a job was dead-lettered (the gateway marks it stopped)."
        self._groups: set[str] = set()
        self._release = redis.register_script(RELEASE)
        self._keep = redis.register_script(KEEP)
        self._ack = redis.register_script(ACK)

    def _stream(self, service_id: str) -> str:
        if not service_id or not service_id.isprintable() or any(c in service_id for c in ":{} "):
            raise QueueError(f"bad service id {service_id!r}")
        return f"{self.prefix}:queue:{service_id}"

    def _dead(self, service_id: str) -> str:
        return f"{self._stream(service_id)}:dead"

    def _reasons(self, service_id: str) -> str:
        return f"{self._stream(service_id)}:reasons"

    async def _ensure_group(self, key: str) -> None:
        """Create the group at id 0 (not ``$``), so entries added before it existed are delivered too."""
        if key in self._groups:
            return
        try:
            await self.redis.xgroup_create(key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise
        self._groups.add(key)

    async def enqueue(self, service_id: str, fields: dict[str, str]) -> str:
        """Append a job; returns its entry id. Raises QueueFull when the stream holds ``max_length`` entries."""
        key = self._stream(service_id)
        if not fields or not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
            raise QueueError("a job needs at least one field, with str names and values")
        await self._ensure_group(key)
        length = await self.redis.xlen(key)
        if length >= self.settings.max_length:
            length -= await self.trim_acknowledged(service_id)
            if length >= self.settings.max_length:
                raise QueueFull(f"queue {service_id} holds {length} entries")
        entry: dict[FieldT, EncodableT] = {name: value for name, value in fields.items()}  # an invariant parameter
        return text(await self.redis.xadd(key, entry))

    async def claim(self, service_id: str, worker: str, *, block_ms: int | None = None) -> Job | None:
        """The next job for ``worker``: a stale one first (claimed earlier, not acknowledged within the visibility
        timeout), else a new one, waiting up to ``block_ms`` (default: the settings') for one to arrive.
        Stale jobs delivered ``max_attempts`` times go to the dead-letter stream on the way."""
        if not worker:
            raise QueueError("worker name is required")
        key = self._stream(service_id)
        block = self.settings.block_ms if block_ms is None else block_ms
        try:
            return await self._claim(service_id, key, worker, block)
        except ResponseError as exc:  # the stream was deleted behind our back: recreate the group once
            if not is_nogroup(exc):
                raise
            self._groups.discard(key)
            return await self._claim(service_id, key, worker, block)

    async def _claim(self, service_id: str, key: str, worker: str, block_ms: int) -> Job | None:
        await self._ensure_group(key)
        lease = secrets.token_urlsafe(24)
        consumer = holder(worker, lease)
        job = await self._take(service_id, key, worker, lease, block_ms)
        if job is None:  # the fresh consumer got nothing (or lost it to a dead letter): it never will
            await self.redis.xgroup_delconsumer(key, GROUP, consumer)
        return job

    async def _take(self, service_id: str, key: str, worker: str, lease: str, block_ms: int) -> Job | None:
        consumer, visibility = holder(worker, lease), self.settings.visibility_timeout_ms
        while True:
            stale = await self.redis.xpending_range(key, GROUP, "-", "+", RECLAIM_BATCH, idle=visibility)
            for entry in stale:
                stale_holder = text(entry["consumer"])
                job = await self._reclaim(service_id, key, text(entry["message_id"]), stale_holder, worker, lease)
                if job:
                    return job
            # Every entry looked at is now either ours, another worker's (idle reset) or gone from the pending
            # list, so the next XPENDING sees different ones and the loop ends.
            if len(stale) < RECLAIM_BATCH:
                break
        reply = await self.redis.xreadgroup(GROUP, consumer, {key: ">"}, count=1, block=block_ms or None)
        first = first_entry(reply or [])  # empty (or None) when BLOCK timed out
        return None if first is None else Job(first[0], service_id, first[1], 1, worker, lease)

    async def _drop_consumer(self, key: str, consumer: str) -> None:
        """Delete a lease consumer whose one entry has moved on (never a plain name: it might hold others)."""
        if LEASE_SEPARATOR in consumer:
            await self.redis.xgroup_delconsumer(key, GROUP, consumer)

    async def _reclaim(self, service_id: str, key: str, entry_id: str, stale_holder: str, worker: str,
                       lease: str) -> Job | None:
        """Take over one stale entry from ``stale_holder``, or dead-letter it. None when another worker won it
        or it is gone.

        XCLAIM with min-idle-time re-checks the idle time on the server, so of workers racing for one stale entry
        exactly one gets it; it counts a delivery, and XPENDING right after reads that count. (XAUTOCLAIM is not
        used: Redis 6.2 answers nil without the id for an entry whose data was deleted, so it could not be
        acknowledged, and it reports no delivery counts anyway.)
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xclaim(key, GROUP, holder(worker, lease), self.settings.visibility_timeout_ms, [entry_id])
            pipe.xpending_range(key, GROUP, entry_id, entry_id, 1)
            claimed, pending = await pipe.execute()
        if not claimed:  # another worker was first (on Redis 7 also: data deleted, dropped from pending)
            return None  # (the stale holder is not dropped: a keep() may have just renewed its lease)
        await self._drop_consumer(key, stale_holder)  # its one entry is ours now: that lease has ended
        _, raw = claimed[0]
        if raw is None:  # Redis 6.2: the entry was deleted (XDEL, XTRIM) while pending; nothing left to do
            await self._forget(service_id, key, entry_id)
            return None
        fields = text_fields(raw)
        delivered = int(pending[0]["times_delivered"]) if pending else 1
        if delivered > self.settings.max_attempts:
            await self._dead_letter(service_id, key, entry_id, fields, delivered - 1, "too many attempts")
            return None
        return Job(entry_id, service_id, fields, delivered, worker, lease)

    async def _forget(self, service_id: str, key: str, entry_id: str) -> int:
        try:
            acked = await self._ack(keys=[key], args=[GROUP, entry_id, LEASE_SEPARATOR])
        except ResponseError as exc:  # no stream or group: nothing was pending
            if not is_nogroup(exc):
                raise
            acked = 0
        await self.redis.hdel(self._reasons(service_id), entry_id)
        return int(acked)

    async def _dead_letter(self, service_id: str, key: str, entry_id: str, fields: dict[str, str],
                           attempts: int, reason: str) -> None:
        """Copy to the dead-letter stream first, then acknowledge: a crash in between leaves a duplicate."""
        last = await self.redis.hget(self._reasons(service_id), entry_id)
        if last is not None:
            reason = f"{reason}; last failure: {text(last)}"
        await self.redis.xadd(self._dead(service_id), {
            "original_id": entry_id,
            "attempts": str(attempts),
            "reason": reason,
            "dead_at": _utc_now(),
            "fields": json.dumps(fields, ensure_ascii=False, separators=(",", ":")),
        })
        await self._forget(service_id, key, entry_id)
        if self.on_dead_letter is not None:
            await self.on_dead_letter(service_id, fields, reason)

    async def fields(self, service_id: str, entry_id: str) -> dict[str, str] | None:
        """The fields of a job still in the stream (pending or waiting), or None."""
        entries = await self.redis.xrange(self._stream(service_id), entry_id, entry_id)
        entry = with_data(entries[0]) if entries else None
        return None if entry is None else entry[1]

    async def ack(self, service_id: str, entry_id: str) -> bool:
        """Mark the job done. True when it was pending (claimed and not yet acknowledged or dead-lettered)."""
        return bool(await self._forget(service_id, self._stream(service_id), entry_id))

    async def fail(self, service_id: str, entry_id: str, worker: str, lease: str, reason: str) -> None:
        """``worker`` gives up on this attempt. Raises QueueError unless ``worker`` holds the job under ``lease``.

        The job is made claimable by any worker at once: it stays under ``worker``'s name in the pending list but
        its idle time is set to the visibility timeout (XCLAIM ... IDLE, JUSTID so no delivery is counted), which
        is exactly what the next claim() looks for (until then a repeated fail() by the same worker is harmless).
        If this was the ``max_attempts``-th delivery it is dead-lettered now instead. ``reason`` is kept (see
        :meth:`last_reason`) until the job is acknowledged or dead-lettered, and goes into the dead letter.
        """
        key = self._stream(service_id)
        try:
            delivered = int(await self._release(
                keys=[key],
                args=[GROUP, entry_id, holder(worker, lease), self.settings.visibility_timeout_ms,
                      self.settings.max_attempts],
            ))
        except ResponseError as exc:
            if not is_nogroup(exc):
                raise
            delivered = -1
        if delivered < 0:
            raise QueueError(f"job {entry_id} of {service_id} is not held by {worker}")
        await self.redis.hset(self._reasons(service_id), entry_id, reason)
        if delivered >= self.settings.max_attempts:
            entries = await self.redis.xrange(key, entry_id, entry_id, count=1)
            entry = with_data(entries[0]) if entries else None
            if entry is None:
                await self._forget(service_id, key, entry_id)
                return
            await self._dead_letter(service_id, key, entry_id, entry[1], delivered, "too many attempts")

    async def keep(self, service_id: str, entry_id: str, worker: str, lease: str) -> bool:
        """Heartbeat: ``worker`` still works on the job under ``lease``; its visibility timeout starts again (no
        delivery is counted). False when it does not hold it (reclaimed, answered, dead-lettered, never its)."""
        if not lease:
            return False
        try:
            kept = await self._keep(keys=[self._stream(service_id)], args=[GROUP, entry_id, holder(worker, lease)])
        except ResponseError as exc:
            if not is_nogroup(exc):
                raise
            return False
        return bool(kept)

    async def holds(self, service_id: str, entry_id: str, worker: str, lease: str) -> bool:
        """Whether ``worker`` holds the job under ``lease`` now (read only; the holder may still lose it to a
        reclaim once its visibility timeout passes: :meth:`keep` checks and extends in one step)."""
        if not lease:
            return False
        pending = await self.redis.xpending_range(self._stream(service_id), GROUP, entry_id, entry_id, 1)
        return bool(pending) and text(pending[0]["consumer"]) == holder(worker, lease)

    async def last_reason(self, service_id: str, entry_id: str) -> str | None:
        """The reason given by the last fail() of a job still pending, if any."""
        raw = await self.redis.hget(self._reasons(service_id), entry_id)
        return None if raw is None else text(raw)

    async def dead_letters(self, service_id: str, *, count: int = 100) -> list[DeadLetter]:
        """The oldest ``count`` dead letters."""
        entries = await self.redis.xrange(self._dead(service_id), count=count)
        return [self._dead_letter_from(service_id, *entry) for entry in map(with_data, entries or ()) if entry]

    @staticmethod
    def _dead_letter_from(service_id: str, dead_id: str, data: dict[str, str]) -> DeadLetter:
        return DeadLetter(
            dead_id=dead_id,
            service_id=service_id,
            original_id=data["original_id"],
            fields=json.loads(data["fields"]),
            attempts=int(data["attempts"]),
            reason=data["reason"],
            dead_at=data["dead_at"],
        )

    async def discard_dead_letters(self, service_id: str, session_id: str, *, page: int = 500) -> int:
        """Delete every dead letter whose job is for ``session_id``; returns how many.

        For an application an operator redelivers as a whole: its old dead letter must not be replayed as well.
        Reads the dead-letter stream in pages (it is small: dead letters are exceptions, replayed or kept).
        """
        dead, start, found = self._dead(service_id), "-", []
        while True:
            entries = await self.redis.xrange(dead, start, "+", count=page)
            for entry in map(with_data, entries or ()):
                if entry and json.loads(entry[1].get("fields", "{}")).get("session_id") == session_id:
                    found.append(entry[0])
            if not entries or len(entries) < page:
                break
            start = "(" + text(entries[-1][0])
        return int(await self.redis.xdel(dead, *found)) if found else 0

    async def replay(self, service_id: str, dead_id: str) -> str:
        """Enqueue a dead letter's fields again as a new job (attempts start over); returns the new entry id.

        Raises KeyError if there is no such dead letter (or a concurrent replay took it), QueueFull like enqueue.
        """
        dead = self._dead(service_id)
        entries = await self.redis.xrange(dead, dead_id, dead_id, count=1)
        entry = with_data(entries[0]) if entries else None
        if entry is None:
            raise KeyError(dead_id)
        letter = self._dead_letter_from(service_id, *entry)
        new_id = await self.enqueue(service_id, letter.fields)
        if not await self.redis.xdel(dead, dead_id):  # another replay won the race: withdraw our copy
            await self.redis.xdel(self._stream(service_id), new_id)
            raise KeyError(dead_id)
        return new_id

    async def trim_acknowledged(self, service_id: str) -> int:
        """Delete acknowledged entries from the main stream; returns how many were deleted.

        Only entries older than the oldest pending one and than the first not yet delivered are touched (XTRIM
        MINID, exact), so no waiting or in-progress job loses its data. Safe to run any time, from anywhere:
        entries can only move from waiting to pending to acknowledged, never back.
        """
        key = self._stream(service_id)
        try:
            summary = await self.redis.xpending(key, GROUP)
            groups = await self.redis.xinfo_groups(key)
        except ResponseError as exc:  # no stream or no group yet: nothing delivered, nothing to trim
            if is_nogroup(exc) or "no such key" in str(exc):
                return 0
            raise
        if summary["pending"]:
            min_id = text(summary["min"])
        else:
            last = next(text(g["last-delivered-id"]) for g in groups if text(g["name"]) == GROUP)
            ms, seq = last.split("-")
            min_id = f"{ms}-{int(seq) + 1}"
        return int(await self.redis.xtrim(key, minid=min_id, approximate=False))

    async def stats(self, service_id: str) -> dict[str, int]:
        """``length``: entries in the stream (waiting, pending and acknowledged-not-trimmed), ``pending``: claimed
        and not acknowledged, ``dead``: dead letters."""
        key = self._stream(service_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(key)
            pipe.xlen(self._dead(service_id))
            pipe.xpending(key, GROUP)
            length, dead, pending = await pipe.execute(raise_on_error=False)
        if isinstance(pending, ResponseError):
            if not is_nogroup(pending):
                raise pending
            pending = {"pending": 0}
        for value in (length, dead):
            if isinstance(value, Exception):
                raise value
        return {"length": int(length), "pending": int(pending["pending"]), "dead": int(dead)}

    async def backlog(self, service_id: str, *, count_limit: int = 10_000) -> int:
        """Jobs not yet acknowledged: claimed by a worker or waiting for one. Redis 7 reports the waiting ones
        (the group's lag); on older servers they are counted after the last delivered id, up to ``count_limit``."""
        key = self._stream(service_id)
        try:
            groups = await self.redis.xinfo_groups(key)
        except ResponseError as exc:  # no stream yet: nothing queued
            if "no such key" in str(exc):
                return 0
            raise
        group = next((g for g in groups if text(g["name"]) == GROUP), None)
        if group is None:
            return int(await self.redis.xlen(key))
        if group.get("lag") is not None:
            return int(group["pending"]) + int(group["lag"])
        after = f"({text(group['last-delivered-id'])}"
        waiting = await self.redis.xrange(key, min=after, max="+", count=count_limit)
        return int(group["pending"]) + len(waiting or ())
