"""The application lifecycle (gateway.lifecycle.transitions) against the real embedded Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from gateway.lifecycle.application import Application, Status
from gateway.lifecycle.store import ApplicationStore, utc_now
from gateway.lifecycle.transitions import TRANSITIONS, IllegalTransition, Lease, Lifecycle, Transition


@pytest_asyncio.fixture
async def lifecycle(redis_url: str) -> AsyncIterator[Lifecycle]:
    """A lifecycle over its own key prefix, so it shares the server with the system tests safely."""
    redis = Redis.from_url(redis_url)
    try:
        yield Lifecycle(ApplicationStore(redis, f"t{uuid.uuid4().hex[:8]}"))
    finally:
        await redis.aclose()


def application(mode: str = "async") -> Application:
    now = utc_now()
    return Application(id="{" + str(uuid.uuid4()) + "}", sender_id="portal", message_id=str(uuid.uuid4()),
                       service_id="svc", channel="rest", applicant_iin="900101300001", applicant_name="A",
                       status=Status.ACCEPTED, created_at=now, updated_at=now, document=b"<d/>", report={}, mode=mode)


def outbox(lifecycle: Lifecycle) -> str:
    return f"{lifecycle.store.prefix}:outbox"


async def accepted(lifecycle: Lifecycle, mode: str = "async") -> Application:
    app = application(mode)
    await lifecycle.accept(app, lease=Lease(outbox(lifecycle), time.time()))
    return app


async def statuses(lifecycle: Lifecycle, app: Application) -> list[str]:
    return [event["status"] for event in await lifecycle.store.history(app.id)]


async def test_a_queued_application_goes_through_every_open_state(lifecycle: Lifecycle) -> None:
    app = await accepted(lifecycle)
    assert await lifecycle.route(app, "queued for the back-office desk", reference="1-0")
    assert await lifecycle.take(app, "taken by the desk")
    assert await lifecycle.progress(app, "documents checked", step="documents-checked")
    assert await lifecycle.complete(app, "<result/>", "result signed by the gateway")
    stored = await lifecycle.store.get(app.id)
    assert stored is not None and stored.status is Status.COMPLETED and stored.result == "<result/>"
    assert stored.provider_ref == "1-0" and stored.steps_seen == ["documents-checked"]
    assert await statuses(lifecycle, app) == ["accepted", "routed", "in_progress", "in_progress", "completed"]
    steps = [event.get("step") for event in await lifecycle.store.history(app.id)]
    assert steps == [None, None, None, "documents-checked", None]


async def test_accept_writes_the_lease_in_the_same_transaction(lifecycle: Lifecycle) -> None:
    """A sync application is recorded accepted then routed, with a lease due later (the recovery point)."""
    app = application("sync")
    due = time.time() + 120
    await lifecycle.accept(app, lease=Lease(outbox(lifecycle), due), route_note="sent to the back-end over rest")
    assert await statuses(lifecycle, app) == ["accepted", "routed"]
    assert (await lifecycle.store.get(app.id)).status is Status.ROUTED  # type: ignore[union-attr]
    assert await lifecycle.store.redis.zscore(outbox(lifecycle), app.id) == pytest.approx(due)


async def test_accept_claims_the_message_id_in_the_same_transaction(lifecycle: Lifecycle) -> None:
    """The claim and the record are one write: a second application under the same messageId gets the first's id
    back and nothing of it is written, not even when both are accepted at once."""
    first = application()
    rivals = [replace(first, id="{" + str(uuid.uuid4()) + "}") for _ in range(4)]
    lease = Lease(outbox(lifecycle), time.time())
    answers = await asyncio.gather(*(lifecycle.accept(app, lease=lease) for app in [first, *rivals]))
    winners = [app for app, earlier in zip([first, *rivals], answers, strict=True) if earlier is None]
    assert len(winners) == 1, answers
    assert set(answers) == {None, winners[0].id}
    assert await lifecycle.store.holder("portal", first.message_id) == winners[0].id
    for app in [first, *rivals]:
        recorded = await lifecycle.store.get(app.id)
        assert (recorded is not None) == (app is winners[0])
    assert await lifecycle.store.redis.zcard(outbox(lifecycle)) == 1, "one lease, the winner's"


async def test_a_claim_released_between_set_and_get_is_retried_with_every_part(
        lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch) -> None:
    """The messageId is held when the create claims it and let go before the holder is read: the create claims
    afresh, and its second write carries the parts the first wrote and undid (the document here)."""
    store, app = lifecycle.store, application()
    await store.redis.set(store._msg(app.sender_id, app.message_id), "{an-orphan}")
    holder = store.holder

    async def released_first(sender_id: str, message_id: str) -> str | None:
        monkeypatch.setattr(store, "holder", holder)  # once: the orphan's holder lets go now
        await store.redis.delete(store._msg(sender_id, message_id))
        return await holder(sender_id, message_id)

    monkeypatch.setattr(store, "holder", released_first)
    assert await lifecycle.accept(app, lease=Lease(outbox(lifecycle), time.time())) is None
    stored = await store.get(app.id)
    assert stored is not None and stored.document == b"<d/>" and stored.report == {}
    assert await store.holder(app.sender_id, app.message_id) == app.id


FINAL = [Status.COMPLETED, Status.REFUSED, Status.FAILED, Status.STOPPED]


async def finished(lifecycle: Lifecycle, final: Status) -> Application:
    app = await accepted(lifecycle)
    if final is Status.COMPLETED:
        await lifecycle.complete(app, "<r/>", "done")
    elif final is Status.REFUSED:
        await lifecycle.refuse(app, "<r/>", "refused")
    elif final is Status.FAILED:
        await lifecycle.fail(app, "PROVIDER_BAD_RESPONSE", "schema")
    else:
        await lifecycle.stop(app, "PROVIDER_UNAVAILABLE", "down", "stopped")
    assert app.status is final
    return app


async def attempt(lifecycle: Lifecycle, app: Application, transition: Transition) -> bool:
    calls = {
        Transition.ROUTE: lambda: lifecycle.route(app, "n"), Transition.TAKE: lambda: lifecycle.take(app, "n"),
        Transition.PROGRESS: lambda: lifecycle.progress(app, "n", step="s"),
        Transition.RETRY: lambda: lifecycle.retry(app, "n"),
        Transition.COMPLETE: lambda: lifecycle.complete(app, "<x/>", "n"),
        Transition.REFUSE: lambda: lifecycle.refuse(app, "<x/>", "n"),
        Transition.FAIL: lambda: lifecycle.fail(app, "GATEWAY_INTERNAL", None),
        Transition.STOP: lambda: lifecycle.stop(app, "GATEWAY_INTERNAL", None, "n"),
        Transition.REPLAY: lambda: lifecycle.replay(app, "n"),
    }
    return await calls[transition]()


@pytest.mark.parametrize("final", FINAL)
@pytest.mark.parametrize("transition", list(Transition))
async def test_final_states_refuse_every_transition_but_replay_from_stopped(
        lifecycle: Lifecycle, final: Status, transition: Transition) -> None:
    app = await finished(lifecycle, final)
    before = await lifecycle.store.history(app.id)
    if final is Status.STOPPED and transition is Transition.REPLAY:
        assert await attempt(lifecycle, app, transition)
        assert app.status is Status.ROUTED and app.attempts == 0 and app.error_code is None
        return
    with pytest.raises(IllegalTransition) as caught:
        await attempt(lifecycle, app, transition)
    assert caught.value.status is final and caught.value.transition is transition
    assert app.status is final, "the copy is unchanged"
    assert await lifecycle.store.history(app.id) == before, "nothing was written"
    assert (await lifecycle.store.get(app.id)).status is final  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [Status.ACCEPTED, Status.ROUTED, Status.IN_PROGRESS])
async def test_replay_is_refused_for_an_open_application(lifecycle: Lifecycle, status: Status) -> None:
    app = await accepted(lifecycle)
    if status is not Status.ACCEPTED:
        await (lifecycle.route(app, "n") if status is Status.ROUTED else lifecycle.take(app, "n"))
    with pytest.raises(IllegalTransition):
        await lifecycle.replay(app, "replayed by an operator")


async def test_route_cannot_undo_in_progress_but_retry_keeps_it(lifecycle: Lifecycle) -> None:
    app = await accepted(lifecycle)
    await lifecycle.take(app, "registered by the provider as R-1", reference="R-1", polled=True)
    with pytest.raises(IllegalTransition):
        await lifecycle.route(app, "sent again")
    assert await lifecycle.retry(app, "back-end unavailable")
    assert app.status is Status.IN_PROGRESS and app.polled and app.provider_ref == "R-1"


def test_the_table_has_no_way_out_of_a_final_state_but_replay() -> None:
    for transition, moves in TRANSITIONS.items():
        for source in moves:
            assert not source.final or (transition is Transition.REPLAY and source is Status.STOPPED)
    assert TRANSITIONS[Transition.REPLAY] == {Status.STOPPED: Status.ROUTED}


async def test_a_stale_copy_is_refused_by_the_store_and_tells_no_listener(lifecycle: Lifecycle) -> None:
    app = await accepted(lifecycle)
    stale = await lifecycle.store.get(app.id)
    assert stale is not None
    told: list[Status] = []

    async def listener(changed: Application) -> None:
        told.append(changed.status)

    lifecycle.listeners.append(listener)
    await lifecycle.complete(app, "<r/>", "done")
    assert not await lifecycle.progress(stale, "a late step report", step="late")
    assert (await lifecycle.store.get(app.id)).status is Status.COMPLETED  # type: ignore[union-attr]
    assert told == [Status.COMPLETED]


async def test_listeners_hear_status_changes_only_and_cannot_break_a_transition(lifecycle: Lifecycle) -> None:
    app = await accepted(lifecycle)
    told: list[Status] = []

    async def broken(_: Application) -> None:
        raise RuntimeError("listener bug")

    async def listener(changed: Application) -> None:
        told.append(changed.status)

    lifecycle.listeners.extend([broken, listener])
    await lifecycle.take(app, "registered", reference="R-1", polled=True)
    await lifecycle.progress(app, "step one", step="one")  # in_progress again: no change to tell
    await lifecycle.retry(app, "poll failed")
    await lifecycle.fail(app, "PROVIDER_REJECTED", "no")
    assert told == [Status.IN_PROGRESS, Status.FAILED]


async def test_a_note_appends_history_and_changes_nothing_else(lifecycle: Lifecycle) -> None:
    app = await accepted(lifecycle)
    await lifecycle.complete(app, "<r/>", "done")
    stale = application()
    stale.id, stale.status = app.id, Status.ROUTED  # even a stale copy cannot undo anything through a note
    await lifecycle.note(stale, "the sender confirmed it received the answer")
    stored = await lifecycle.store.get(app.id)
    assert stored is not None and stored.status is Status.COMPLETED and stored.result == "<r/>"
    history = await lifecycle.store.history(app.id)
    assert history[-1]["note"] == "the sender confirmed it received the answer" and len(history) == 3


async def test_a_note_is_announced_to_open_cabinet_pages(lifecycle: Lifecycle) -> None:
    app = await accepted(lifecycle)
    pubsub = lifecycle.store.redis.pubsub()
    await pubsub.subscribe(lifecycle.store.events_channel(app.applicant_iin))
    try:
        await lifecycle.note(app, "answer delivered to the sender's callback endpoint")
        message = None
        for _ in range(3):  # the subscription confirmation comes first (skipped, returns None)
            message = message or await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    finally:
        await pubsub.aclose()
    assert message is not None and f'"sessionId": "{app.id}"' in message["data"].decode()
