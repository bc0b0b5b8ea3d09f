"""Applications in Redis: the record, its history, the cabinet index, and messageId claims.

Keys (``P`` is the configured prefix; ``{id}`` hash-tags an application's keys to one cluster slot):

- ``P:app:{id}``          JSON of :class:`Application`, without its parts (a small record, rewritten by each save)
- ``P:app:{id}:document``, ``:report``, ``:receipt``, ``:result``  the parts (:data:`PARTS`), each written once
  (the XML as it is, not inside JSON; the report as JSON): the first three by the create, the result by the save
  that brings it
- ``P:app:{id}:history``  list of JSON events, oldest first
- ``P:app:{id}:open``     what the create steps after the record need, until they are all done (not acknowledged)
- ``P:msg:<sender>:<messageId>``  the application id that first used this messageId (idempotency)
- ``P:cabinet:<iin|bin>``     sorted set of application ids by creation time (every sender's)
- ``P:cabinet:<iin|bin>:by:<sender>``  the same, of one sender's applications (what that sender may list)
- ``P:cabinet:<iin|bin>:msg:<sender>`` hash messageId -> application id, of one sender's applications
- ``P:cabinet:<iin|bin>:indexed``  marker: records older than the per-sender indexes were added to them

Redis Cluster: every MULTI and script touches one application's keys (one slot); what spans owners (the claim,
the schedule, the cabinet indexes) is written by single-key commands in the ordered, idempotent steps of
:meth:`ApplicationStore.create` (docs/storage.md has the whole key table).

Every write that acknowledges something happens before the acknowledgement is sent. The store is storage
only: which status may follow which is decided by :mod:`gateway.lifecycle.transitions`, the one caller of
:meth:`ApplicationStore.create`, :meth:`~ApplicationStore.save` and :meth:`~ApplicationStore.note`. The Lua guard
in ``save`` stays as the storage-level defence against stale writers (another process's older copy).
Security: the records hold applicants' IINs and signed documents; the Redis holding them must stay private.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline

from gateway.lifecycle.application import PARTS, Application, Status

_FINAL = tuple(status.value for status in Status if status.final)
# All keys carry the application's hash tag, so this stays one-slot under Redis Cluster. The status has a key of
# its own so the guard reads a few bytes, not the whole application; the change is published in the same trip.
_SAVE = """
local current = redis.call('GET', KEYS[3])
if current and ARGV[3] == '0' then
  if """ + " or ".join(f"current == '{s}'" for s in _FINAL) + """ then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[4])
