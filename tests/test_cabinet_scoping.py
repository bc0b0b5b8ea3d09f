"""Each cabinet reader sees only its own (issue 11, items 3 and 4): a portal reads the applications it submitted,
wider reading is an explicit grant, every read is registered for operators, and a messageId repeated with another
document is refused.

Another portal's application answers ``CLIENT_NOT_FOUND`` (404), not ``CLIENT_ACCESS_DENIED`` (403): a 403 would
tell portal-b that portal-a holds an application of this person under that messageId or sessionId.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree

from gateway.cabinet.access_log import AccessLog
from gateway.config import ConfigError, SenderSettings, Settings, check_settings
from gateway.lifecycle.store import ApplicationStore
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from tests.helpers import (
    NATIONAL,
    NATIONAL_PASSWORD,
    OPERATOR,
    OPERATOR_PASSWORD,
    PORTAL,
    PORTAL_B,
    PORTAL_B_PASSWORD,
    PORTAL_PASSWORD,
    GatewayUnderTest,
    assert_problem,
    message_id,
    send_soap,
)

PASSWORDS = {PORTAL: PORTAL_PASSWORD, PORTAL_B: PORTAL_B_PASSWORD, NATIONAL: NATIONAL_PASSWORD,
             OPERATOR: OPERATOR_PASSWORD}


def auth(gw: GatewayUnderTest, sender: str) -> dict[str, str]:
    return gw.auth(sender, PASSWORDS[sender])


async def submit(gw: GatewayUnderTest, shep: Any, handle: str, sender: str = PORTAL, mid: str | None = None) -> Any:
    result = await send_soap(shep, signed_application(gw.pki.person(handle), READER_TICKET_SERVICE),
                             sender_id=sender, password=PASSWORDS[sender], message_id=mid or message_id())
    return result


async def listing(gw: GatewayUnderTest, http: Any, owner: str, sender: str) -> dict[str, Any]:
    async with http.get(f"{gw.url}/api/v1/cabinet/{owner}/applications", headers=auth(gw, sender)) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def test_a_second_portal_can_neither_list_nor_read_the_first_portals_applications(gw, shep, http) -> None:
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    first = await submit(gw, shep, "aigerim", PORTAL, mid)
    assert first.ok
    assert (await listing(gw, http, aigerim.iin, PORTAL))["total"] == 1
    seen = await listing(gw, http, aigerim.iin, PORTAL_B)
    assert (seen["total"], seen["applications"]) == (0, [])
    base = f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications"
    for path in (mid, f"{mid}/result", f"{mid}/receipt", first.session_id, f"{first.session_id}/result"):
        async with http.get(f"{base}/{path}", headers=auth(gw, PORTAL_B)) as response:
            await assert_problem(response, 404, "CLIENT_NOT_FOUND")
    async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/events", headers=auth(gw, PORTAL_B)) as response:
        await assert_problem(response, 404, "CLIENT_NOT_FOUND")
    async with http.get(f"{base}/{first.session_id}", headers=auth(gw, PORTAL)) as response:
        assert response.status == 200, "the submitter opens its own application by sessionId too"
        item = await response.json()
    assert (item["messageId"], item["senderId"]) == (mid, PORTAL) and item["applicantName"]


async def test_a_granted_reader_lists_and_reads_every_senders_applications(gw, shep, http) -> None:
    aigerim = gw.pki.person("aigerim")
    from_a, from_b = await submit(gw, shep, "aigerim", PORTAL), await submit(gw, shep, "aigerim", PORTAL_B)
    assert from_a.ok and from_b.ok
    seen = await listing(gw, http, aigerim.iin, NATIONAL)
    assert seen["total"] == 2
    assert {(a["sessionId"], a["senderId"]) for a in seen["applications"]} == {
        (from_a.session_id, PORTAL), (from_b.session_id, PORTAL_B)}
    base = f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications/{from_a.session_id}"
    async with http.get(base, headers=auth(gw, NATIONAL)) as response:
        assert response.status == 200 and (await response.json())["senderId"] == PORTAL
    async with http.get(f"{base}/result", headers=auth(gw, NATIONAL)) as response:
        assert response.status == 200 and b"ReaderTicket" in await response.read()
    async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/events", headers=auth(gw, NATIONAL)) as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    daniyar = gw.pki.person("daniyar")  # even a granted reader sees an application only under its own owner
    async with http.get(f"{gw.url}/api/v1/cabinet/{daniyar.iin}/applications/{from_a.session_id}",
                        headers=auth(gw, NATIONAL)) as response:
        await assert_problem(response, 404, "CLIENT_NOT_FOUND")


async def test_a_stream_passes_on_only_the_readers_own_applications(gw, shep, http) -> None:
    """Portal-b may watch aigerim (it has an application of hers) but never sees portal-a's changes."""
    aigerim = gw.pki.person("aigerim")
    assert (await submit(gw, shep, "aigerim", PORTAL_B)).ok
    url = f"{gw.url}/api/v1/cabinet/{aigerim.iin}/events"
    async with http.get(url, headers=auth(gw, PORTAL_B)) as stream:
        assert stream.status == 200
        async with asyncio.timeout(20):
            while not (await stream.content.readline()).startswith(b"event: connected"):
                pass
            from_a = await submit(gw, shep, "aigerim", PORTAL)
            from_b = await submit(gw, shep, "aigerim", PORTAL_B)
            assert from_a.ok and from_b.ok
            seen: set[str] = set()
            while from_b.session_id not in seen:
                line = await stream.content.readline()
                if line.startswith(b'data: {"'):  # an application event (``connected`` carries an empty object)
                    event = json.loads(line[6:])
                    assert event["senderId"] == PORTAL_B, event
                    seen.add(event["sessionId"])
    assert from_a.session_id not in seen


