"""Appending to the message log, and each process's cached view of how sealing goes.

Ordering across worker processes: one Lua script per append (:data:`_APPEND`) takes the next sequence numbers
with ``INCRBY`` and stores the records under them in the same atomic step, so sequence numbers are dense and
their order is the order Redis ran the appends in. Redis Lua has no SHA-256, so the hash chain is not computed
here: a record waits in Redis with its sequence number only (its ``prev`` is, implicitly, record ``seq - 1``) and
the one sealer (:mod:`gateway.messagelog.sealer`) chains the records in sequence order when it seals them.
What that gives: once sealed, a record cannot be changed, dropped or moved without ``log verify`` finding it;
before that (at most about ``segment_seconds``) the unsealed tail is only as safe as Redis itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from gateway.config import MessageLogSettings
from gateway.errors import GatewayError
from gateway.messagelog.records import BodyCipher, Entry, canonical, make_record
from gateway.supervise import sleep_unless

log = logging.getLogger("egov.messagelog")

# KEYS: seq counter, records hash, pending-since. ARGV[1]: the first record's time; ARGV[2..]: the records.
_APPEND = """
local count = #ARGV - 1
local last = redis.call('INCRBY', KEYS[1], count)
for i = 1, count do
  redis.call('HSET', KEYS[2], last - count + i, ARGV[i + 1])
end
redis.call('SET', KEYS[3], ARGV[1], 'NX')
return last
"""


@dataclass(frozen=True)
class LogKeys:
    """The message log's Redis keys under one prefix."""

    seq: str
    "The last sequence number given."
    records: str
    "Hash: sequence number -> record (canonical JSON, without seq and prev), until sealed."
    pending_since: str
    "When the oldest unsealed record was appended (ISO 8601); absent when nothing waits."
    sealed: str
    "Hash of the last seal: seq, head, segment, at."
    failing_since: str
    "When sealing started failing (ISO 8601); absent while it works."
    lease: str
    "The sealer's lease (one sealer at a time)."
    tsa_failing: str
    "Hash ``since`` (ISO 8601), ``detail``: the TSA's time-stamp requests fail; absent while it answers."

    @classmethod
    def under(cls, prefix: str, *, cluster: bool = False) -> LogKeys:
        """The keys under ``prefix``. On a Redis Cluster they share the hash tag ``{mlog}`` (the append and seal
        scripts take several: one slot); a single server keeps the untagged names, so a log's sequence and seal
        state carry on across an upgrade."""
        base = f"{prefix}:mlog:{{mlog}}" if cluster else f"{prefix}:mlog"
        return cls(f"{base}:seq", f"{base}:records", f"{base}:pending-since", f"{base}:sealed",
                   f"{base}:failing-since", f"{base}:sealer", f"{base}:tsa-failing")


@dataclass(frozen=True)
class SealStatus:
    """How sealing goes, as this process last saw it (refreshed every ``check_seconds``)."""

    enabled: bool
    "Whether the message log is on."
    unsealed_records: int
    "Records appended and not yet sealed (gauge egov_messagelog_unsealed_records)."
    last_seal_age_seconds: float | None
    "Seconds since the last seal (gauge egov_messagelog_last_seal_age_seconds); None before the first."
    pending_since: datetime | None
    "When the oldest unsealed record was appended; None when nothing waits."
    failing_since: datetime | None
    "Since when sealing fails (the TSA, the archive, the key); None while it works."
    checked_at: float
    "time.time() of the refresh this status comes from (0: never refreshed)."
    overdue_after_seconds: float
    "A record unsealed longer than this makes intake refuse (segment_seconds + max_seal_failure_seconds)."
    tsa_failing_since: datetime | None = None
    "Since when the TSA's time-stamp requests fail (unreachable, not 200, a refused token); None while it answers."
    tsa_detail: str = ""
    "How the last one failed ('' while it answers)."

    def overdue_seconds(self, now: float | None = None) -> float:
        """How long the oldest unsealed record is past its allowance (<= 0: on time)."""
        if self.pending_since is None:
            return 0.0 - self.overdue_after_seconds
        return (now or time.time()) - self.pending_since.timestamp() - self.overdue_after_seconds

    @property
    def on_time(self) -> bool:
        """The readiness check "message log sealing on time": off, or no record past its allowance."""
        return not self.enabled or self.overdue_seconds() <= 0

    def reason(self) -> str:
        """Why it is not on time (for /health and the 503 detail); '' when it is."""
        if self.on_time:
            return ""
        why = f"since {self.failing_since.isoformat(timespec='seconds')}" if self.failing_since else \
            "and no sealer has sealed (is one running?)"
        return f"{self.unsealed_records} record(s) unsealed for too long; sealing fails {why}"

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "onTime": self.on_time, "unsealedRecords": self.unsealed_records,
                "lastSealAgeSeconds": None if self.last_seal_age_seconds is None
                else round(self.last_seal_age_seconds, 1),
                "failingSince": self.failing_since.isoformat() if self.failing_since else None,
                "reason": self.reason() or None,
                "tsaFailingSince": self.tsa_failing_since.isoformat() if self.tsa_failing_since else None,
                "tsaProblem": self.tsa_detail or None}


