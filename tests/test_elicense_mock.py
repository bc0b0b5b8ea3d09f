"""E-licensing SOAP mock: the seven regulated steps on a simulated clock and the working calendar, signed
results, the refusal rules, input hardening and fault injection; a zeep client over a real socket."""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import zeep
from aiohttp import web
from lxml import etree
from zeep.exceptions import Fault

from mocks.elicense import (
    ELICENSE_STATE,
    KZ_TIME,
    RESULT_NS,
    SERVICE_NS,
    SimulatedClock,
    WorkingCalendar,
    build_export_application,
    create_elicense_app,
    sample_items,
)
from mocks.elicense.forms import add_months, read_application, review
from mocks.pki import TestPki
from mocks.statefile import StateFile, StateFileError
from schemas import load_xml_schema
from signing.signer import DocumentSigner
from signing.verifier import DocumentVerifier
from tests.helpers import DS, any_content, system_signer, trusting_verifier

R = {"r": RESULT_NS}
IIN = "880101300123"  # an applicant's IIN as the portal forwards it (the mock does not check the digit)
FRIDAY_AFTERNOON = datetime(2025, 11, 14, 13, 0, tzinfo=KZ_TIME)
RESULT_SCHEMA = load_xml_schema("elicense/export-result.xsd")


def application(kind: str = "ordinary", application_id: str = "app-1", **overrides: Any) -> etree._Element:
    fields: dict[str, Any] = {
        "iin": IIN, "name": "Сейітқали Әйгерім", "items": sample_items(kind), "application_id": application_id,
        "export_from": date(2026, 2, 1), "return_by": date(2026, 5, 31),
        "purpose_details": "Exhibition «Steppe gold», Louvre, Paris",
        # Fixed, so the same application built twice is the same document (its digest is the idempotency key).
        "submitted_at": FRIDAY_AFTERNOON,
    }
    fields.update(overrides)
    return build_export_application(**fields)


@dataclass
class Elicense:
    """One running mock with its clock and a zeep client from its served WSDL."""

    url: str
    app: web.Application
    clock: SimulatedClock
    client: zeep.Client

    async def submit(self, document: etree._Element, application_id: str = "app-1") -> Any:
        wrapped = any_content(document)
        return await asyncio.to_thread(self.client.service.SubmitApplication,
                                       applicationId=application_id, document=wrapped)

    async def status(self, number: str) -> Any:
        return await asyncio.to_thread(self.client.service.GetApplicationStatus, registrationNumber=number)

    async def fault(self, call: Awaitable[Any]) -> tuple[str, str]:
        with pytest.raises(Fault) as caught:
            await call
        detail = caught.value.detail
        return (detail.findtext(f"{{{SERVICE_NS}}}ElicenseFault/{{{SERVICE_NS}}}code"),
                detail.findtext(f"{{{SERVICE_NS}}}ElicenseFault/{{{SERVICE_NS}}}message"))


@pytest.fixture(scope="module")
def signer(pki: TestPki) -> DocumentSigner:
    return system_signer(pki, "elicense")


@pytest.fixture(scope="module")
def verifier(pki: TestPki) -> DocumentVerifier:
    return trusting_verifier(pki)


@pytest_asyncio.fixture
async def start_mock(signer: DocumentSigner) -> AsyncIterator[Callable[[datetime], Awaitable[Elicense]]]:
    runners: list[web.AppRunner] = []

    async def start(at: datetime, **options: Any) -> Elicense:
        clock = SimulatedClock(at, 0.0)  # time moves only when the test says so
        app = create_elicense_app(signer=signer, clock=clock, **options)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        client = await asyncio.to_thread(zeep.Client, f"{url}/soap?wsdl")
        return Elicense(url, app, clock, client)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest_asyncio.fixture
async def mock(start_mock: Callable[[datetime], Awaitable[Elicense]]) -> Elicense:
    return await start_mock(FRIDAY_AFTERNOON)


def kz(*args: int) -> datetime:
    return datetime(*args, tzinfo=KZ_TIME)


def result_of(status: Any) -> etree._Element:
    assert status.result is not None and len(status.result) == 1
    return copy.deepcopy(status.result[0])  # a tree of its own, as the gateway would detach it


async def walk_to_end(mock: Elicense, number: str) -> Any:
    """Advance the clock to each step's due time in turn; return the final status."""
    while True:
        status = await mock.status(number)
        if status.state != "in_progress":
            return status
        mock.clock.advance(status.steps[-1].dueAt - mock.clock.now())