async def test_two_portals_with_one_message_id_for_one_applicant_each_get_their_own(gw, shep, http) -> None:
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    from_a, from_b = await submit(gw, shep, "aigerim", PORTAL, mid), await submit(gw, shep, "aigerim", PORTAL_B, mid)
    assert from_a.ok and from_b.ok and from_a.session_id != from_b.session_id
    for sender, expected in ((PORTAL, from_a.session_id), (PORTAL_B, from_b.session_id)):
        async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications/{mid}",
                            headers=auth(gw, sender)) as response:
            item = await response.json()
        assert (item["sessionId"], item["senderId"]) == (expected, sender)


async def test_a_message_id_repeated_with_another_document_is_client_duplicate_mismatch(gw, shep, http) -> None:
    aigerim, daniyar = gw.pki.person("aigerim"), gw.pki.person("daniyar")
    mid = message_id()
    document = signed_application(aigerim, READER_TICKET_SERVICE)
    assert (await send_soap(shep, document, message_id=mid)).ok
    calls = gw.library_calls
    repeat = await submit(gw, shep, "daniyar", PORTAL, mid)
    assert (repeat.ok, repeat.status_code) == (False, "CLIENT_DUPLICATE_MISMATCH")
    assert repeat.document is None, "never the first applicant's signed reader ticket"
    envelope = {"requestInfo": {"messageId": mid, "serviceId": READER_TICKET_SERVICE,
                                "messageDate": datetime.now(UTC).isoformat(),
                                "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
                "requestData": {"data": etree.tostring(signed_application(daniyar, READER_TICKET_SERVICE),
                                                       encoding="unicode")}}
    async with http.post(f"{gw.url}/api/v1/requests", json=envelope) as response:
        await assert_problem(response, 409, "CLIENT_DUPLICATE_MISMATCH")
    assert gw.library_calls == calls
    assert (await listing(gw, http, daniyar.iin, PORTAL))["total"] == 0
    assert (await listing(gw, http, aigerim.iin, PORTAL))["total"] == 1
    same = await send_soap(shep, document, message_id=mid)
    assert same.ok and same.status_code == "SCSS001", "the same document repeated still gets the first answer"


def operator_records(gw: GatewayUnderTest, http: Any, query: str, sender: str = OPERATOR) -> Any:
    return http.get(f"{gw.url}/api/v1/admin/access-records?{query}", headers=auth(gw, sender))


async def test_every_cabinet_read_is_recorded_and_an_operator_lists_the_records(gw, shep, http) -> None:
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    first = await submit(gw, shep, "aigerim", PORTAL, mid)
    base = f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications"
    for url, sender in ((base, PORTAL), (f"{base}/{mid}", PORTAL), (f"{base}/{mid}/result", PORTAL),
                        (f"{base}/{mid}/receipt", PORTAL), (f"{base}/{mid}", PORTAL_B)):
        async with http.get(url, headers=auth(gw, sender)) as response:
            await response.read()
    async with operator_records(gw, http, f"owner={aigerim.iin}") as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    records = body["records"]
    assert [(r["sender"], r["action"], r["found"]) for r in records] == [
        (PORTAL_B, "application", False), (PORTAL, "receipt", True), (PORTAL, "result", True),
        (PORTAL, "application", True), (PORTAL, "list", True)], "newest first"
    assert all(r["owner"] == aigerim.iin for r in records), "the record holds the full owner"
    assert records[1]["applications"] == [first.session_id] and records[0]["applications"] == []
    assert all(datetime.fromisoformat(r["at"]) and r["remote"] == "127.0.0.1" for r in records)
    async with operator_records(gw, http, f"owner={aigerim.iin}&sender={PORTAL_B}") as response:
        assert [r["action"] for r in (await response.json())["records"]] == ["application"]
    pages, before = [], ""
    while True:  # two at a time, following ``next``
        async with operator_records(gw, http, f"owner={aigerim.iin}&limit=2{before}") as response:
            body = await response.json()
        pages.append([r["id"] for r in body["records"]])
        if body["next"] is None:
            break
        before = f"&before={body['next']}"
    assert [i for page in pages for i in page] == [r["id"] for r in records]
    assert all(len(page) <= 2 for page in pages)


@pytest.mark.parametrize(("query", "sender", "status", "code"), [
    ("", PORTAL, 403, "CLIENT_ACCESS_DENIED"),
    ("", NATIONAL, 403, "CLIENT_ACCESS_DENIED"),
    ("owner=<IIN>", OPERATOR, 400, "CLIENT_OWNER_INVALID"),
    ("before=yesterday", OPERATOR, 400, "CLIENT_ENVELOPE_INVALID"),
    ("limit=many", OPERATOR, 400, "CLIENT_ENVELOPE_INVALID"),
])
async def test_access_records_are_for_operators_only(gw, http, query: str, sender: str, status: int,
                                                     code: str) -> None:
    async with operator_records(gw, http, query, sender) as response:
        await assert_problem(response, status, code)
    async with http.get(f"{gw.url}/api/v1/admin/access-records") as response:
        await assert_problem(response, 401, "CLIENT_BAD_CREDENTIALS")


async def test_the_access_record_stream_is_bounded_and_logs_mask_the_owner(redis, prefix, caplog) -> None:
    log = AccessLog(redis, prefix, max_len=1000)
    owner = "880314400512"
    with caplog.at_level(logging.DEBUG, logger="egov.cabinet.access"):
        for _ in range(6):
            async with redis.pipeline(transaction=False) as pipe:
                for _entry in range(500):
                    pipe.xadd(log.key, {"owner": owner}, maxlen=log.max_len, approximate=True)
                await pipe.execute()
        await log.record(sender=PORTAL, owner=owner, action="list")
    assert 1000 <= await redis.xlen(log.key) < 1200, "MAXLEN ~ keeps about max_len"
    assert caplog.records and all(owner not in r.getMessage() for r in caplog.records)
    records, cursor = await log.page(owner=owner, limit=1)
    assert records[0].sender == PORTAL and cursor == records[0].entry_id


async def test_applications_recorded_before_the_per_sender_index_are_found(gw, shep, http) -> None:
    """Records written by an earlier version (only the per-owner index) are indexed per sender on first read."""
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    first = await submit(gw, shep, "aigerim", PORTAL, mid)
    prefix = gw.settings.redis.key_prefix
    await gw.redis.delete(f"{prefix}:cabinet:{aigerim.iin}:by:{PORTAL}", f"{prefix}:cabinet:{aigerim.iin}:msg:{PORTAL}")
    store = ApplicationStore(gw.redis, prefix)
    total, apps = await store.list_for(aigerim.iin, sender_id=PORTAL)
    assert (total, [a.id for a in apps]) == (1, [first.session_id])
    assert (await store.list_for(aigerim.iin, sender_id=PORTAL_B))[0] == 0
    found = await store.find_for(aigerim.iin, mid, sender_id=PORTAL)
    assert found is not None and found.id == first.session_id


def test_reading_every_cabinet_needs_the_cabinet_right() -> None:
    odd = SenderSettings(password_hash="scrypt$16384$8$1$c2FsdA==$aGFzaA==", cabinet_reads_all=True)
    with pytest.raises(ConfigError, match=r"senders\.odd\.cabinet_reads_all: needs cabinet = true"):
        check_settings(Settings(senders={"odd": odd}))
    check_settings(Settings(senders={"odd": replace(odd, cabinet=True)}))
