"""Bounded memory: finished applications leave Redis for the archive once they have been final long enough.

Keys (``P`` the prefix; each is one key, so every command here is single-slot under Redis Cluster):

- ``P:retention:finished``  sorted set: ids of final applications, scored by when they became final
- ``P:retention:lease``     which sweeper may sweep now (a token, with a TTL its holder renews)
- ``P:retention:reconciled``  when the last full reconciliation scan ended (epoch seconds)

The finished index is written by :meth:`FinishedIndex.stage`, a lifecycle stager whose write follows the final
save in the round trip after it (its own step: the save script stays one slot). A process that dies between the
two leaves a final application out of the index; the reconciliation scan (every ``reconcile_interval_seconds``)
finds it by its status key and indexes it then, so nothing final stays in Redis forever. The same scan deletes a
history key recreated by a note that came after its application left (a late callback or delivery confirmation).

One application leaves in this order, each step idempotent, so a crash anywhere is finished by the next sweep
and never loses it (:meth:`RetentionSweeper.retire`):

1. read the record, its parts (document, report, receipt, result) and history (one slot); not final any more (replayed):
   out of the index, kept;
2. write it to the archive and read it back (equal, or stop);
3. delete record, parts, status and history in one script, only if the record and history are still what was
   archived (a writer in between wins; the next sweep looks again);
4. delete what points to it from other slots: the cabinet indexes of each owner (all senders', the sender's
   own, the messageId map) and the messageId claim, each only if it still names this application;
5. remove it from the finished index.

After step 3 the dangling pointers of step 4 are harmless: the cabinet and intake fall back to the archive
for an id Redis no longer holds, and the next sweep finds the id still indexed and redoes step 4 from the
archived copy. Idempotency survives retention because intake consults the archive when Redis has no claim.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from gateway.config.retention import RetentionSettings
from gateway.lifecycle.application import PARTS, Application, Status
from gateway.lifecycle.archive import ArchivedApplication, ArchiveStore
from gateway.lifecycle.store import ApplicationStore, utc_now, with_parts
from gateway.supervise import sleep_unless

log = logging.getLogger("egov.retention")

_DROP_RECORD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('LLEN', KEYS[3]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', unpack(KEYS))
return 1
"""
_DEL_IF = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_HDEL_IF = ("if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) "
            "end return 0")
_RENEW = ("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
          "end return 0")


_AT_ONCE = 16
"Applications of a batch retired concurrently (each is a dozen round trips and a few file writes)."


class ArchiveMismatch(Exception):
    """The archive did not read back what was written: nothing is deleted from Redis."""


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    archived: int = 0
    "Applications archived and removed from Redis."
    kept: int = 0
    "Indexed applications left in Redis (no longer final, or changed while being archived)."
    leased: bool = True
    "False when another sweeper held the lease (nothing was done)."
    reconciled: int = 0
    "Final applications the reconciliation scan found missing from the index and added."


class FinishedIndex:
    """The sorted set of final applications by the time they became final."""

    def __init__(self, redis: Redis, prefix: str, *, clock: Callable[[], float] = time.time) -> None:
        self.redis, self.key, self.clock = redis, f"{prefix}:retention:finished", clock

    def stage(self, app: Application, before: Status, pipe: Pipeline) -> None:
        """Lifecycle stager: a final application joins the index; a replayed one (final before, open now) leaves
        it. Other changes write nothing (an open application that was never final is not in the index)."""
        if app.status.final:
            pipe.zadd(self.key, {app.id: self.clock()}, nx=True)
        elif before.final:
            pipe.zrem(self.key, app.id)

    async def due(self, cutoff: float, batch: int) -> list[tuple[str, float]]:
        """The oldest ``batch`` ids final since before ``cutoff``, with their scores."""
        found: list[Any] = list(await self.redis.zrangebyscore(self.key, "-inf", cutoff, start=0, num=batch,
                                                                withscores=True))
        return [(_text(member), float(score)) for member, score in found]

    async def count_due(self, cutoff: float) -> int:
        return int(await self.redis.zcount(self.key, "-inf", cutoff))