async def test_submit_walks_through_the_steps_and_issues_a_signed_certificate(
    mock: Elicense, verifier: DocumentVerifier, pki: TestPki
) -> None:
    submitted = await mock.submit(application())
    assert submitted.registrationNumber == "EL-CV-2025-00000001"
    assert submitted.registeredAt == FRIDAY_AFTERNOON

    status = await mock.status(submitted.registrationNumber)
    assert (status.state, status.currentStep, len(status.steps)) == ("in_progress", "registration", 1)
    assert status.steps[0].dueAt == kz(2025, 11, 14, 13, 10) and status.steps[0].completedAt is None
    assert status.result is None

    mock.clock.advance(timedelta(minutes=10))
    status = await mock.status(submitted.registrationNumber)
    assert status.currentStep == "executor-assigned" and status.steps[0].completedAt == kz(2025, 11, 14, 13, 10)
    assert status.steps[1].dueAt == kz(2025, 11, 14, 14, 10)

    mock.clock.advance(timedelta(hours=1))
    status = await mock.status(submitted.registrationNumber)
    check = status.steps[2]
    assert (status.currentStep, check.startedAt) == ("documents-checked", kz(2025, 11, 14, 14, 10))
    assert check.dueAt == kz(2025, 11, 18, 14, 10)  # Friday afternoon + 2 working days = Tuesday
    assert check.nameEn == "The executor checks the documents" and "тексеруі" in check.name

    mock.clock.advance(check.dueAt - mock.clock.now() - timedelta(seconds=1))
    assert (await mock.status(submitted.registrationNumber)).currentStep == "documents-checked"
    mock.clock.advance(timedelta(seconds=1))
    status = await mock.status(submitted.registrationNumber)
    assert status.currentStep == "expert-conclusion"
    assert status.steps[3].dueAt == kz(2025, 11, 25, 14, 10)  # 5 working days: Wed..Fri, Mon, Tue

    final = await walk_to_end(mock, submitted.registrationNumber)
    assert final.state == "issued" and final.currentStep is None
    assert [s.code for s in final.steps] == ["registration", "executor-assigned", "documents-checked",
                                             "expert-conclusion", "certificate-prepared", "head-signed", "issued"]
    assert all(s.completedAt == s.dueAt for s in final.steps)
    assert final.steps[-1].completedAt == kz(2025, 11, 25, 15, 35)  # + 15 min + 1 h + 10 min

    result = result_of(final)
    assert RESULT_SCHEMA.validate(result), RESULT_SCHEMA.error_log
    verified = verifier.verify(result)
    assert verified.report.passed
    identity = verified.identity
    assert (identity.common_name, identity.organisation) == ("elicense", "E-LICENSING TEST")
    assert identity.bin == pki.system_bins["elicense"]
    signed = verified.signed
    assert signed.findtext("r:outcome", namespaces=R) == "issued"
    assert signed.findtext("r:applicant/r:iin", namespaces=R) == IIN
    assert signed.findtext("r:certificate/r:number", namespaces=R) == "CV-2025-00000001"
    assert signed.findtext("r:certificate/r:validUntil", namespaces=R) == "2026-05-31"
    assert signed.findtext("r:certificate/r:issuedAt", namespaces=R) == "2025-11-25T15:35:00+05:00"
    assert len(signed.findall("r:certificate/r:items/r:item", R)) == 2
    assert len(signed.findall("r:steps/r:step", R)) == 7

    mock.clock.advance(timedelta(days=3))
    again = result_of(await mock.status(submitted.registrationNumber))
    assert etree.tostring(again) == etree.tostring(result)  # cached: built and signed once
    assert mock.app[ELICENSE_STATE].signatures_made == 1


async def test_a_public_holiday_is_not_a_working_day(start_mock: Callable[[datetime], Awaitable[Elicense]]) -> None:
    mock = await start_mock(kz(2025, 12, 12, 13, 0))  # Friday before Independence Day (Tue 16 Dec)
    submitted = await mock.submit(application())
    mock.clock.advance(timedelta(minutes=70))
    status = await mock.status(submitted.registrationNumber)
    assert status.currentStep == "documents-checked"
    assert status.steps[2].dueAt == kz(2025, 12, 17, 14, 10)  # Mon 15 = 1st, Tue 16 holiday, Wed 17 = 2nd


