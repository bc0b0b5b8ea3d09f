"""The application lifecycle: which status may follow which, and the one writer of status and history.

Every change of an application's status goes through :class:`Lifecycle`; intake, delivery, the job API and
the notifier call it and never set ``status`` themselves. The table (:data:`TRANSITIONS`)::

    accept    (new)                           -> accepted (async) | routed (sync, sent on at once)
    route     accepted, routed                -> routed       sent to the back-end / queued for a desk
    take      accepted, routed, in_progress   -> in_progress  the back-end took it (registered, job claimed)
    progress  accepted, routed, in_progress   -> in_progress  the back-end reported a step
    retry     accepted, routed                -> routed       a transient failure; delivery tries again
              in_progress                     -> in_progress
    complete  accepted, routed, in_progress   -> completed    final
    refuse    accepted, routed, in_progress   -> refused      final
    fail      accepted, routed, in_progress   -> failed       final
    stop      accepted, routed, in_progress   -> stopped      final until an operator replays it
    replay    stopped                         -> routed       the one way back

Anything else raises :class:`IllegalTransition` before anything is written. The table is checked against the
caller's copy; the store's Lua guard then refuses to write a non-final status over a stored final one, the
defence against a stale copy held by another process (a transition method returns False in that case).
History-only notes (:meth:`Lifecycle.note`) append an event and change nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio.client import Pipeline

from gateway.lifecycle.application import Application, Status
from gateway.lifecycle.store import ApplicationStore
from gateway.supervise import STORAGE_ERRORS

log = logging.getLogger("egov.lifecycle")


class Transition(StrEnum):
    ROUTE = "route"
    "Sent to the back-end, or queued for its desk."
    TAKE = "take"
    "The back-end took it to work on: a provider registered it, a desk claimed the job."
    PROGRESS = "progress"
    "The back-end reported one of its steps."
    RETRY = "retry"
    "A delivery attempt failed transiently and will be made again."
    COMPLETE = "complete"
    "The back-end's checked answer is the result."
    REFUSE = "refuse"
    "The back-end's checked answer is a reasoned refusal."
    FAIL = "fail"
    "The back-end could not take it or answered wrongly."
    STOP = "stop"
    "Delivery was given up (dead-lettered)."
    REPLAY = "replay"
    "An operator delivers a stopped application again."


_OPEN = (Status.ACCEPTED, Status.ROUTED, Status.IN_PROGRESS)
TRANSITIONS: Mapping[Transition, Mapping[Status, Status]] = {
    Transition.ROUTE: {Status.ACCEPTED: Status.ROUTED, Status.ROUTED: Status.ROUTED},
    Transition.TAKE: dict.fromkeys(_OPEN, Status.IN_PROGRESS),
    Transition.PROGRESS: dict.fromkeys(_OPEN, Status.IN_PROGRESS),
    Transition.RETRY: {Status.ACCEPTED: Status.ROUTED, Status.ROUTED: Status.ROUTED,
                       Status.IN_PROGRESS: Status.IN_PROGRESS},
    Transition.COMPLETE: dict.fromkeys(_OPEN, Status.COMPLETED),
    Transition.REFUSE: dict.fromkeys(_OPEN, Status.REFUSED),
    Transition.FAIL: dict.fromkeys(_OPEN, Status.FAILED),
    Transition.STOP: dict.fromkeys(_OPEN, Status.STOPPED),
    Transition.REPLAY: {Status.STOPPED: Status.ROUTED},
}
"For each transition: the statuses it may start from, and the status it leads to from each."


class IllegalTransition(Exception):
    """A transition the table does not allow from the application's status; nothing was written."""

    def __init__(self, app_id: str, transition: Transition, status: Status) -> None:
        super().__init__(f"{transition} is not allowed from {status} (application {app_id})")
        self.app_id, self.transition, self.status = app_id, transition, status


@dataclass(frozen=True)
class Lease:
    """Where a new application waits for the delivery loop, written in the same transaction as the record."""

    schedule: str
    "Key of the delivery schedule (the outbox)."
    due_at: float
    "Epoch seconds at which the delivery loop takes it (async: now; sync: only if the request never finished)."


Listener = Callable[[Application], Awaitable[None]]
Stager = Callable[[Application, Status, Pipeline], None]
"Queues the single-key writes that follow a status change (from the status given) on the pipeline; no reads."