local parts = tonumber(ARGV[6])
for i = 1, parts do redis.call('SET', KEYS[3 + i], ARGV[6 + i]) end
for i = 7 + parts, #ARGV do redis.call('PUBLISH', ARGV[i], ARGV[5]) end
return 1
"""
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# A history event and its announcement, one key (PUBLISH in a script is allowed on a cluster).
_NOTE = """
redis.call('RPUSH', KEYS[1], ARGV[1])
for i = 3, #ARGV do redis.call('PUBLISH', ARGV[i], ARGV[2]) end
return 1
"""

_PUBLISH = "for i = 2, #ARGV do redis.call('PUBLISH', ARGV[i], ARGV[1]) end return 1"

REPAIR_AFTER_SECONDS = 5.0
"How old an unfinished create must be before a repeat of its messageId finishes it (the first surely died)."


@dataclass(frozen=True)
class OpenSteps:
    """What the create steps after the record need (the ``:open`` marker, JSON), so a repair can run them."""

    schedule: str | None
    "The delivery schedule the application joins, if any."
    due_at: float
    "When it falls due there (epoch seconds)."
    at: float
    "When the create began (epoch seconds): a younger one may still be running."

    def to_json(self) -> str:
        return json.dumps({"schedule": self.schedule, "due_at": self.due_at, "at": self.at})

    @classmethod
    def from_json(cls, raw: str | bytes) -> OpenSteps:
        data = json.loads(raw)
        return cls(data.get("schedule"), float(data["due_at"]), float(data["at"]))


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ApplicationStore:
    """Async access to applications; one instance per process, sharing the Redis connection pool.

    Reads never block writers; each write is atomic (MULTI or one script) and touches one application's keys.
    """

    def __init__(self, redis: Redis, prefix: str = "egov", *,
                 repair_after_seconds: float = REPAIR_AFTER_SECONDS) -> None:
        self.redis = redis
        self.prefix = prefix
        self.repair_after_seconds = repair_after_seconds
        self._save = redis.register_script(_SAVE)
        self._release = redis.register_script(_RELEASE)
        self._note = redis.register_script(_NOTE)
        self.one_server = not isinstance(redis, RedisCluster)
        "One server (or a Sentinel-kept primary): every key in one place, so the create steps pair up (see create)."

    def _app(self, app_id: str) -> str:
        return f"{self.prefix}:app:{{{app_id}}}"

    def _status(self, app_id: str) -> str:
        return f"{self.prefix}:app:{{{app_id}}}:status"

    def _history(self, app_id: str) -> str:
        return f"{self.prefix}:app:{{{app_id}}}:history"

    def _open(self, app_id: str) -> str:
        return f"{self.prefix}:app:{{{app_id}}}:open"

    def _part(self, app_id: str, part: str) -> str:
        """``P:app:{id}:document`` (or ``:report``, ``:receipt``, ``:result``): one part, written once."""
        return f"{self.prefix}:app:{{{app_id}}}:{part}"

    def own_keys(self, app_id: str) -> list[str]:
        """Every key of the application's own slot that lives as long as its record (what retention deletes)."""
        return [self._app(app_id), self._status(app_id), self._history(app_id),
                *(self._part(app_id, part) for part in PARTS)]

    def _msg(self, sender_id: str, message_id: str) -> str:
        return f"{self.prefix}:msg:{sender_id}:{message_id}"

    def _cabinet(self, owner: str) -> str:
        return f"{self.prefix}:cabinet:{owner}"

    def _cabinet_by(self, owner: str, sender_id: str) -> str:
        return f"{self.prefix}:cabinet:{owner}:by:{sender_id}"

    def _cabinet_msg(self, owner: str, sender_id: str) -> str:
        return f"{self.prefix}:cabinet:{owner}:msg:{sender_id}"

    async def claim_message(self, sender_id: str, message_id: str, app_id: str) -> str | None:
        """Reserve ``message_id`` for ``app_id``. Returns None if reserved now, else the earlier owner.

        Not used by intake (:meth:`create` claims as its step 2); kept for tools and tests."""
        key = self._msg(sender_id, message_id)
        if await self.redis.set(key, app_id, nx=True):
            return None
        existing = await self.redis.get(key)
        return existing.decode() if isinstance(existing, bytes) else existing

    async def release_message(self, sender_id: str, message_id: str, app_id: str) -> None:
        """Undo a claim whose application could not be recorded (only if still ours: one script, one key)."""
        await self._release(keys=[self._msg(sender_id, message_id)], args=[app_id])

    async def create(self, app: Application, events: list[tuple[Status, str]], *, schedule: str | None = None,
                     due_at: float | None = None, also: Callable[[Pipeline], None] | None = None) -> str | None:
        """Record a new application with its first history events, claim its messageId, schedule and index it.

        Returns None when recorded (every step done: it may be acknowledged now), else the id of the application
        that already holds the messageId (then nothing of ours is left). ``schedule`` names the delivery schedule
        (sorted set) it joins, due at ``due_at`` (epoch seconds; default now). ``also`` adds its own commands to
        step 5 (the message log's request and receipt records).

        The steps (see docs/storage.md), each within one Redis Cluster slot and each idempotent, in an order that
        a crash between two of them cannot leave an acknowledged application unscheduled or unfindable:
        (1) :meth:`_record_own`: the record, status, history and the ``:open`` marker, one MULTI under ``{id}``;
        (2) the messageId claim, SET NX: lost, our own keys go and the holder is answered;
        (3)-(5) :meth:`_spread`: schedule, cabinet indexes, message log; (6) the ``:open`` marker goes.
        Until (6) the marker says what (3)-(5) need, so a repeat of the messageId after a crash re-runs them
        (:meth:`finish`): the claim of (2) is what makes the unfinished application reachable for that repair.
        On one server (:attr:`one_server`) the steps take two round trips instead of four: (1) and (2) are one
        MULTI, (3)-(6) another; a server runs a MULTI whole or not at all, so the order above still holds.
        """
        history = [json.dumps({"at": app.created_at, "status": status, "note": note}, ensure_ascii=False)
                   for status, note in events]
        steps = OpenSteps(schedule, time.time() if due_at is None else due_at, time.time())
        stored_before = list(app.stored_parts)
        claimed = await self._record_own(app, history, steps)
        if claimed is None:
            claimed = bool(await self.redis.set(self._msg(app.sender_id, app.message_id), app.id, nx=True))
        if not claimed:
            app.stored_parts = stored_before  # its parts go with the rest: a retry must write them again
            await self._forget_own(app.id)
            holder = await self.holder(app.sender_id, app.message_id)
            if holder is not None:
                return holder
            # The holder let go between our SET and our GET (a released orphan): claim afresh, once more.
            return await self.create(app, events, schedule=schedule, due_at=due_at, also=also)
        await self._spread(app, steps, also)
        if not self.one_server:
            await self.redis.delete(self._open(app.id))
        return None

    def created_keys(self, app: Application, schedule: str | None) -> list[str]:
        """A key of each slot the create steps (and a repair) write for ``app``, the message log's aside: what a
        wait for replicas must cover (:mod:`gateway.lifecycle.replicas` groups them by primary)."""
        keys = [self._app(app.id), self._msg(app.sender_id, app.message_id)]
        if schedule:
            keys.append(schedule)
        for owner in app.owners:
            keys += [self._cabinet(owner), self._cabinet_by(owner, app.sender_id),
                     self._cabinet_msg(owner, app.sender_id)]
        return keys

    async def _record_own(self, app: Application, history: list[str], steps: OpenSteps) -> bool | None:
        """Step 1: the application's own keys in one MULTI under its hash tag (one slot); on one server step 2,
        the claim, joins it and its outcome is returned (None: not claimed yet). The wait for replicas
        (``min_replica_acks``) comes after every step, over the keys of :meth:`created_keys`."""
        parts = app.unstored_parts()
        record = app.record_json()
        async with self.redis.pipeline(transaction=True) as pipe:
            for part, value in parts.items():
                pipe.set(self._part(app.id, part), value)
            pipe.set(self._app(app.id), record)
            pipe.set(self._status(app.id), str(app.status))
            pipe.rpush(self._history(app.id), *history)
            pipe.set(self._open(app.id), steps.to_json())
            if self.one_server:
                pipe.set(self._msg(app.sender_id, app.message_id), app.id, nx=True)
            replies = await pipe.execute()
        app.stored_parts = sorted({*app.stored_parts, *parts})
        return bool(replies[-1]) if self.one_server else None

    async def _forget_own(self, app_id: str) -> None:
        """Undo step 1 (the claim went to another application; nothing else was written)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*self.own_keys(app_id), self._open(app_id))
            await pipe.execute()

    async def _spread(self, app: Application, steps: OpenSteps, also: Callable[[Pipeline], None] | None, *,
                      schedule: bool = True) -> None:
        """Steps 3-5, one pipelined round trip (split by node on a cluster, so in no set order; each command
        touches one slot). (3) schedule: ZADD NX, so a repair never moves a lease the delivery loop has taken;
        (4) each owner's cabinet indexes and the event for open cabinets; (5) ``also`` (the message log). On one
        server they are a MULTI that ends with (6), the ``:open`` marker's removal."""
        score = datetime.fromisoformat(app.created_at).timestamp()
        async with self.redis.pipeline(transaction=self.one_server) as pipe:
            if schedule and steps.schedule:
                pipe.zadd(steps.schedule, {app.id: steps.due_at}, nx=True)
            for owner in app.owners:
                pipe.zadd(self._cabinet(owner), {app.id: score})
                pipe.zadd(self._cabinet_by(owner, app.sender_id), {app.id: score})
                pipe.hset(self._cabinet_msg(owner, app.sender_id), app.message_id, app.id)
            # PUBLISH through a keyless script: a cluster pipeline refuses PUBLISH itself (any node broadcasts it).
            pipe.eval(_PUBLISH, 0, self._event(app, None), *(self.events_channel(o) for o in app.owners))
            if also is not None:
                also(pipe)  # a ClusterPipeline on a cluster: the same command API
            if self.one_server:
                pipe.delete(self._open(app.id))
            await pipe.execute()

    async def finish(self, app: Application, also: Callable[[Pipeline], None] | None = None) -> bool:
        """Finish the create steps of an application a crash left unfinished; False while they may still be
        running (its ``:open`` marker is younger than ``repair_after_seconds``: answer "in progress").

        Recovers: (3) the schedule (skipped once the application is final: delivery finished it, it must not
        be delivered again), (4) the cabinet indexes, (5) the message log's records through ``also`` (which may
        so appear twice after a crash right after (5): at least once, never lost), then (6) the marker.
        (1) needs no recovery (the record is what was found) and (2) neither (the claim is how it was found).
        True when nothing was open or it is whole now."""
        raw = await self.redis.get(self._open(app.id))
        if raw is None:
            return True
        steps = OpenSteps.from_json(raw)
        if time.time() - steps.at < self.repair_after_seconds:
            return False
        await self._spread(app, steps, also, schedule=not app.status.final)
        if not self.one_server:
            await self.redis.delete(self._open(app.id))
        return True

    async def is_open(self, app_id: str) -> bool:
        """Whether the create steps of ``app_id`` are unfinished (it has not been acknowledged)."""
        return bool(await self.redis.exists(self._open(app_id)))

    async def holder(self, sender_id: str, message_id: str) -> str | None:
        """The id of the application holding ``message_id`` of ``sender_id``, if any (a plain read)."""
        held = await self.redis.get(self._msg(sender_id, message_id))
        return None if held is None else _text(held)

    async def save(self, app: Application, note: str, *, step: str | None = None, at: str | None = None,
                   reopen: bool = False) -> bool:
        """Store a changed application and append a history event (a back-end ``step`` code if given).

        Atomic, and a final state is never overwritten by a non-final one: several actors (delivery loops,
        desks, operators) may hold copies of one application, and a stale copy must not undo a result.
        Returns False when the write was refused for that reason (the stored state stands). ``reopen`` is for
        the one deliberate way back: an operator replaying a stopped application.
        """
        app.updated_at = utc_now()
        event: dict[str, Any] = {"at": at or app.updated_at, "status": app.status, "note": note}
        if step:
            event["step"] = step
        if app.error_code:
            event["error_code"] = app.error_code
        # Only what changed: the small record, and a part this copy holds that is not stored yet (the result, or
        # the parts of a record an older version wrote inline, which so moves to the new layout).
        parts = app.unstored_parts()
        written = await self._save(
            keys=[self._app(app.id), self._history(app.id), self._status(app.id),
                  *(self._part(app.id, part) for part in parts)],
            args=[app.record_json(), json.dumps(event, ensure_ascii=False), "1" if app.status.final or reopen else "0",
                  str(app.status), self._event(app, step), str(len(parts)), *parts.values(),
                  *(self.events_channel(o) for o in app.owners)],
        )
        if written:
            app.stored_parts = sorted({*app.stored_parts, *parts})
        return bool(written)

    async def note(self, app: Application, note: str) -> None:
        """Append a history event without rewriting the record (so a stale copy cannot undo anything), and
        announce it like any change: open cabinet pages reload the history."""
        event = {"at": utc_now(), "status": app.status, "note": note}
        await self._note(keys=[self._history(app.id)], args=[json.dumps(event, ensure_ascii=False),
                                                              self._event(app, None),
                                                              *(self.events_channel(o) for o in app.owners)])

    def events_channel(self, owner: str) -> str:
        """Pub/sub channel announcing changes to the applications of ``owner`` (an IIN or a BIN)."""
        return f"{self.prefix}:events:{owner}"

    @staticmethod
    def _event(app: Application, step: str | None) -> str:
        """What open cabinet pages are told (best effort: the stored state is the truth, a page reloads it).

        ``senderId`` lets a stream pass on only the events of its own sender's applications."""
        return json.dumps({"sessionId": app.id, "messageId": app.message_id, "senderId": app.sender_id,
                           "status": app.status, "step": step, "at": app.updated_at})

    async def find_by_message(self, sender_id: str, message_id: str) -> Application | None:
        """The application a sender submitted under ``message_id``."""
        app_id = await self.redis.get(self._msg(sender_id, message_id))
        if not app_id:
            return None
        return await self.get(_text(app_id))

    async def get(self, app_id: str, *, parts: bool = True) -> Application | None:
        """The stored application, or None. A copy: changes go through the lifecycle.

        With its parts (document, report, receipt, result) read in the same round trip (one MGET: one slot), unless
        ``parts`` is False (then they are None, and :attr:`Application.has_result` still tells a result is there)."""
        if not parts:
            raw = await self.redis.get(self._app(app_id))
            return Application.from_json(raw) if raw else None
        raw, *values = await self.redis.mget([self._app(app_id), *(self._part(app_id, part) for part in PARTS)])
        return with_parts(Application.from_json(raw), values) if raw else None

    async def parts(self, app: Application) -> Application:
        """``app`` (read without its parts) with them read now; returns it."""
        return with_parts(app, await self.redis.mget([self._part(app.id, part) for part in PARTS]))

    async def history(self, app_id: str) -> list[dict[str, Any]]:
        return [json.loads(item) for item in await self.redis.lrange(self._history(app_id), 0, -1)]

    async def list_for(self, owner: str, *, sender_id: str | None, offset: int = 0,
                       limit: int = 50) -> tuple[int, list[Application]]:
        """The owner's applications submitted by ``sender_id``, newest first, and how many there are in all.

        ``sender_id=None`` lists every sender's: only for a reader granted that (``cabinet_reads_all``).
        """
        key = self._cabinet(owner) if sender_id is None else self._cabinet_by(owner, sender_id)
        total, ids = await self._page(key, offset, limit)
        if sender_id is not None and not total and await self._backfill(owner):
            total, ids = await self._page(key, offset, limit)
        if not ids:
            return total, []
        raws = await self._records([_text(i) for i in ids])
        return total, [Application.from_json(raw) for raw in raws if raw]  # without their parts: a list needs none

    async def _records(self, app_ids: list[str]) -> list[Any]:
        """The records of ``app_ids`` in one pipelined round trip: a GET each, not one MGET (the records live
        in different cluster slots; the cluster client sends each node its share)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for app_id in app_ids:
                pipe.get(self._app(app_id))
            return list(await pipe.execute())

    async def _page(self, key: str, offset: int, limit: int) -> tuple[int, list[Any]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(key)
            pipe.zrevrange(key, offset, offset + limit - 1)
            total, ids = await pipe.execute()
        return int(total), list(ids)

    async def find_for(self, owner: str, message_id: str, *, sender_id: str) -> Application | None:
        """The application ``sender_id`` submitted under ``message_id`` for ``owner`` (never another sender's)."""
        key = self._cabinet_msg(owner, sender_id)
        app_id = await self.redis.hget(key, message_id)
        if not app_id and await self._backfill(owner):
            app_id = await self.redis.hget(key, message_id)
        if not app_id:
            return None
        app = await self.get(_text(app_id))
        # The index is per owner and sender, but check again: an item is never shown under another one.
        return app if app and owner in app.owners and app.sender_id == sender_id else None

    async def find_session_for(self, owner: str, app_id: str, *, sender_id: str | None) -> Application | None:
        """The application with this session id, if it is ``owner``'s and (unless None) ``sender_id``'s."""
        app = await self.get(app_id)
        if app is None or owner not in app.owners or (sender_id is not None and app.sender_id != sender_id):
            return None
        return app

    async def has_applications(self, owner: str, sender_id: str) -> bool:
        """Whether ``sender_id`` submitted any application of ``owner``."""
        key = self._cabinet_by(owner, sender_id)
        if await self.redis.exists(key):
            return True
        return await self._backfill(owner) and bool(await self.redis.exists(key))

    async def _backfill(self, owner: str) -> bool:
        """Add the owner's records written before the per-sender indexes existed to them, once per owner.

        Returns True when it added something (the caller looks again). Idempotent, so two processes doing it
        at once is harmless.
        """
        marker = f"{self._cabinet(owner)}:indexed"
        if await self.redis.exists(marker):
            return False
        entries: list[Any] = list(await self.redis.zrange(self._cabinet(owner), 0, -1, withscores=True))
        added = False
        for start in range(0, len(entries), 500):
            chunk = entries[start:start + 500]
            raws = await self._records([_text(app_id) for app_id, _ in chunk])
            async with self.redis.pipeline(transaction=False) as pipe:  # idempotent writes of many owners' keys
                for (_, score), raw in zip(chunk, raws, strict=True):
                    if raw:
                        app = Application.from_json(raw)
                        pipe.zadd(self._cabinet_by(owner, app.sender_id), {app.id: score})
                        pipe.hset(self._cabinet_msg(owner, app.sender_id), app.message_id, app.id)
                        added = True
                await pipe.execute()
        await self.redis.set(marker, "1")
        return added

    async def ping(self) -> bool:
        return bool(await self.redis.ping())


def with_parts(app: Application, values: list[Any]) -> Application:
    """``app`` with the parts read from their keys (in :data:`PARTS` order); an absent key leaves the copy's own value
    (an older record's inline part)."""
    for part, value in zip(PARTS, values, strict=True):
        if value is not None:
            app.set_part(part, value)
    return app


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