def test_working_calendar() -> None:
    calendar = WorkingCalendar.load()
    assert not calendar.is_working_day(date(2026, 3, 25)) and calendar.is_working_day(date(2026, 3, 26))
    nauryz = calendar.add_working_days(kz(2026, 3, 20, 16, 0), 2)  # Fri; Nauryz Sat 21-Mon 23, observed Tue-Wed
    assert nauryz == kz(2026, 3, 27, 16, 0)
    new_year = calendar.add_working_days(kz(2026, 12, 31, 9, 30), 1)  # Thu; Fri 1, Sat 2 Jan observed Mon 4
    assert new_year == kz(2027, 1, 5, 9, 30)
    assert calendar.add_working_days(kz(2027, 1, 6, 9, 30), 1) == kz(2027, 1, 8, 9, 30)  # Thu 7 Jan Christmas
    utc = calendar.add_working_days(kz(2025, 11, 14, 20, 0).astimezone(UTC), 2)  # Fri 15:00 UTC
    assert utc == kz(2025, 11, 18, 20, 0)  # the day is the Kazakhstan day, whatever zone is passed in


def test_simulated_clock_scale_and_advance() -> None:
    real = [100.0]
    clock = SimulatedClock(FRIDAY_AFTERNOON, 3600, monotonic=lambda: real[0])
    real[0] += 2
    assert clock.now() == FRIDAY_AFTERNOON + timedelta(hours=2)
    clock.advance(timedelta(days=1))
    clock.set_scale(0)
    real[0] += 1000
    assert clock() == FRIDAY_AFTERNOON + timedelta(days=1, hours=2)
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))


async def test_refusal_at_documents_check_without_expert_opinion(mock: Elicense, verifier: DocumentVerifier) -> None:
    agreement = [{"kind": "exhibition-agreement", "reference": "agreement.pdf"}]
    submitted = await mock.submit(application("heritage", attachments=agreement))
    mock.clock.advance(timedelta(minutes=70))
    assert (await mock.status(submitted.registrationNumber)).currentStep == "documents-checked"
    mock.clock.advance(kz(2025, 11, 18, 14, 10) - mock.clock.now())
    status = await mock.status(submitted.registrationNumber)
    assert (status.state, status.currentStep) == ("in_progress", "head-signed")  # the head signs the refusal

    final = await walk_to_end(mock, submitted.registrationNumber)
    assert final.state == "refused"
    assert [s.code for s in final.steps] == ["registration", "executor-assigned", "documents-checked",
                                             "head-signed", "issued"]
    signed = verifier.verify(result_of(final)).signed
    assert signed.findtext("r:outcome", namespaces=R) == "refused"
    assert signed.find("r:certificate", R) is None
    assert signed.findtext("r:refusal/r:step", namespaces=R) == "documents-checked"
    assert signed.findtext("r:refusal/r:groundCode", namespaces=R) == "EXPERT_OPINION_MISSING"
    reason = signed.findtext("r:refusal/r:reasonEn", namespaces=R)
    assert "expert opinion" in reason and "Күміс білезік" in reason
    assert "сараптама қорытындысы" in signed.findtext("r:refusal/r:reason", namespaces=R)
    assert "p. 5 subp. 3)" in signed.findtext("r:refusal/r:legalBasis", namespaces=R)


async def test_refusal_at_head_signing_for_a_national_treasure(mock: Elicense, verifier: DocumentVerifier) -> None:
    submitted = await mock.submit(application("treasure"))  # expert opinion attached: passes the check
    final = await walk_to_end(mock, submitted.registrationNumber)
    assert final.state == "refused" and len(final.steps) == 7
    signed = verifier.verify(result_of(final)).signed
    assert signed.findtext("r:refusal/r:step", namespaces=R) == "head-signed"
    assert signed.findtext("r:refusal/r:groundCode", namespaces=R) == "NATIONAL_TREASURE"
    assert "may not be taken out of the country" in signed.findtext("r:refusal/r:reasonEn", namespaces=R)
    assert "p. 5 subp. 6)" in signed.findtext("r:refusal/r:legalBasis", namespaces=R)


def test_export_term_rules() -> None:
    def grounds(export_from: date, return_by: date) -> list[str]:
        document = application(export_from=export_from, return_by=return_by)
        return [g.code for g in review(read_application(document))]

    assert grounds(date(2026, 2, 1), date(2026, 1, 31)) == ["RETURN_BEFORE_EXPORT"]
    assert grounds(date(2026, 2, 1), date(2026, 8, 1)) == []  # exactly six months
    assert grounds(date(2026, 2, 1), date(2026, 8, 2)) == ["EXPORT_TERM_TOO_LONG"]
    assert add_months(date(2025, 8, 31), 6) == date(2026, 2, 28)
    both = application("heritage", attachments=[], return_by=date(2026, 1, 1))
    assert [g.code for g in review(read_application(both))] == ["EXPERT_OPINION_MISSING", "RETURN_BEFORE_EXPORT"]