class Lifecycle:
    """The only writer of applications' status and history; one per process.

    Each method checks the transition, changes the given copy, writes it with one history event and, when the
    status changed, tells the listeners (the notifier). Listeners run after the write; their failures are
    logged and never undo or block a transition.
    """

    def __init__(self, store: ApplicationStore) -> None:
        self.store = store
        self.listeners: list[Listener] = []
        "Called after every write that changed an application's status."
        self.stagers: list[Stager] = []
        """Writes that follow every status change (the finished index), sent in one pipelined round trip right after
        the save, together with the caller's own (``also``: the delivery schedule's release)."""

    async def accept(self, app: Application, *, lease: Lease, route_note: str | None = None,
                     also: Callable[[Pipeline], None] | None = None) -> str | None:
        """Record a new application as accepted, claim its messageId and schedule its lease (the ordered steps of
        :meth:`ApplicationStore.create`), before anyone is answered. Returns None, or (nothing of it left) the id
        of the application holding the messageId.

        With ``route_note`` (a sync application, delivered within the request) it is recorded as accepted and
        then routed in the same first write. Either way it sits in the lease schedule, so if this process dies before
        the answer is stored, the delivery loop takes it when the lease falls due. ``also`` adds commands of
        its own to the create's message-log step (see :meth:`ApplicationStore.create`).
        """
        events = [(Status.ACCEPTED, "signature verified, application recorded")]
        app.status = Status.ACCEPTED
        if route_note is not None:
            app.status = Status.ROUTED
            events.append((Status.ROUTED, route_note))
        return await self.store.create(app, events, schedule=lease.schedule, due_at=lease.due_at, also=also)

    async def route(self, app: Application, note: str, *, reference: str | None = None) -> bool:
        self._check(app, Transition.ROUTE)
        if reference is not None:
            app.provider_ref, app.polled = reference, False
        return await self._apply(app, Transition.ROUTE, note)

    async def take(self, app: Application, note: str, *, reference: str | None = None, polled: bool = False) -> bool:
        """The back-end took it; ``reference`` is its registration number, ``polled`` whether it is asked for steps."""
        self._check(app, Transition.TAKE)
        if reference is not None:
            app.provider_ref, app.polled = reference, polled
        return await self._apply(app, Transition.TAKE, note)

    async def progress(self, app: Application, note: str, *, step: str, at: str | None = None) -> bool:
        """One back-end step (its code goes into ``steps_seen`` and the history event)."""
        self._check(app, Transition.PROGRESS)
        if step not in app.steps_seen:
            app.steps_seen.append(step)
        return await self._apply(app, Transition.PROGRESS, note, step=step, at=at)

    async def retry(self, app: Application, note: str) -> bool:
        return await self._apply(app, Transition.RETRY, note)

    async def complete(self, app: Application, result: str, note: str, *,
                       also: Callable[[Pipeline], None] | None = None) -> bool:
        """The checked and signed result goes into the cabinet."""
        return await self._finish(app, Transition.COMPLETE, note, result=result, also=also)

    async def refuse(self, app: Application, result: str, note: str, *, also: Callable[[Pipeline], None] | None = None
                     ) -> bool:
        """The checked and signed reasoned refusal goes into the cabinet as the result."""
        return await self._finish(app, Transition.REFUSE, note, result=result, also=also)

    async def fail(self, app: Application, code: str, detail: str | None,
                   note: str = "the back-end did not complete the application") -> bool:
        log.warning("application %s failed: %s", app.id, code)
        return await self._finish(app, Transition.FAIL, note, code=code, detail=detail)

    async def stop(self, app: Application, code: str, detail: str | None, note: str) -> bool:
        return await self._finish(app, Transition.STOP, note, code=code, detail=detail)

    async def replay(self, app: Application, note: str, *, reference: str | None = None) -> bool:
        """A stopped application starts over: attempts and error cleared; ``reference`` replaces the provider's."""
        self._check(app, Transition.REPLAY)
        app.attempts, app.error_code, app.error_detail = 0, None, None
        if reference is not None:
            app.provider_ref, app.polled = reference, False
        return await self._apply(app, Transition.REPLAY, note, reopen=True)

    async def note(self, app: Application, note: str) -> None:
        """A history-only event (e.g. the sender confirmed it received the answer); the status stays."""
        await self.store.note(app, note)

    def _check(self, app: Application, transition: Transition) -> Status:
        target = TRANSITIONS[transition].get(app.status)
        if target is None:
            raise IllegalTransition(app.id, transition, app.status)
        return target

    async def _finish(self, app: Application, transition: Transition, note: str, *, result: str | None = None,
                      code: str | None = None, detail: str | None = None,
                      also: Callable[[Pipeline], None] | None = None) -> bool:
        self._check(app, transition)
        if result is not None:
            app.result = result
        app.error_code, app.error_detail = code, detail
        return await self._apply(app, transition, note, also=also)

    async def _apply(self, app: Application, transition: Transition, note: str, *, step: str | None = None,
                     at: str | None = None, reopen: bool = False,
                     also: Callable[[Pipeline], None] | None = None) -> bool:
        """Save; when written, the stagers' writes and ``also`` in one round trip, then the listeners. ``also`` is
        not sent for a refused write (the caller does its own then)."""
        before, app.status = app.status, self._check(app, transition)
        written = await self.store.save(app, note, step=step, at=at, reopen=reopen)
        if not written:  # the caller's copy was stale: it must not go on as if the write had happened
            app.status = before
            log.info("%s of %s refused by the store: its stored state is final", transition, app.id)
            return False
        changed = app.status is not before
        await self._follow(app, before, self.stagers if changed else [], also)
        if changed:
            await self._tell(app)
        return True

    async def _follow(self, app: Application, before: Status, stagers: list[Stager],
                      also: Callable[[Pipeline], None] | None) -> None:
        """The writes after a save, one pipeline. A failure of the stagers' alone is logged (as a listener's is:
        the reconciliation scan catches a missed index entry up); with ``also`` it reaches the caller."""
        if not stagers and also is None:
            return
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for stage in stagers:
                stage(app, before, pipe)
            if also is not None:
                also(pipe)
            try:
                await pipe.execute()
            except STORAGE_ERRORS as exc:
                if also is not None:
                    raise
                log.warning("the writes after %s's save failed: %s: %s", app.id, type(exc).__name__, exc)

    async def _tell(self, app: Application) -> None:
        for listener in self.listeners:
            try:
                await listener(app)
            except STORAGE_ERRORS as exc:  # storage trouble (a failover) is expected: one line, no traceback
                log.warning("status listener failed for %s: %s: %s", app.id, type(exc).__name__, exc)
            except Exception:  # a listener (callbacks) must never break a transition
                log.exception("status listener failed for %s", app.id)