def is_cluster(redis: Redis) -> bool:
    """Whether ``redis`` is a Redis Cluster client (the factory hands one out typed as Redis)."""
    return isinstance(redis, RedisCluster)


def _retrieve(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()


def _when(raw: Any) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Waiting:
    """One append waiting for the next round trip."""

    at: str
    "Its first record's time."
    records: tuple[bytes, ...]
    "Its records, canonical."
    done: asyncio.Future[int]
    "Set to its last sequence number, or to the storage error."


class MessageLog:
    """What the rooms call: :meth:`append` (one round trip), :meth:`check_open` (no round trip).

    One per process. When the log is off both do nothing. Contract: :meth:`append` returns only once the records
    are stored in Redis (raises RedisError otherwise, and the caller must not answer as if logged). Appends made
    while one is on its way go together in the next round trip (one script call, in order), so under load the log
    costs about one round trip per batch, not per request.
    """

    def __init__(self, redis: Redis, prefix: str, settings: MessageLogSettings,
                 cipher: BodyCipher | None = None) -> None:
        self.redis, self.settings, self.cipher = redis, settings, cipher
        self.keys = LogKeys.under(prefix, cluster=is_cluster(redis))
        self._append = redis.register_script(_APPEND)
        self._waiting: list[_Waiting] = []
        self._busy = False
        "An append is on its way: the next ones wait and go together after it."
        self._sending: asyncio.Task[None] | None = None
        self.status = SealStatus(settings.enabled, 0, None, None, None, 0.0,
                                 settings.segment_seconds + settings.max_seal_failure_seconds)

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def append(self, *entries: Entry) -> int:
        """Append ``entries`` in order, atomically; returns the last sequence number (0 when off)."""
        if not self.settings.enabled or not entries:
            return 0
        records = [make_record(entry, self.cipher) for entry in entries]
        at, lines = records[0]["at"], tuple(canonical(r) for r in records)
        if not self._busy:  # nothing on its way: straight to Redis, no task, no future
            self._busy = True
            try:
                return await self._call(at, lines)
            finally:
                self._hand_over()
        waiting = _Waiting(at, lines, asyncio.get_running_loop().create_future())
        waiting.done.add_done_callback(_retrieve)  # a caller that went away leaves no unretrieved error behind
        self._waiting.append(waiting)
        # shield: a caller that goes away does not cancel the round trip the others share.
        return await asyncio.shield(waiting.done)

    async def _call(self, at: str, lines: Sequence[bytes]) -> int:
        return int(await self._append(keys=[self.keys.seq, self.keys.records, self.keys.pending_since],
                                      args=[at, *lines]))

    def _hand_over(self) -> None:
        """After a round trip: the appends that waited for it go next, together; else the way is free."""
        if self._waiting:
            self._sending = asyncio.create_task(self._send())
        else:
            self._busy = False

    async def _send(self) -> None:
        """Send what waits, batch after batch, until nothing does; then free the way."""
        try:
            await self._send_batches()
        finally:
            self._busy = False

    async def _send_batches(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            records = [record for waiting in batch for record in waiting.records]
            try:
                last = await self._call(batch[0].at, records)
            except Exception as exc:  # RedisError, OSError: each caller gets it
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(exc)
                continue
            for waiting in reversed(batch):
                if not waiting.done.done():
                    waiting.done.set_result(last)
                last -= len(waiting.records)

    def append_in(self, pipe: Pipeline, *entries: Entry) -> None:
        """Add the append of ``entries`` to ``pipe`` (another write's transaction, sparing a round trip). The
        script goes as EVAL, not EVALSHA: a server that lost its script cache cannot fail it inside the write."""
        if not self.settings.enabled or not entries:
            return
        records = [make_record(entry, self.cipher) for entry in entries]
        pipe.eval(_APPEND, 3, self.keys.seq, self.keys.records, self.keys.pending_since, records[0]["at"],
                  *(canonical(r) for r in records))

    async def unsealed_records(self) -> int:
        """Monitoring's reading (gateway.monitor.messagelog): records not yet sealed, from the cached status."""
        return self.status.unsealed_records

    async def last_seal_age_seconds(self) -> float | None:
        """Monitoring's reading: seconds since the last seal (as of the cached status), None before the first."""
        return self.status.last_seal_age_seconds

    async def oldest_unsealed_age_seconds(self) -> float | None:
        """Monitoring's reading: how long the oldest unsealed record has waited (cached status), None if none."""
        pending = self.status.pending_since
        return None if pending is None else max(0.0, time.time() - pending.timestamp())

    async def tsa_failure(self) -> tuple[datetime, str] | None:
        """Monitoring's reading: since when and how the TSA's time-stamp requests fail (cached status), None
        while it answers."""
        since = self.status.tsa_failing_since
        return None if since is None else (since, self.status.tsa_detail)

    def check_open(self) -> None:
        """Refuse new requests (503 GATEWAY_MESSAGELOG_UNSEALED, Retry-After) when records have stayed unsealed
        past their allowance: better refuse than accept what cannot be proven. Reads the cached status only."""
        status = self.status
        if status.enabled and not status.on_time:
            retry = max(1, min(60, int(self.settings.check_seconds * 5)))
            raise GatewayError("GATEWAY_MESSAGELOG_UNSEALED", status.reason(), retry_after=retry)

    async def refresh(self) -> SealStatus:
        """Read the seal state from Redis into :attr:`status` (one pipelined round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.seq)
            pipe.hgetall(self.keys.sealed)
            pipe.get(self.keys.pending_since)
            pipe.get(self.keys.failing_since)
            pipe.hgetall(self.keys.tsa_failing)
            seq, sealed, pending, failing, tsa = await pipe.execute()
        sealed = {(k.decode() if isinstance(k, bytes) else k): v for k, v in (sealed or {}).items()}
        tsa = {(k.decode() if isinstance(k, bytes) else k): v for k, v in (tsa or {}).items()}
        detail = tsa.get("detail", b"")
        sealed_seq = int(sealed.get("seq", 0))
        sealed_at = _when(sealed.get("at"))
        now = time.time()
        self.status = SealStatus(
            enabled=self.settings.enabled, unsealed_records=max(0, int(seq or 0) - sealed_seq),
            last_seal_age_seconds=None if sealed_at is None else max(0.0, now - sealed_at.timestamp()),
            pending_since=_when(pending), failing_since=_when(failing), checked_at=now,
            overdue_after_seconds=self.status.overdue_after_seconds, tsa_failing_since=_when(tsa.get("since")),
            tsa_detail=detail.decode() if isinstance(detail, bytes) else str(detail))
        return self.status

    async def watch(self, stop: asyncio.Event) -> None:
        """Refresh :attr:`status` every ``check_seconds`` until ``stop``; storage trouble keeps the last one."""
        if not self.settings.enabled:
            return
        failing = False
        while not stop.is_set():
            try:
                await self.refresh()
                failing = False
            except Exception as exc:  # storage trouble above all; never let the loop die (CancelledError ends it)
                if not failing:
                    log.warning("message log status not refreshed: %s", type(exc).__name__,
                                exc_info=not isinstance(exc, RedisError | OSError))
                failing = True
            await sleep_unless(stop, self.settings.check_seconds)


MESSAGELOG = web.AppKey("messagelog", MessageLog)
"The process's message log on the aiohttp application: ``app[MESSAGELOG].status`` is its :class:`SealStatus`."