async def test_resubmission_is_idempotent_per_application_id(mock: Elicense) -> None:
    first = await mock.submit(application())
    assert (await mock.submit(application())).registrationNumber == first.registrationNumber
    changed = application(return_by=date(2026, 4, 30))
    assert (await mock.fault(mock.submit(changed)))[0] == "EL_DUPLICATE_APPLICATION"
    other = application(application_id="app-2", return_by=date(2026, 4, 30))
    assert (await mock.submit(other, "app-2")).registrationNumber == "EL-CV-2025-00000002"


async def test_invalid_documents_are_faults(mock: Elicense) -> None:
    no_photo = application()
    photo = no_photo.find(".//{*}photoReference")
    photo.getparent().remove(photo)
    code, message = await mock.fault(mock.submit(no_photo))
    assert code == "EL_INVALID_DOCUMENT" and "photoReference" in message

    both_ids = application()
    both_ids.find("{*}applicant").insert(1, copy.deepcopy(both_ids.find("{*}applicant/{*}iin")))
    assert (await mock.fault(mock.submit(both_ids)))[0] == "EL_INVALID_DOCUMENT"

    signed = application()
    signed.insert(len(signed), etree.Element(f"{{{DS}}}Signature"))
    code, message = await mock.fault(mock.submit(signed))
    assert code == "EL_INVALID_DOCUMENT" and "ds:Signature" in message

    other_id = application(application_id="something-else")
    assert (await mock.fault(mock.submit(other_id, "app-1")))[0] == "EL_INVALID_DOCUMENT"
    assert (await mock.fault(mock.submit(etree.Element("{urn:other}Thing"))))[0] == "EL_INVALID_DOCUMENT"
    assert mock.app[ELICENSE_STATE].registrations == {}


async def test_unknown_registration_number_is_a_fault(mock: Elicense) -> None:
    code, message = await mock.fault(mock.status("EL-CV-2025-99999999"))
    assert code == "EL_UNKNOWN_REGISTRATION" and "EL-CV-2025-99999999" in message


async def test_doctype_and_garbage_are_refused(mock: Elicense) -> None:
    soap = "http://schemas.xmlsoap.org/soap/envelope/"
    xxe = (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           f'<s:Envelope xmlns:s="{soap}"><s:Body><GetApplicationStatus xmlns="{SERVICE_NS}">'
           f"<registrationNumber>&e;</registrationNumber></GetApplicationStatus></s:Body></s:Envelope>")
    async with aiohttp.ClientSession() as http:
        for body in (xxe, "<not-xml", f'<s:Envelope xmlns:s="{soap}"><s:Body><Nope/></s:Body></s:Envelope>'):
            async with http.post(f"{mock.url}/soap", data=body.encode(), headers={"Content-Type": "text/xml"}) as r:
                assert r.status == 500
                answer = etree.fromstring(await r.read())
            assert answer.findtext(f".//{{{SERVICE_NS}}}code") == "EL_INVALID_REQUEST"
            assert "root:" not in answer.findtext(f".//{{{SERVICE_NS}}}message")
        async with http.get(f"{mock.url}/soap?wsdl") as r:
            wsdl = etree.fromstring(await r.read())
    location = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address").get("location")
    assert location == f"{mock.url}/soap"


async def test_fault_injection_and_clock_control(mock: Elicense) -> None:
    submitted = await mock.submit(application())
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{mock.url}/_control/fail", json={"status": 503, "count": 2}) as r:
            assert (r.status, await r.json()) == (200, {"status": 503, "count": 2, "delay": 0.0})
        for _ in range(2):
            assert (await mock.fault(mock.status(submitted.registrationNumber)))[0] == "EL_INJECTED_FAULT"
        assert (await mock.status(submitted.registrationNumber)).state == "in_progress"
        async with http.get(f"{mock.url}/health") as r:
            assert r.status == 200

        async with http.post(f"{mock.url}/_control/fail", json={"delay": 0.3}) as r:
            assert r.status == 200
        started = time.monotonic()
        await mock.status(submitted.registrationNumber)
        assert time.monotonic() - started >= 0.3
        async with http.post(f"{mock.url}/_control/reset") as r:
            assert (await r.json())["delay"] == 0.0
        for bad in ({"status": True}, {"count": 2}, {"delay": 600}, [1]):
            async with http.post(f"{mock.url}/_control/fail", json=bad) as r:
                assert r.status == 400 and (await r.json())["code"] == "EL_BAD_CONTROL_REQUEST"

        async with http.post(f"{mock.url}/_control/clock", json={"advance_seconds": 4200}) as r:
            assert (await r.json())["now"] == "2025-11-14T14:10:00+05:00"
        assert (await mock.status(submitted.registrationNumber)).currentStep == "documents-checked"
        async with http.post(f"{mock.url}/_control/clock", json={"scale": 3600}) as r:
            assert (await r.json())["scale"] == 3600
        assert mock.clock.now() > kz(2025, 11, 14, 14, 10)
        for bad in ({"scale": True}, {"advance_seconds": -5}, {}):
            async with http.post(f"{mock.url}/_control/clock", json=bad) as r:
                assert r.status == 400


