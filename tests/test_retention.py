"""Bounded memory: finished applications leave Redis for the archive, and stay listed, served and idempotent."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lxml import etree
from redis.asyncio import Redis

from gateway.cabinet import archived
from gateway.config import ConfigError, RetentionSettings, check_settings, settings_from_dict
from gateway.delivery.schedule import LeaseSchedule
from gateway.errors import GatewayError
from gateway.lifecycle.application import Application, Status
from gateway.lifecycle.archive import ArchivedApplication, FileArchive
from gateway.lifecycle.retention import RetentionSweeper
from gateway.lifecycle.store import ApplicationStore, utc_now
from gateway.lifecycle.transitions import Lease, Lifecycle
from gateway.shell.cli import main
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from mocks.portal.shep_client import SyncChannelClient
from tests.helpers import (
    PULL,
    PULL_PASSWORD,
    SOAP_ENV,
    cabinet_item,
    message_id,
    second_gateway,
    send_soap,
    wait_for,
)

IIN = "900101300001"


@dataclass
class Parts:
    """The retention's real parts over a key prefix of this test's own, with a clock the test moves."""

    redis: Redis
    store: ApplicationStore
    lifecycle: Lifecycle
    archive: FileArchive
    sweeper: RetentionSweeper
    now: list[float]

    @property
    def outbox(self) -> str:
        return f"{self.store.prefix}:outbox"

    def app_keys(self, app: Application) -> list[str]:
        store = self.store
        return [store._app(app.id), store._status(app.id), store._history(app.id),
                store._msg(app.sender_id, app.message_id)]

    async def in_redis(self, app: Application) -> int:
        store = self.store
        pointers = [await self.redis.zscore(store._cabinet(IIN), app.id),
                    await self.redis.zscore(store._cabinet_by(IIN, app.sender_id), app.id),
                    await self.redis.hget(store._cabinet_msg(IIN, app.sender_id), app.message_id)]
        return int(await self.redis.exists(*self.app_keys(app))) + sum(p is not None for p in pointers)


@pytest_asyncio.fixture
async def parts(redis_url: str, tmp_path: Path, prefix: str) -> AsyncIterator[Parts]:
    redis = Redis.from_url(redis_url)
    store = ApplicationStore(redis, prefix)
    lifecycle = Lifecycle(store)
    archive = FileArchive(tmp_path / "archive")
    now = [time.time()]
    sweeper = RetentionSweeper(redis, store, archive, RetentionSettings(finished_seconds=60), clock=lambda: now[0])
    lifecycle.stagers.append(sweeper.index.stage)
    try:
        yield Parts(redis, store, lifecycle, archive, sweeper, now)
    finally:
        await redis.aclose()


async def accepted(parts: Parts, created_at: str | None = None) -> Application:
    now = created_at or utc_now()
    app = Application(id="{" + str(uuid.uuid4()) + "}", sender_id="portal", message_id=str(uuid.uuid4()),
                      service_id="svc", channel="rest", applicant_iin=IIN, applicant_name="A",
                      status=Status.ACCEPTED, created_at=now, updated_at=now, document=b"<d/>", report={},
                      receipt="<receipt/>")
    assert await parts.lifecycle.accept(app, lease=Lease(parts.outbox, time.time())) is None
    return app


async def completed(parts: Parts, created_at: str | None = None) -> Application:
    app = await accepted(parts, created_at)
    assert await parts.lifecycle.complete(app, "<result/>", "done")
    return app


async def test_only_applications_final_longer_than_the_retention_leave(parts: Parts) -> None:
    done, still_open = await completed(parts), await accepted(parts)
    assert (await parts.sweeper.sweep()).archived == 0  # final, but not for 60 s yet
    assert await parts.in_redis(done) == 7
    parts.now[0] += 61
    report = await parts.sweeper.sweep()
    assert (report.archived, report.kept, report.leased) == (1, 0, True)
    assert await parts.in_redis(done) == 0
    assert await parts.in_redis(still_open) == 7  # open applications never expire
    assert await parts.redis.zscore(parts.outbox, still_open.id) is not None  # nor does the schedule
    item = await parts.archive.get(done.id)
    assert item is not None and item.application.result == "<result/>" and item.application.receipt == "<receipt/>"
    assert [event["status"] for event in item.history] == ["accepted", "completed"]
    assert (await parts.archive.find("portal", done.message_id)) == item
    assert not await parts.redis.exists(parts.sweeper.lease_key)  # released after the round


async def test_a_final_save_indexes_it_and_releases_the_lease_in_the_writes_after_it(parts: Parts) -> None:
    """The finished index (a stager) and the caller's ``also`` (the lease's release) go together after the save;
    a change that is not final writes nothing there."""
    schedule = LeaseSchedule(parts.redis, parts.outbox)
    app = await accepted(parts)
    assert await parts.lifecycle.route(app, "routed")
    assert await parts.redis.zscore(parts.sweeper.index.key, app.id) is None, "not final: not indexed"
    before = await parts.redis.info("commandstats")
    assert await parts.lifecycle.complete(app, "<result/>", "done", also=schedule.done_on(app.id))
    after = await parts.redis.info("commandstats")
    assert await parts.redis.zscore(parts.sweeper.index.key, app.id) is not None
    assert await parts.redis.zscore(parts.outbox, app.id) is None, "the lease went with the index entry"
    calls = {name: after[name]["calls"] - before.get(name, {"calls": 0})["calls"] for name in ("cmdstat_zadd",
                                                                                              "cmdstat_zrem")}
    assert calls == {"cmdstat_zadd": 1, "cmdstat_zrem": 1}


async def test_the_cabinet_merges_live_and_archived_newest_first(parts: Parts) -> None:
    old = await completed(parts, "2026-01-01T10:00:00.000+00:00")
    newest = await accepted(parts, "2026-03-01T10:00:00.000+00:00")
    middle = await completed(parts, "2026-02-01T10:00:00.000+00:00")
    parts.now[0] += 61
    assert (await parts.sweeper.sweep()).archived == 2
    total, page = await archived.page(parts.store, parts.archive, IIN, sender_id="portal", offset=0, limit=2)
    assert total == 3
    assert [(f.application.id, f.archived) for f in page] == [(newest.id, False), (middle.id, True)]
    total, page = await archived.page(parts.store, parts.archive, IIN, sender_id="portal", offset=2, limit=2)
    assert [(f.application.id, f.archived) for f in page] == [(old.id, True)]
    assert (await archived.page(parts.store, parts.archive, IIN, sender_id="other", offset=0, limit=5)) == (0, [])
    found = await archived.find(parts.store, parts.archive, IIN, old.message_id, sender_id="portal", scope="portal")
    assert found is not None and found.archived and found.history
    assert await archived.find(parts.store, parts.archive, "980101300005", old.id, sender_id="portal",
                               scope=None) is None  # never under another owner


async def test_a_crash_between_archive_and_delete_is_finished_by_the_next_sweep(parts: Parts) -> None:
    first, second = await completed(parts), await completed(parts)
    parts.now[0] += 61
    # Crash 1: archived, nothing deleted yet. Crash 2: record gone, pointers of other slots still there.
    for app, steps in ((first, 1), (second, 2)):
        raw = await parts.redis.get(parts.store._app(app.id))
        history = await parts.store.history(app.id)
        stored = await parts.store.get(app.id)
        assert stored is not None
        await parts.sweeper.archive_copy(archived_item(stored, history))
        if steps == 2:
            assert await parts.sweeper.drop_record(stored, raw, len(history))
    assert await parts.in_redis(first) == 7 and await parts.in_redis(second) == 4
    assert (await archived.find(parts.store, parts.archive, IIN, second.message_id, sender_id="portal",
                                scope="portal")) is not None  # readable meanwhile, from the archive
    assert (await parts.sweeper.sweep()).archived == 2
    assert await parts.in_redis(first) == 0 and await parts.in_redis(second) == 0
    assert await parts.redis.zcard(parts.sweeper.index.key) == 0
    assert (await parts.sweeper.sweep()).archived == 0  # a rerun finds nothing more to do


def archived_item(app: Application, history: list[dict[str, Any]]) -> ArchivedApplication:
    return ArchivedApplication(app, history, time.time(), utc_now())


async def test_a_replayed_application_is_kept_and_a_changed_one_is_not_deleted(parts: Parts) -> None:
    app = await accepted(parts)
    assert await parts.lifecycle.stop(app, "DELIVERY_GIVEN_UP", None, "stopped")
    raw_before = await parts.redis.get(parts.store._app(app.id))
    assert await parts.lifecycle.replay(app, "replayed by an operator")
    assert await parts.redis.zscore(parts.sweeper.index.key, app.id) is None  # open again: out of the index
    parts.now[0] += 61
    assert (await parts.sweeper.sweep()).archived == 0
    stored = await parts.store.get(app.id)
    assert stored is not None  # a writer after the archive copy wins: the guarded delete refuses
    assert not await parts.sweeper.drop_record(stored, raw_before, 2)
    assert await parts.in_redis(app) == 7


async def test_a_final_application_missed_by_the_index_is_found_by_the_reconciliation(parts: Parts) -> None:
    app = await accepted(parts)
    app.status, app.result = Status.COMPLETED, "<result/>"
    assert await parts.store.save(app, "done")  # the final save without its index step: a crash in between
    assert await parts.redis.zscore(parts.sweeper.index.key, app.id) is None
    assert (await parts.sweeper.sweep()).reconciled == 1  # the first round of a node reconciles
    assert await parts.redis.zscore(parts.sweeper.index.key, app.id) is not None
    assert (await parts.sweeper.sweep()).reconciled == 0  # not again before reconcile_interval_seconds
    parts.now[0] += 61
    assert (await parts.sweeper.sweep()).archived == 1
    assert await parts.in_redis(app) == 0
    await parts.lifecycle.note(app, "the sender confirmed it received the answer")  # late: recreates the history
    assert await parts.redis.exists(parts.store._history(app.id))
    parts.now[0] += 86_401  # the next daily scan deletes it (its application is in the archive)
    await parts.sweeper.sweep()
    assert not await parts.redis.exists(parts.store._history(app.id))


async def test_another_sweeper_holding_the_lease_sweeps_alone(parts: Parts) -> None:
    await completed(parts)
    parts.now[0] += 61
    await parts.redis.set(parts.sweeper.lease_key, "another node", px=5000)
    assert not (await parts.sweeper.sweep()).leased
    await parts.redis.delete(parts.sweeper.lease_key)
    assert (await parts.sweeper.sweep()).archived == 1


async def test_an_archived_application_stays_in_the_cabinet_and_a_repeat_gets_its_answer(system, gw, http,
                                                                                         tmp_path: Path) -> None:
    # A node of its own archive (tmp_path/archive), so the session's other tests never see what it archived.
    runner, url = await second_gateway(system, tmp_path, retention=RetentionSettings(
        finished_seconds=1, sweep_interval_seconds=0.1))
    try:
        node = await asyncio.to_thread(SyncChannelClient, f"{url}/shep/sync?wsdl")
        aigerim = gw.pki.person("aigerim")
        mid, document = message_id(), signed_application(aigerim, READER_TICKET_SERVICE)
        first = await send_soap(node, document, message_id=mid)
        assert first.ok
        item = await cabinet_item(gw, http, aigerim.iin, mid)  # live: any node reads it
        session = item["sessionId"]
        async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications/{mid}/result",
                            headers=gw.auth()) as response:
            result = await response.text()
        store = ApplicationStore(gw.redis, gw.settings.redis.key_prefix)
        keys = [store._app(session), store._status(session), store._history(session), store._msg("portal", mid)]

        async def gone() -> bool:
            cabinet_entry = await gw.redis.zscore(store._cabinet(aigerim.iin), session)
            return not await gw.redis.exists(*keys) and cabinet_entry is None

        await wait_for(gone, seconds=20)
        async with http.get(f"{url}/api/v1/cabinet/{aigerim.iin}/applications", headers=gw.auth()) as response:
            listed = (await response.json())["applications"]
        assert [(a["sessionId"], a["archived"], a["status"]) for a in listed] == [(session, True, "completed")]
        async with http.get(f"{url}/api/v1/cabinet/{aigerim.iin}/applications/{mid}", headers=gw.auth()) as response:
            again = await response.json()
        assert again["archived"] is True and [e["status"] for e in again["history"]] == [
            "accepted", "routed", "completed"]
        for kind, expected in (("result", result), ("receipt", item["receipt"])):
            async with http.get(f"{url}/api/v1/cabinet/{aigerim.iin}/applications/{session}/{kind}",
                                headers=gw.auth()) as response:
                assert response.status == 200 and await response.text() == expected
        calls = gw.library_calls
        repeat = await send_soap(node, document, message_id=mid)  # the claim left Redis: the archive answers
        assert repeat.ok and repeat.session_id == session
        assert etree.tostring(repeat.document) == etree.tostring(first.document)
        assert gw.library_calls == calls  # the back-end is not asked again
        assert not await gw.redis.exists(store._app(session))  # and nothing was recorded anew
    finally:
        await runner.cleanup()


ASYNC = "http://bip.bee.kz/AsyncChannel/v10/Types"
SENDER = f"<sender><senderId>{PULL}</senderId><password>{PULL_PASSWORD}</password></sender>"  # no callback


async def async_call(http: Any, url: str, operation: str, body: str) -> etree._Element:
    request = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:a="{ASYNC}"><soap:Body><a:{operation}><request>'
               f"{body}</request></a:{operation}></soap:Body></soap:Envelope>")
    async with http.post(f"{url}/shep/async", data=request.encode(), headers={"Content-Type": "text/xml"}) as answer:
        root = etree.fromstring(await answer.read())
    assert root.find(f".//{{{SOAP_ENV}}}Fault") is None, etree.tostring(root).decode()[-1200:]
    return root.find(f"{{{SOAP_ENV}}}Body")[0]  # type: ignore[index]


async def test_an_archived_async_application_keeps_its_status_and_its_acknowledgement(system, gw, http,
                                                                                      tmp_path: Path) -> None:
    runner, url = await second_gateway(system, tmp_path, retention=RetentionSettings(
        finished_seconds=1, sweep_interval_seconds=0.1))
    try:
        mid, saule = message_id(), gw.pki.person("saule")
        document = etree.tostring(signed_application(saule, READER_TICKET_SERVICE), encoding="unicode")
        send = (f"<messageInfo><messageId>{mid}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId>"
                f"<messageType>REQUEST</messageType><messageDate>{datetime.now(UTC).isoformat()}</messageDate>"
                f"{SENDER}</messageInfo><messageData><data>{document}</data></messageData>")
        session = (await async_call(http, url, "sendMessage", send)).findtext("response/sessionId")
        store = ApplicationStore(gw.redis, gw.settings.redis.key_prefix)

        async def archived_now() -> bool:
            return not await gw.redis.exists(store._app(session), store._msg(PULL, mid))

        await wait_for(archived_now, seconds=20)
        status = await async_call(http, url, "getMessageStatus", f"<messageId>{mid}</messageId>"
                                  f"<requestDate>{datetime.now(UTC).isoformat()}</requestDate>{SENDER}")
        assert status.findtext("response/sessionId") == session
        assert status.findtext("response/status/statusCode") == "SCSS001"
        calls = gw.library_calls
        again = await async_call(http, url, "sendMessage", send)  # the same acknowledgement, nothing new
        assert again.findtext("response/sessionId") == session and gw.library_calls == calls
    finally:
        await runner.cleanup()


def test_redis_memory_prints_each_kind_and_what_retention_frees(redis_url: str, prefix: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    async def fill() -> None:
        redis = Redis.from_url(redis_url)
        store = ApplicationStore(redis, prefix)
        parts = Parts(redis, store, Lifecycle(store), FileArchive(Path("/nonexistent")),
                      RetentionSweeper(redis, store, FileArchive(Path("/nonexistent")), RetentionSettings()), [0.0])
        parts.lifecycle.stagers.append(parts.sweeper.index.stage)
        done = [await completed(parts) for _ in range(3)]
        await accepted(parts)
        await redis.zadd(parts.sweeper.index.key, {done[0].id: 1.0})  # final since 1970: due
        await redis.aclose()

    asyncio.run(fill())
    assert main(["redis-memory", "--redis-url", redis_url, "--key-prefix", prefix, "--seconds", "5"]) == 0
    out = capsys.readouterr().out
    for kind, count in ((f"{prefix}:app:{{id}}", 4), (f"{prefix}:app:{{id}}:history", 4),
                        (f"{prefix}:msg:<sender>:<messageId>", 4), (f"{prefix}:cabinet:<owner>:by:<sender>", 1)):
        line = next((line for line in out.splitlines() if line.startswith(kind + " ")), out)
        assert line.split()[1] == str(count), line
    assert "3 finished applications indexed, 1 due now, freeing about 1." in out  # about 1.2 KiB
    assert "partial" not in out


def test_redis_memory_without_a_redis_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["redis-memory", "--state-dir", str(tmp_path)]) == 2
    assert "no Redis to ask" in capsys.readouterr().err


@pytest.mark.parametrize(("table", "message"), [({"finished_seconds": 0}, "retention.finished_seconds"),
                                                ({"batch": 0}, "retention.batch"),
                                                ({"sweep_interval_seconds": float("inf")},
                                                 "retention.sweep_interval_seconds")])
def test_bad_retention_settings_are_refused(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_settings(settings_from_dict({"retention": table}))


async def test_an_unreadable_archive_is_a_retryable_refusal(parts: Parts, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")  # every path under it fails with NotADirectoryError, as a gone network mount fails
    archive = FileArchive(blocked)
    app = await completed(parts)
    for read in (archived.page(parts.store, archive, IIN, sender_id="portal", offset=0, limit=5),
                 archived.find(parts.store, archive, IIN, "unknown", sender_id="portal", scope="portal")):
        with pytest.raises(GatewayError) as refused:
            await read
        assert refused.value.code == "GATEWAY_STORAGE_UNAVAILABLE"
    found = await archived.find(parts.store, archive, IIN, app.message_id, sender_id="portal", scope="portal")
    assert found is not None and not found.archived  # a live application needs no archive
