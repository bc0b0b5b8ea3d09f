"""Big documents: the parts of an application are stored once under keys of their own (written once, never with
each status change), older inline records still load, retention leaves nothing behind, and a document larger than
its service accepts is refused with CLIENT_DOCUMENT_TOO_LARGE before anything is stored."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lxml import etree
from redis.asyncio import Redis
from redis.crc import key_slot

from gateway.config import ConfigError, RetentionSettings, check_settings, settings_from_dict
from gateway.lifecycle.application import PARTS, Application, Status
from gateway.lifecycle.archive import FileArchive
from gateway.lifecycle.retention import RetentionSweeper
from gateway.lifecycle.store import ApplicationStore, utc_now
from gateway.lifecycle.transitions import Lease, Lifecycle
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from mocks.portal.shep_client import SyncChannelClient
from tests.helpers import message_id, rest_request, second_gateway, send_soap, wait_for

IIN = "900101300001"
REPORT = {"indication": "TOTAL_PASSED", "signer": {"iin": IIN}}


@pytest_asyncio.fixture
async def store(redis_url: str, prefix: str) -> AsyncIterator[ApplicationStore]:
    redis = Redis.from_url(redis_url)
    try:
        yield ApplicationStore(redis, prefix)
    finally:
        await redis.aclose()


def new_application(**changes: Any) -> Application:
    now = utc_now()
    app = Application(id="{" + str(uuid.uuid4()) + "}", sender_id="portal", message_id=str(uuid.uuid4()),
                      service_id="svc", channel="rest", applicant_iin=IIN, applicant_name="A",
                      status=Status.ACCEPTED, created_at=now, updated_at=now,
                      document=b"<doc>" + b"x" * 10_000 + b"</doc>", report=dict(REPORT), receipt="<receipt/>")
    return replace(app, **changes)


async def accept(store: ApplicationStore, app: Application) -> Lifecycle:
    lifecycle = Lifecycle(store)
    assert await lifecycle.accept(app, lease=Lease(f"{store.prefix}:outbox", time.time())) is None
    return lifecycle


async def test_the_parts_are_stored_once_under_keys_of_their_own(store: ApplicationStore) -> None:
    redis = store.redis
    app = new_application()
    lifecycle = await accept(store, app)
    record = json.loads(await redis.get(store._app(app.id)))
    assert not set(PARTS) & set(record), "the record holds no part"
    assert record["stored_parts"] == ["document", "receipt", "report"]
    assert len(await redis.get(store._app(app.id))) < 1000  # small, whatever the document's size
    assert await redis.get(store._part(app.id, "document")) == app.document
    assert json.loads(await redis.get(store._part(app.id, "report"))) == REPORT
    assert await redis.get(store._part(app.id, "receipt")) == b"<receipt/>"
    assert not await redis.exists(store._part(app.id, "result"))  # no result yet
    # One slot: every key of the application has its hash tag.
    assert len({key_slot(key.encode()) for key in store.own_keys(app.id)}) == 1

    # A transition writes only what changed: parts written at acceptance are never written again.
    for part in ("document", "report", "receipt"):
        await redis.set(store._part(app.id, part), f"untouched {part}")
    assert await lifecycle.route(app, "sent")
    assert await lifecycle.take(app, "registered", reference="R-1")
    assert await lifecycle.complete(app, "<result>ok</result>", "done")
    assert await redis.get(store._part(app.id, "document")) == b"untouched document"
    assert await redis.get(store._part(app.id, "receipt")) == b"untouched receipt"
    assert await redis.get(store._part(app.id, "report")) == b"untouched report"
    assert await redis.get(store._part(app.id, "result")) == b"<result>ok</result>"  # written by the final save
    record = json.loads(await redis.get(store._app(app.id)))
    assert record["status"] == "completed" and record["provider_ref"] == "R-1" and "result" not in record

    await redis.set(store._part(app.id, "report"), json.dumps(REPORT))
    stored = await store.get(app.id)
    assert stored is not None
    assert (stored.document, stored.receipt, stored.result, stored.report) == (
        b"untouched document", "untouched receipt", "<result>ok</result>", REPORT)
    bare = await store.get(app.id, parts=False)
    assert bare is not None and (bare.document, bare.result, bare.report) == (None, None, {})
    assert bare.has_result and not new_application().has_result
    assert (await store.parts(bare)).result == "<result>ok</result>"


async def test_a_stale_copy_without_its_parts_never_erases_them(store: ApplicationStore) -> None:
    app = new_application()
    lifecycle = await accept(store, app)
    bare = await store.get(app.id, parts=False)
    assert bare is not None
    assert await lifecycle.route(bare, "sent")  # a copy read without its parts, saved
    again = await store.get(app.id)
    assert again is not None and again.document == app.document and again.receipt == "<receipt/>"
    assert again.report == REPORT


async def older_inline_record(store: ApplicationStore, app: Application, history: list[str]) -> None:
    """What an older version stored: everything inline in one JSON record (``to_json`` is that very form)."""
    record = json.loads(app.to_json())
    assert set(PARTS) <= set(record) and "stored_parts" not in record
    await store.redis.set(store._app(app.id), json.dumps(record))
    await store.redis.set(store._status(app.id), str(app.status))
    await store.redis.rpush(store._history(app.id), *history)
    score = time.time()
    await store.redis.zadd(store._cabinet(IIN), {app.id: score})
    await store.redis.zadd(store._cabinet_by(IIN, app.sender_id), {app.id: score})
    await store.redis.hset(store._cabinet_msg(IIN, app.sender_id), app.message_id, app.id)
    await store.redis.set(store._msg(app.sender_id, app.message_id), app.id)


async def test_an_older_inline_record_still_loads_and_moves_to_the_new_layout_when_saved(
        store: ApplicationStore) -> None:
    app = new_application(status=Status.ROUTED, result=None)
    await older_inline_record(store, app, [json.dumps({"at": app.created_at, "status": "accepted", "note": "x"})])
    stored = await store.get(app.id)
    assert stored is not None
    assert (stored.document, stored.receipt, stored.report) == (app.document, "<receipt/>", REPORT)
    total, listed = await store.list_for(IIN, sender_id="portal")
    assert total == 1 and listed[0].id == app.id and not listed[0].has_result
    found = await store.find_for(IIN, app.message_id, sender_id="portal")
    assert found is not None and found.document == app.document

    assert await Lifecycle(store).complete(stored, "<result/>", "done")  # its first save by this version
    record = json.loads(await store.redis.get(store._app(app.id)))
    assert not set(PARTS) & set(record) and record["stored_parts"] == sorted(PARTS)
    assert await store.redis.get(store._part(app.id, "document")) == app.document
    again = await store.get(app.id)
    assert again is not None
    assert (again.document, again.receipt, again.report, again.result) == (
        app.document, "<receipt/>", REPORT, "<result/>")
    assert [event["status"] for event in await store.history(app.id)] == ["accepted", "completed"]


async def keys_mentioning(redis: Redis, needle: str) -> list[str]:
    """Every key whose name or content mentions ``needle`` (strings, lists, sets, sorted sets, hashes)."""
    found, wanted = [], needle.encode()
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            content = [await redis.get(key)]
        elif kind == "list":
            content = await redis.lrange(key, 0, -1)
        elif kind == "set":
            content = list(await redis.smembers(key))
        elif kind == "zset":
            content = await redis.zrange(key, 0, -1)
        elif kind == "hash":
            content = [item for pair in (await redis.hgetall(key)).items() for item in pair]
        else:
            content = []
        if wanted in key or any(wanted in (item or b"") for item in content):
            found.append(key.decode())
    return sorted(found)


async def test_retention_leaves_nothing_of_an_application_in_redis(store: ApplicationStore, tmp_path: Path) -> None:
    now = [time.time()]
    sweeper = RetentionSweeper(store.redis, store, FileArchive(tmp_path / "archive"),
                               RetentionSettings(finished_seconds=60), clock=lambda: now[0])
    new, old = new_application(), new_application(status=Status.COMPLETED, result="<old-result/>")
    lifecycle = await accept(store, new)
    lifecycle.stagers.append(sweeper.index.stage)
    assert await lifecycle.complete(new, "<result/>", "done")
    await store.redis.zrem(f"{store.prefix}:outbox", new.id)  # as delivery does once it is final
    await older_inline_record(store, old, [json.dumps({"at": old.created_at, "status": "completed", "note": "x"})])
    await store.redis.zadd(sweeper.index.key, {old.id: now[0]})  # the reconciliation would index it
    assert await keys_mentioning(store.redis, new.id) and await keys_mentioning(store.redis, old.id)
    now[0] += 61
    assert (await sweeper.sweep()).archived == 2
    for app in (new, old):
        assert await keys_mentioning(store.redis, app.id) == []
        assert await keys_mentioning(store.redis, app.message_id) == []
        item = await sweeper.archive.get(app.id)
        assert item is not None and item.application.document == app.document
        assert item.application.report == REPORT and item.application.receipt == "<receipt/>"
    assert (await sweeper.archive.get(new.id)).application.result == "<result/>"  # type: ignore[union-attr]
    assert (await sweeper.archive.get(old.id)).application.result == "<old-result/>"  # type: ignore[union-attr]


async def test_retention_of_a_real_application_leaves_no_key_behind(system, gw, http, tmp_path: Path) -> None:
    runner, url = await second_gateway(system, tmp_path, retention=RetentionSettings(
        finished_seconds=1, sweep_interval_seconds=0.1))
    try:
        node = await asyncio.to_thread(SyncChannelClient, f"{url}/shep/sync?wsdl")
        mid = message_id()
        answer = await send_soap(node, signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE),
                                 message_id=mid)
        assert answer.ok
        session = answer.session_id
        store = ApplicationStore(gw.redis, gw.settings.redis.key_prefix)
        assert await gw.redis.exists(store._part(session, "document"), store._part(session, "result")) == 2

        async def left() -> bool:
            return await keys_mentioning(gw.redis, session) == [] and await keys_mentioning(gw.redis, mid) == []

        await wait_for(left, seconds=20)
    finally:
        await runner.cleanup()


def with_limit(system: Any, limit: int) -> dict[str, Any]:
    services = dict(system.settings.services)
    services[READER_TICKET_SERVICE] = replace(services[READER_TICKET_SERVICE], max_document_bytes=limit)
    return {"services": services}


async def test_a_document_larger_than_its_service_accepts_is_refused_before_anything_is_stored(
        system, gw, http, tmp_path: Path) -> None:
    runner, url = await second_gateway(system, tmp_path, **with_limit(system, 200))  # the document is ~500 bytes
    calls = gw.library_calls
    try:
        document = signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE)
        request = rest_request(document)
        async with http.post(f"{url}/api/v1/requests", json=request, headers={"Accept-Language": "ru"}) as response:
            body = await response.json(content_type=None)
        assert (response.status, body["code"]) == (413, "CLIENT_DOCUMENT_TOO_LARGE")
        assert "accepts at most 200" in body["detail"]
        node = await asyncio.to_thread(SyncChannelClient, f"{url}/shep/sync?wsdl")
        mid = message_id()
        refused = await send_soap(node, document, message_id=mid)
        assert (refused.ok, refused.status_code) == (False, "CLIENT_DOCUMENT_TOO_LARGE")
        assert refused.error_data["messages"]["kk"].startswith("Өтінім құжаты")  # in the three languages
        # Nothing of either request is in Redis: no record, claim, cabinet entry or schedule.
        for needle in (request["requestInfo"]["messageId"], mid, body["sessionId"], refused.session_id,
                       gw.pki.person("aigerim").iin):
            assert await keys_mentioning(gw.redis, needle) == [], needle
        store = ApplicationStore(gw.redis, gw.settings.redis.key_prefix)
        assert await gw.redis.keys(store._app("*") + "*") == []
        assert gw.library_calls == calls  # the back-end never saw it
    finally:
        await runner.cleanup()


async def test_a_document_within_its_service_limit_goes_through(system, gw, http, tmp_path: Path) -> None:
    runner, url = await second_gateway(system, tmp_path, **with_limit(system, 100_000))
    try:
        async with http.post(f"{url}/api/v1/requests", json=rest_request(
                signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE))) as response:
            assert response.status == 200, await response.text()
    finally:
        await runner.cleanup()


def test_the_limit_is_configured_per_service_and_must_be_positive() -> None:
    table = {"services": {"s": {"endpoint": "http://127.0.0.1:1/x", "max_document_bytes": 5_000_000}}}
    assert settings_from_dict(table).services["s"].max_document_bytes == 5_000_000
    assert settings_from_dict({"services": {"s": {"endpoint": "http://x/"}}}).services["s"].max_document_bytes is None
    with pytest.raises(ConfigError, match=r"services\.s\.max_document_bytes"):
        check_settings(settings_from_dict({"services": {"s": {"endpoint": "http://x/", "max_document_bytes": 0}}}))


def test_the_big_document_benchmark_builds_a_signed_padded_document(pki: Any) -> None:
    from benchmarks.bench_bigdocs import padded_application
    from signing.policy import VerificationPolicy
    from signing.trust import TrustStore
    from signing.verifier import DocumentVerifier

    raw = padded_application(pki.person("aigerim"), 300_000)
    assert len(raw) > 300_000
    verifier = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(pki.trust_anchors, pki.intermediates))
    signed = verifier.verify(etree.fromstring(raw)).signed  # the padding is inside what the signature covers
    assert sum(len(p.text) for p in signed if etree.QName(p).localname == "padding") == 300_000
    commented = padded_application(pki.person("aigerim"), 300_000, "comment")
    assert len(commented) > 300_000
    kept = verifier.verify(etree.fromstring(commented))  # the comments are outside what the signature covers
    assert kept.canonical is not None and len(kept.canonical) < 10_000


def test_the_allocator_is_tuned_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from gateway.shell.malloc import tune_malloc

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    assert tune_malloc() is True  # glibc's mallopt accepted the threshold
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert tune_malloc() is False  # glibc's own setting wins


def test_the_request_digest_is_the_same_streamed_or_whole() -> None:
    import base64
    import hashlib

    from gateway.lifecycle.receipts import request_digest

    def whole(element: etree._Element) -> str:
        canonical = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
        return base64.b64encode(hashlib.sha256(canonical).digest()).decode()

    big = etree.fromstring(b"<r xmlns='urn:a' xmlns:u='urn:unused'><p>" + b"x" * 200_000 + b"</p><!-- c --></r>")
    with_siblings = etree.fromstring(b"<?pi x?><!-- c --><r xmlns='urn:a'><b/></r>")
    inner = etree.fromstring(b"<e xmlns='urn:e' xmlns:k='urn:k'><r k:x='1'><b>t</b></r></e>")[0]
    for element in (big, with_siblings, inner):
        assert request_digest(element) == whole(element)


def test_the_document_is_moved_out_of_the_envelope_so_it_is_held_once() -> None:
    from gateway.intake.soap_io import document_in
    from signing.xmlsafe import XmlLimits

    limits = XmlLimits(1_000_000, 50, 1000)
    envelope = etree.fromstring(b"<e xmlns:s='urn:soap'><s:data><doc xmlns='urn:d'><p>signed</p></doc></s:data></e>")
    data = envelope[0]
    document = document_in(data, limits)
    assert document is not None and etree.QName(document).text == "{urn:d}doc" and document.findtext("{urn:d}p")
    assert len(data) == 0 and document.getparent() is None  # the envelope no longer holds a copy
    assert etree.tostring(document) == b'<doc xmlns="urn:d"><p>signed</p></doc>'  # no envelope namespace carried

    escaped = etree.fromstring(b"<e><data>&lt;doc xmlns='urn:d'&gt;text&lt;/doc&gt;</data></e>")[0]
    parsed = document_in(escaped, limits)
    assert parsed is not None and etree.QName(parsed).text == "{urn:d}doc"
    assert escaped.text is None  # its text form is dropped too