async def test_at_a_demo_pace_steps_complete_early_in_real_time_and_the_issue_date_is_real(
    start_mock: Callable[..., Awaitable[Elicense]],
) -> None:
    # Issue 16: at 50,000x the whole procedure takes seconds; every date stays a real one (no 2027 for a 2026
    # export), each step completes on or before its regulated deadline, and the certificate is issued today.
    mock = await start_mock(FRIDAY_AFTERNOON, pace=50_000)
    registered = await mock.submit(application(export_from=date(2025, 12, 1), return_by=date(2026, 2, 28)))
    status = await mock.status(registered.registrationNumber)
    assert status.state == "in_progress" and status.currentStep == "registration"
    mock.clock.advance(timedelta(seconds=30))  # 7 working days + 2 h 35 min / 50,000 is about 16 s
    final = await mock.status(registered.registrationNumber)
    assert final.state == "issued"
    steps = final.steps
    assert len(steps) == 7 and steps[0].startedAt == registered.registeredAt
    for earlier, later in itertools.pairwise(steps):
        assert later.startedAt == earlier.completedAt, "each step starts when the previous one completed"
    for step in steps:
        assert step.startedAt <= step.completedAt <= step.dueAt
        assert step.completedAt <= mock.clock.now()
    assert steps[2].dueAt == kz(2025, 11, 18, 13, 0), "the regulated deadline: 2 working days from its start"
    assert steps[3].dueAt.date() == date(2025, 11, 21), "5 working days from its own (real) start"
    assert steps[-1].completedAt - steps[0].startedAt < timedelta(seconds=30)
    certificate = result_of(final).find("r:certificate", R)
    issued = datetime.fromisoformat(certificate.findtext("r:issuedAt", namespaces=R))
    assert issued == steps[-1].completedAt and issued.date() == FRIDAY_AFTERNOON.date()
    assert issued.date() <= date.fromisoformat(certificate.findtext("r:exportFrom", namespaces=R))


def test_a_pace_below_one_is_refused(signer: DocumentSigner) -> None:
    with pytest.raises(ValueError, match="pace must be at least 1"):
        create_elicense_app(signer=signer, clock=SimulatedClock(FRIDAY_AFTERNOON, 0.0), pace=0.5)


async def test_registrations_and_results_survive_a_restart(
    start_mock: Callable[..., Awaitable[Elicense]], verifier: DocumentVerifier, tmp_path: Path,
) -> None:
    store = StateFile(tmp_path / "world" / "elicense.json")
    first = await start_mock(FRIDAY_AFTERNOON, store=store)
    registered = await first.submit(application())
    final = await walk_to_end(first, registered.registrationNumber)
    result = etree.tostring(result_of(final))
    assert first.app[ELICENSE_STATE].signatures_made == 1
    pending = await first.submit(application(application_id="app-2"), "app-2")

    again = await start_mock(first.clock.now(), store=store)
    same = await again.status(registered.registrationNumber)
    assert same.state == "issued" and etree.tostring(result_of(same)) == result, "the same signed result"
    assert again.app[ELICENSE_STATE].signatures_made == 0, "not signed again after the restart"
    assert (await again.submit(application())).registrationNumber == registered.registrationNumber, "idempotent"
    code, _ = await again.fault(again.submit(application(purpose_details="changed"), "app-1"))
    assert code == "EL_DUPLICATE_APPLICATION"
    still = await again.status(pending.registrationNumber)
    assert still.state == "in_progress" and [s.startedAt for s in still.steps] == [pending.registeredAt]
    third = await again.submit(application(application_id="app-3"), "app-3")
    assert third.registrationNumber.endswith("00000003"), "the counter continues: no number is given twice"


async def test_a_damaged_state_file_stops_the_start_with_a_clear_message(signer: DocumentSigner,
                                                                        tmp_path: Path) -> None:
    store = StateFile(tmp_path / "elicense.json")
    store.path.write_text('{"registrations": [{"number": 1}]}')
    with pytest.raises(StateFileError, match=r"elicense\.json is damaged.*--fresh"):
        create_elicense_app(signer=signer, clock=SimulatedClock(FRIDAY_AFTERNOON, 0.0), store=store)
