"""The cabinet as the portal shows it: names in three languages, deadlines in working days, live events."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, date, datetime

import pytest

from gateway.cabinet.calendar import WorkingCalendar
from gateway.cabinet.catalogue import STATUSES, STEPS
from gateway.cabinet.readable import ReadableDocuments
from gateway.config import ServiceSettings
from mocks.backoffice.worker import CommissionDesk, WorkerSettings
from mocks.portal.applicant import ELICENSE_SERVICE, FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE, signed_application
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    assert_problem,
    cabinet_item,
    message_id,
    send_soap,
)


def test_working_days_skip_weekends_and_holidays() -> None:
    calendar = WorkingCalendar.load()
    friday = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 15:00 in Astana
    assert calendar.add(friday, working_days=2).date() == date(2026, 11, 24)  # Monday, Tuesday
    before_independence_day = datetime(2026, 12, 15, 6, 0, tzinfo=UTC)  # Tuesday; 16 December is a holiday
    assert calendar.add(before_independence_day, working_days=1).date() == date(2026, 12, 17)
    assert calendar.add(friday, working_days=0, hours=2).hour == 12
    assert not calendar.is_working_day(date(2026, 3, 23))  # Nauryz


@pytest.mark.parametrize(("language", "completed"), [("kk", "Орындалды"), ("ru", "Исполнено"),
                                                     ("en", "Completed")])
async def test_names_follow_the_language(gw, shep, http, language: str, completed: str) -> None:
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    assert (await send_soap(shep, signed_application(aigerim, READER_TICKET_SERVICE), message_id=mid)).ok
    async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications/{mid}?lang={language}",
                        headers=gw.auth()) as response:
        item = await response.json()
    assert item["statusName"] == completed
    assert item["serviceTitle"] and item["serviceTitle"] != READER_TICKET_SERVICE
    assert [event["statusName"] for event in item["history"]] == [
        STATUSES[s][language] for s in ("accepted", "routed", "completed")]
    assert item["deadline"] and item["overdue"] is False


async def test_failed_application_explains_itself_in_the_chosen_language(gw, shep, http) -> None:
    daniyar = gw.pki.person("daniyar")
    mid = message_id()
    # A refusal by the back-end fails the application (a back-end that is down leaves it open, to retry).
    async with http.post(f"{gw.library_url}/_control/fail", json={"status": 422, "count": 1}) as answer:
        assert answer.status == 200
    await send_soap(shep, signed_application(daniyar, READER_TICKET_SERVICE), message_id=mid)
    async with http.get(f"{gw.url}/api/v1/cabinet/{daniyar.iin}/applications/{mid}",
                        headers={**gw.auth(), "Accept-Language": "ru-KZ, kk;q=0.5"}) as response:
        item = await response.json()
    assert item["errorCode"] == "PROVIDER_REJECTED"
    assert item["errorMessage"] == "Поставщик услуги отклонил заявление."


async def test_provider_steps_have_names_and_the_deadline_counts_working_days(gw, shep, http) -> None:
    saule = gw.pki.person("saule")
    mid = message_id()
    assert (await send_soap(shep, signed_application(saule, ELICENSE_SERVICE), service_id=ELICENSE_SERVICE,
                            message_id=mid)).ok
    await cabinet_item(gw, http, saule.iin, mid)
    async with http.get(f"{gw.url}/api/v1/cabinet/{saule.iin}/applications/{mid}?lang=kk",
                        headers=gw.auth()) as response:
        item = await response.json()
    named = {event["step"]: event["stepName"] for event in item["history"] if event.get("step")}
    assert named["documents-checked"] == STEPS["documents-checked"]["kk"]
    created = datetime.fromisoformat(item["createdAt"])
    expected = WorkingCalendar.load().add(created, working_days=7, hours=2 + 35 / 60)
    assert datetime.fromisoformat(item["deadline"]) == expected.replace(microsecond=0)


async def test_status_changes_are_pushed_to_open_pages(gw, shep, http) -> None:
    daniyar = gw.pki.person("daniyar")
    # A sender may watch only an owner it has applications of (item 3 of issue 11): one first.
    assert (await send_soap(shep, signed_application(daniyar, READER_TICKET_SERVICE), message_id=message_id())).ok
    events: list[dict] = []
    subscribed = asyncio.Event()

    async def listen() -> None:
        async with http.get(f"{gw.url}/api/v1/cabinet/{daniyar.iin}/events", headers=gw.auth()) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            event = None
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line == "event: connected":  # sent once the stream listens to the owner's channel
                    subscribed.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "application":
                    events.append(json.loads(line[6:]))
                    if events[-1]["status"] == "completed":
                        return

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(subscribed.wait(), 10)
    result = await send_soap(shep, signed_application(daniyar, READER_TICKET_SERVICE), message_id=message_id())
    await asyncio.wait_for(listener, 10)
    assert [e["status"] for e in events] == ["routed", "completed"]  # recorded (accepted+routed), then done
    assert {e["sessionId"] for e in events} == {result.session_id}


async def test_event_stream_needs_the_portals_credentials(gw, http) -> None:
    async with http.get(f"{gw.url}/api/v1/cabinet/{gw.pki.person('aigerim').iin}/events") as response:
        assert response.status == 401


async def test_document_and_result_as_json_fields_for_the_reader_ticket(gw, shep, http) -> None:
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    assert (await send_soap(shep, signed_application(aigerim, READER_TICKET_SERVICE), message_id=mid)).ok
    item = await cabinet_item(gw, http, aigerim.iin, mid)
    document, result = item["documentFields"], item["resultFields"]
    assert document["iin"] == aigerim.iin and document["givenName"] == aigerim.name
    assert document["consentPersonalData"] is True, "typed by the schema: a boolean, not the text 'true'"
    assert "Signature" not in json.dumps(document) and "Signature" not in json.dumps(result)
    assert result["iin"] == aigerim.iin and result["ticketNumber"].startswith("KAZNEB-")


async def test_document_and_result_as_json_fields_for_the_export_certificate(gw, shep, http) -> None:
    saule = gw.pki.person("saule")
    mid = message_id()
    assert (await send_soap(shep, signed_application(saule, ELICENSE_SERVICE), service_id=ELICENSE_SERVICE,
                            message_id=mid)).ok
    item = await cabinet_item(gw, http, saule.iin, mid)
    assert item["status"] == "completed", item["history"]
    items = item["documentFields"]["items"]["item"]
    assert isinstance(items, list) and all(isinstance(i["quantity"], int) for i in items)
    assert all(isinstance(i["insuredValueKzt"], str) for i in items), "decimals stay exact, as strings"
    assert item["resultFields"]["outcome"] == "issued"


async def test_document_and_result_as_json_fields_for_the_fund_submission(gw, shep, http) -> None:
    head = gw.pki.person("kitap-head")
    mid = message_id()
    assert (await send_soap(shep, signed_application(head, FUND_SUBMISSION_SERVICE),
                            service_id=FUND_SUBMISSION_SERVICE, message_id=mid)).ok
    desk = CommissionDesk(WorkerSettings(gateway_url=gw.url, library_url=gw.library_url, sender=DESK,
                                         password=DESK_PASSWORD, poll_wait=2))
    async with desk:
        assert await desk.run_once()
    item = await cabinet_item(gw, http, str(head.bin), mid)
    assert item["documentFields"]["participant"]["bin"] == head.bin
    assert item["documentFields"]["objects"]["object"][0]["pages"] > 0
    commission = item["resultFields"]["commission"]
    assert commission["votesFor"] + commission["votesAgainst"] == commission["members"]


async def test_an_accepted_application_has_no_result_fields_yet(gw, shep, http) -> None:
    head = gw.pki.person("murager-head")
    mid = message_id()
    assert (await send_soap(shep, signed_application(head, FUND_SUBMISSION_SERVICE),
                            service_id=FUND_SUBMISSION_SERVICE, message_id=mid)).ok
    item = await cabinet_item(gw, http, str(head.bin), mid, final=False)  # no desk: it waits in the queue
    assert item["documentFields"]["participant"]["bin"] == head.bin
    assert item["resultFields"] is None


def test_a_document_that_does_not_decode_is_null_and_a_warning(caplog) -> None:
    readable = ReadableDocuments.build({READER_TICKET_SERVICE: ServiceSettings(
        endpoint="http://127.0.0.1:1/", document_schema="kazneb/reader-registration.xsd")})
    wrong = '<ReaderRegistration xmlns="urn:egov:kazneb:reader-registration:v1"><iin>1</iin></ReaderRegistration>'
    with caplog.at_level(logging.WARNING, logger="egov.cabinet.readable"):
        assert readable.document_fields(READER_TICKET_SERVICE, wrong) is None
        assert readable.document_fields(READER_TICKET_SERVICE, "<not xml") is None
    assert len(caplog.records) == 2 and "does not decode" in caplog.records[0].getMessage()
    assert readable.result_fields(READER_TICKET_SERVICE, "<x/>") is None, "no result schema: nothing to decode"
    assert readable.document_fields("unknown.service", wrong) is None


async def test_the_answer_is_utf8_json_and_pretty_on_request(gw, shep, http) -> None:
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    assert (await send_soap(shep, signed_application(aigerim, READER_TICKET_SERVICE), message_id=mid)).ok
    url = f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications"
    async with http.get(url, headers=gw.auth()) as response:
        compact = await response.text()
    async with http.get(f"{url}?pretty", headers=gw.auth()) as response:
        pretty = await response.text()
    assert aigerim.surname in compact and "\\u" not in compact and "\n" not in compact.strip()
    assert json.loads(pretty) == json.loads(compact) and '\n  "applications"' in pretty


@pytest.mark.parametrize("owner", ["<IIN>", "%3CIIN%3E", "88031440512", "8803144051２5"])
async def test_an_owner_path_without_twelve_digits_is_client_owner_invalid(gw, http, owner: str) -> None:
    async with http.get(f"{gw.url}/api/v1/cabinet/{owner}/applications", headers=gw.auth()) as response:
        problem = await assert_problem(response, 400, "CLIENT_OWNER_INVALID")
    assert "pki list" in problem["detail"]