class RetentionSweeper:
    """Archives applications final for longer than the retention, then deletes their keys (module docstring)."""

    def __init__(self, redis: Redis, store: ApplicationStore, archive: ArchiveStore, settings: RetentionSettings,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.redis, self.store, self.archive, self.settings, self.clock = redis, store, archive, settings, clock
        self.index = FinishedIndex(redis, store.prefix, clock=clock)
        self.lease_key = f"{store.prefix}:retention:lease"
        self.reconciled_key = f"{store.prefix}:retention:reconciled"
        self.token = uuid.uuid4().hex
        self._drop_record = redis.register_script(_DROP_RECORD)
        self._del_if = redis.register_script(_DEL_IF)
        self._hdel_if = redis.register_script(_HDEL_IF)
        self._renew = redis.register_script(_RENEW)

    async def sweep(self) -> SweepReport:
        """One round under the lease: a batch of due applications, and the reconciliation scan when it is due."""
        lease_ms = int(self.settings.lease_seconds * 1000)
        if not await self.redis.set(self.lease_key, self.token, nx=True, px=lease_ms):
            return SweepReport(leased=False)
        archived = kept = 0
        try:
            cutoff = self.clock() - self.settings.finished_seconds
            due = await self.index.due(cutoff, self.settings.batch)
            for start in range(0, len(due), _AT_ONCE):  # independent applications: their round trips overlap
                done = await asyncio.gather(*(self.retire(app_id, at) for app_id, at in due[start:start + _AT_ONCE]),
                                            return_exceptions=True)
                archived += sum(1 for result in done if result is True)
                kept += sum(1 for result in done if result is False)
                await self._renew(keys=[self.lease_key], args=[self.token, lease_ms])
                failed = next((result for result in done if isinstance(result, BaseException)), None)
                if failed is not None:  # the rest of the batch waits for the next sweep (each step is idempotent)
                    raise failed
            reconciled = await self._reconcile_if_due()
        finally:
            await self._del_if(keys=[self.lease_key], args=[self.token])
        if archived:
            log.info("retention: archived %d finished applications (%d kept)", archived, kept)
        return SweepReport(archived, kept, True, reconciled)

    def step(self, stop: asyncio.Event) -> Callable[[], Awaitable[None]]:
        """One supervised round: a sweep, then the pause (none after a full batch: more may be due)."""

        async def one() -> None:
            report = await self.sweep()
            if report.archived + report.kept < self.settings.batch:
                await sleep_unless(stop, self.settings.sweep_interval_seconds)

        return one

    async def retire(self, app_id: str, finished_at: float) -> bool:
        """Archive one application and remove it from Redis (steps 1-5); True when it left Redis."""
        async with self.redis.pipeline(transaction=True) as pipe:  # one slot: the application's hash tag
            pipe.get(self.store._app(app_id))
            pipe.lrange(self.store._history(app_id), 0, -1)
            pipe.mget([self.store._part(app_id, part) for part in PARTS])
            raw, history, parts = await pipe.execute()
        if raw is None:  # deleted by an earlier sweep that stopped before step 4 or 5
            archived = await self.archive.get(app_id)
            if archived is not None:
                await self.drop_pointers(archived.application)
            await self.redis.zrem(self.index.key, app_id)
            return archived is not None
        app = with_parts(Application.from_json(raw), parts)
        if not app.status.final:  # replayed since: it stays, and is indexed again when final
            await self.redis.zrem(self.index.key, app_id)
            return False
        item = ArchivedApplication(app, [json.loads(event) for event in history], finished_at, utc_now())
        await self.archive_copy(item)
        if not await self.drop_record(app, raw, len(history)):
            return False
        await self.drop_pointers(app)
        await self.redis.zrem(self.index.key, app_id)
        return True

    async def archive_copy(self, item: ArchivedApplication) -> None:
        """Step 2: write, then read back; ArchiveMismatch unless the archive now holds exactly this."""
        await self.archive.put(item)
        back = await self.archive.get(item.application.id)
        if back is None or back.application.to_json() != item.application.to_json() or back.history != item.history:
            raise ArchiveMismatch(f"archive did not read back application {item.application.id}")

    async def drop_record(self, app: Application, raw: Any, history_length: int) -> bool:
        """Step 3: record, parts, status and history go, unless changed since they were archived."""
        keys = self.store.own_keys(app.id)  # the record first, the history third: the script's checks read them
        return bool(await self._drop_record(keys=keys, args=[raw, history_length]))

    async def drop_pointers(self, app: Application) -> None:
        """Step 4: each key of another slot that names the application (one command per key)."""
        for owner in app.owners:
            await self.redis.zrem(self.store._cabinet(owner), app.id)
            await self.redis.zrem(self.store._cabinet_by(owner, app.sender_id), app.id)
            await self._hdel_if(keys=[self.store._cabinet_msg(owner, app.sender_id)], args=[app.message_id, app.id])
        await self._del_if(keys=[self.store._msg(app.sender_id, app.message_id)], args=[app.id])

    async def _reconcile_if_due(self) -> int:
        last = await self.redis.get(self.reconciled_key)
        if last is not None and self.clock() - float(last) < self.settings.reconcile_interval_seconds:
            return 0
        added = await self.reconcile()
        await self.redis.set(self.reconciled_key, str(self.clock()))
        return added

    async def reconcile(self) -> int:
        """Index every final application the index lacks (scored now: it leaves one retention from now), and
        delete the history keys of archived applications that a late note recreated (a callback's or a sender's
        confirmation arriving after the application left). Returns how many it indexed.

        One SCAN over the applications' keys (every primary of a cluster: redis-py's scan_iter covers them),
        then one command per key in non-transactional pipelines; the lease is renewed every batch."""
        status_tail, history_tail = self.store._status("*").split("*")[1], self.store._history("*").split("*")[1]
        head = self.store._app("*").split("*")[0]
        added, statuses, histories = 0, [], []
        async for raw in self.redis.scan_iter(match=self.store._app("*") + "*", count=self.settings.batch):
            key = _text(raw)
            if key.endswith(status_tail):
                statuses.append(key[len(head):-len(status_tail)])
            elif key.endswith(history_tail):
                histories.append(key[len(head):-len(history_tail)])
            if len(statuses) >= self.settings.batch or len(histories) >= self.settings.batch:
                added += await self._reconcile_batch(statuses, histories)
                statuses, histories = [], []
        return added + await self._reconcile_batch(statuses, histories)

    async def _reconcile_batch(self, statuses: list[str], histories: list[str]) -> int:
        added = await self._index_missing(statuses)
        await self._drop_strays(histories)
        await self._renew(keys=[self.lease_key], args=[self.token, int(self.settings.lease_seconds * 1000)])
        return added

    async def _index_missing(self, ids: list[str]) -> int:
        if not ids:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for app_id in ids:
                pipe.get(self.store._status(app_id))
                pipe.zscore(self.index.key, app_id)
            answers = await pipe.execute()
        final = {status.value for status in Status if status.final}
        missing = {app_id: self.clock() for app_id, status, score in zip(ids, answers[::2], answers[1::2], strict=True)
                   if status is not None and _text(status) in final and score is None}
        if missing:
            await self.redis.zadd(self.index.key, missing, nx=True)
            log.warning("retention: %d final applications were missing from the finished index", len(missing))
        return len(missing)

    async def _drop_strays(self, ids: list[str]) -> int:
        """History keys without their record, of applications the archive holds: a note made after they left."""
        if not ids:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for app_id in ids:
                pipe.exists(self.store._app(app_id))
            present = await pipe.execute()
        dropped = 0
        for app_id, exists in zip(ids, present, strict=True):
            if not exists and await self.archive.get(app_id) is not None:
                dropped += int(await self.redis.delete(self.store._history(app_id)))
        if dropped:
            log.info("retention: deleted %d history keys recreated after their application was archived", dropped)
        return dropped


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
