"""KazNEB library mock: the standing commission's decisions (rules §6, §9, §10) and exclusions (§13)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from lxml import etree

from mocks.library import (
    FUND_DECISION_NS,
    LIBRARY_STATE,
    build_fund_submission,
    create_library_app,
    parse_fund_decision,
    parse_fund_receipt,
    sample_fund_objects,
)
from mocks.library.commission import add_working_days, load_holidays
from mocks.pki import TestPki
from signing.idnumbers import make_bin
from signing.signer import DocumentSigner
from signing.verifier import DocumentVerifier
from tests.helpers import DS, XML, assert_problem, kazneb_schema, system_signer, trusting_verifier

PATH = "/api/v1/fund/submissions"
ASTANA = timezone(timedelta(hours=5))
THURSDAY = datetime(2025, 10, 9, 10, 0, tzinfo=ASTANA)
BIN = make_bin(1999, 3, "resident", "head", 1234)

DECISION_SCHEMA = kazneb_schema("fund-decision.xsd")


@pytest.fixture(scope="module")
def library_signer(pki: TestPki) -> DocumentSigner:
    return system_signer(pki, "library")


@pytest.fixture(scope="module")
def verifier(pki: TestPki) -> DocumentVerifier:
    return trusting_verifier(pki)


def submission_body(objects: list[dict[str, Any]] | None = None) -> bytes:
    document = build_fund_submission(
        bin=BIN,
        participant_name="Қарағанды облыстық әмбебап ғылыми кітапханасы",
        kind="library",
        head_name="Әбілқасымова Гүлнар Серікқызы",
        objects=sample_fund_objects() if objects is None else objects,
        application_id="FUND-0001",
        submitted_at=datetime(2025, 10, 1, 9, 0, tzinfo=ASTANA),
    )
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


async def client_for(aiohttp_client: Any, signer: DocumentSigner | None, now: datetime = THURSDAY) -> Any:
    return await aiohttp_client(create_library_app(clock=lambda: now, signer=signer))


async def registered(client: Any) -> str:
    response = await client.post(PATH, data=submission_body(), headers=XML)
    assert response.status == 200, await response.text()
    return parse_fund_receipt(await response.read())["submission_number"]


def vote(decision: str = "include", members: int = 5, votes_for: int = 4, **extra: Any) -> dict[str, Any]:
    return {"decision": decision, "members": members, "votesFor": votes_for,
            "votesAgainst": members - votes_for, **extra}


async def read_decision(response: Any) -> tuple[etree._Element, dict[str, Any]]:
    assert response.status == 200, await response.text()
    assert response.content_type == "application/xml"
    document = etree.fromstring(await response.read())
    assert DECISION_SCHEMA.validate(document), DECISION_SCHEMA.error_log
    return document, parse_fund_decision(document)


async def receipt_status(client: Any, number: str) -> str:
    response = await client.get(f"{PATH}/{number}")
    assert response.status == 200
    return parse_fund_receipt(await response.read())["status"]


# --- decisions -------------------------------------------------------------------------------------


async def test_include_is_signed_by_the_library_and_due_in_ten_working_days(
    aiohttp_client: Any, library_signer: DocumentSigner, verifier: DocumentVerifier
) -> None:
    client = await client_for(aiohttp_client, library_signer)
    number = await registered(client)
    response = await client.post(f"{PATH}/{number}/decision", json=vote(votes_for=4))
    document, decision = await read_decision(response)

    verified = verifier.verify(document)
    assert verified.report.passed
    assert verified.identity.common_name == "library"
    assert etree.QName(verified.signed).localname == "FundDecision"
    assert decision == {
        "submission_number": number,
        "application_id": "FUND-0001",  # the submission's, repeated: the gateway matches it to the application
        "bin": BIN,
        "participant_name": "Қарағанды облыстық әмбебап ғылыми кітапханасы",
        "decision": "include",
        "members": 5,
        "votes_for": 4,
        "votes_against": 1,
        "decided_at": THURSDAY,
        # Thursday 9 October 2025 + 10 working days: two weekends skipped.
        "inclusion_due_by": date(2025, 10, 23),
        "exclusion_ground": None,
        "reason": None,
        "objects": [{"title": item["title"], "status": "included"} for item in sample_fund_objects()],
    }
    assert document.findtext(f"{{{FUND_DECISION_NS}}}decidedAt").endswith("+05:00")  # Astana time
    assert await receipt_status(client, number) == "included"
    again = await client.get(f"{PATH}/{number}/decision")
    assert again.status == 200
    assert await again.read() == etree.tostring(document, xml_declaration=True, encoding="UTF-8")


async def test_not_include_carries_the_reason(aiohttp_client: Any, library_signer: DocumentSigner,
                                              verifier: DocumentVerifier) -> None:
    client = await client_for(aiohttp_client, library_signer)
    number = await registered(client)
    reason = "  Авторлық шарт   толық жүктеуге рұқсат бермейді. "
    response = await client.post(f"{PATH}/{number}/decision", json=vote("not-include", votes_for=1, reason=reason))
    document, decision = await read_decision(response)
    assert verifier.verify(document).report.passed
    assert decision["decision"] == "not-include"
    assert (decision["votes_for"], decision["votes_against"]) == (1, 4)
    assert decision["reason"] == "Авторлық шарт толық жүктеуге рұқсат бермейді."
    assert decision["inclusion_due_by"] is None
    assert {item["status"] for item in decision["objects"]} == {"not-included"}
    assert await receipt_status(client, number) == "not-included"


async def test_exclusion_after_inclusion_only(aiohttp_client: Any, library_signer: DocumentSigner,
                                              verifier: DocumentVerifier) -> None:
    client = await client_for(aiohttp_client, library_signer)
    number = await registered(client)
    exclusion = {"reason": "rights-withdrawn", "details": "Автор 2025-11-03 хатымен келісімін кері қайтарды."}
    await assert_problem(await client.post(f"{PATH}/{number}/exclude", json=exclusion), 409, "LIB_NOT_INCLUDED")
    await read_decision(await client.post(f"{PATH}/{number}/decision", json=vote(votes_for=3)))

    document, decision = await read_decision(await client.post(f"{PATH}/{number}/exclude", json=exclusion))
    assert verifier.verify(document).report.passed
    assert decision["decision"] == "excluded"
    assert decision["exclusion_ground"] == "rights-withdrawn"
    assert "§13" in decision["reason"] and exclusion["details"] in decision["reason"]
    assert (decision["members"], decision["votes_for"], decision["votes_against"]) == (5, 3, 2)  # the inclusion's
    assert decision["inclusion_due_by"] is None
    assert {item["status"] for item in decision["objects"]} == {"excluded"}
    assert await receipt_status(client, number) == "excluded"
    assert parse_fund_decision(await (await client.get(f"{PATH}/{number}/decision")).read())["decision"] == "excluded"

    duplicate = {"reason": "duplicate"}
    await assert_problem(await client.post(f"{PATH}/{number}/exclude", json=duplicate), 409, "LIB_NOT_INCLUDED")
    kept = client.server.app[LIBRARY_STATE].submissions[number]
    assert [d.decision for d in kept.decisions] == ["include", "excluded"]


async def test_a_not_included_submission_cannot_be_excluded(aiohttp_client: Any) -> None:
    client = await client_for(aiohttp_client, None)
    number = await registered(client)
    refused = vote("not-include", votes_for=2, reason="Қордағы басылымның дублеті.")
    await read_decision(await client.post(f"{PATH}/{number}/decision", json=refused))
    response = await client.post(f"{PATH}/{number}/exclude", json={"reason": "duplicate"})
    await assert_problem(response, 409, "LIB_NOT_INCLUDED")


async def test_without_a_signer_decisions_are_unsigned(aiohttp_client: Any) -> None:
    client = await client_for(aiohttp_client, None)
    number = await registered(client)
    document, decision = await read_decision(await client.post(f"{PATH}/{number}/decision", json=vote()))
    assert document.find(f"{{{DS}}}Signature") is None
    assert decision["decision"] == "include"


# --- working days (§10) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "due"),
    [
        # Friday in Astana (still Thursday in UTC): the Astana date counts.
        pytest.param(datetime(2025, 10, 9, 20, 0, tzinfo=UTC), date(2025, 10, 24), id="astana-friday"),
        # Independence Day, Tuesday 16 December 2025, is skipped as well as two weekends.
        pytest.param(datetime(2025, 12, 10, 10, 0, tzinfo=ASTANA), date(2025, 12, 25), id="independence-day"),
        # Decided on a Saturday: counting starts on Monday.
        pytest.param(datetime(2025, 10, 11, 10, 0, tzinfo=ASTANA), date(2025, 10, 24), id="saturday"),
    ],
)
async def test_inclusion_due_by_skips_weekends_and_holidays(aiohttp_client: Any, now: datetime, due: date) -> None:
    client = await client_for(aiohttp_client, None, now)
    number = await registered(client)
    _, decision = await read_decision(await client.post(f"{PATH}/{number}/decision", json=vote()))
    assert decision["inclusion_due_by"] == due
    assert decision["decided_at"] == now


def test_add_working_days_skips_listed_holidays() -> None:
    # Nauryz 2025: 21-23 March, with the weekend days off moved to Monday 24 and Tuesday 25.
    nauryz = frozenset(date(2025, 3, day) for day in (21, 22, 23, 24, 25))
    assert add_working_days(date(2025, 3, 19), 10, nauryz) == date(2025, 4, 7)
    assert add_working_days(date(2025, 3, 19), 10, frozenset()) == date(2025, 4, 2)
    assert add_working_days(date(2025, 3, 19), 0, nauryz) == date(2025, 3, 19)


def test_the_shared_calendar_has_the_fixed_holidays() -> None:
    holidays = load_holidays()
    assert {date(2025, 1, 1), date(2025, 3, 24), date(2025, 12, 16)} <= holidays  # 24 March: Nauryz observed
    assert date(2025, 10, 9) not in holidays


# --- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param(vote(members=4, votes_for=3), 400, "LIB_COMMISSION_INVALID", id="even-members"),
        pytest.param(vote(members=3, votes_for=2), 400, "LIB_COMMISSION_INVALID", id="three-members"),
        pytest.param(vote(members=101, votes_for=60), 400, "LIB_COMMISSION_INVALID", id="too-many"),
        pytest.param({**vote(), "votesAgainst": 2}, 400, "LIB_DECISION_INCONSISTENT", id="votes-exceed"),
        pytest.param({**vote(), "votesAgainst": 0}, 400, "LIB_DECISION_INCONSISTENT", id="votes-missing"),
        pytest.param(vote("include", votes_for=2), 400, "LIB_DECISION_INCONSISTENT", id="minority-include"),
        pytest.param(vote("not-include", votes_for=3, reason="x"), 400, "LIB_DECISION_INCONSISTENT",
                     id="majority-not-include"),
        pytest.param(vote("not-include", votes_for=0), 400, "LIB_REASON_REQUIRED", id="no-reason"),
        pytest.param(vote("not-include", votes_for=0, reason="  "), 400, "LIB_REASON_REQUIRED", id="blank-reason"),
        pytest.param(vote("maybe"), 400, "LIB_BAD_DECISION_REQUEST", id="bad-decision"),
        pytest.param({**vote(), "members": "5"}, 400, "LIB_BAD_DECISION_REQUEST", id="members-as-string"),
        pytest.param({**vote(), "votesFor": True}, 400, "LIB_BAD_DECISION_REQUEST", id="boolean-vote"),
        pytest.param({**vote(), "votesFor": -1}, 400, "LIB_BAD_DECISION_REQUEST", id="negative-vote"),
        pytest.param({**vote(), "vote": 1}, 400, "LIB_BAD_DECISION_REQUEST", id="unknown-key"),
        pytest.param({**vote(), "reason": 7}, 400, "LIB_BAD_DECISION_REQUEST", id="reason-not-text"),
        pytest.param({**vote(), "reason": "x" * 2001}, 400, "LIB_BAD_DECISION_REQUEST", id="reason-too-long"),
        pytest.param([vote()], 400, "LIB_BAD_DECISION_REQUEST", id="array"),
    ],
)
async def test_invalid_decisions_change_nothing(aiohttp_client: Any, body: Any, status: int, code: str) -> None:
    client = await client_for(aiohttp_client, None)
    number = await registered(client)
    await assert_problem(await client.post(f"{PATH}/{number}/decision", json=body), status, code)
    assert await receipt_status(client, number) == "registered"
    assert client.server.app[LIBRARY_STATE].submissions[number].decisions == []
    await assert_problem(await client.get(f"{PATH}/{number}/decision"), 404, "LIB_DECISION_NOT_FOUND")


async def test_not_json_unknown_submission_and_second_decision(aiohttp_client: Any) -> None:
    client = await client_for(aiohttp_client, None)
    number = await registered(client)
    response = await client.post(f"{PATH}/{number}/decision", data=b"include", headers={"Content-Type": "text/plain"})
    await assert_problem(response, 400, "LIB_BAD_DECISION_REQUEST")
    for path in ("decision", "exclude"):
        response = await client.post(f"{PATH}/KAZNEB-F-2025-999999/{path}", json=vote())
        await assert_problem(response, 404, "LIB_SUBMISSION_NOT_FOUND")
    await assert_problem(await client.get(f"{PATH}/KAZNEB-F-2025-999999/decision"), 404, "LIB_SUBMISSION_NOT_FOUND")
    await read_decision(await client.post(f"{PATH}/{number}/decision", json=vote()))
    second = vote("not-include", votes_for=0, reason="қайта қарау")
    problem = await assert_problem(await client.post(f"{PATH}/{number}/decision", json=second), 409,
                                   "LIB_ALREADY_DECIDED")
    assert "included" in problem["detail"]
    assert await receipt_status(client, number) == "included"


async def test_bad_exclusion_requests(aiohttp_client: Any) -> None:
    client = await client_for(aiohttp_client, None)
    number = await registered(client)
    await read_decision(await client.post(f"{PATH}/{number}/decision", json=vote()))
    for body in ({"reason": "lost"}, {}, {"reason": "duplicate", "details": 5}, {"reason": "duplicate", "x": 1}):
        await assert_problem(await client.post(f"{PATH}/{number}/exclude", json=body), 400, "LIB_BAD_DECISION_REQUEST")
    assert await receipt_status(client, number) == "included"


async def test_injected_faults_apply_to_decisions(aiohttp_client: Any) -> None:
    client = await client_for(aiohttp_client, None)
    number = await registered(client)
    assert (await client.post("/_control/fail", json={"status": 503})).status == 200
    await assert_problem(await client.post(f"{PATH}/{number}/decision", json=vote()), 503, "LIB_INJECTED_FAULT")
    assert await receipt_status(client, number) == "registered"


# --- schema and reader -----------------------------------------------------------------------------


def _decision_xml(members: str = "5", votes_for: str = "5", votes_against: str = "0") -> bytes:
    return f"""<FundDecision xmlns="{FUND_DECISION_NS}"><submissionNumber>KAZNEB-F-2025-000001</submissionNumber>
      <bin>{BIN}</bin><participantName>Абай атындағы музей</participantName><decision>include</decision>
      <commission><members>{members}</members><votesFor>{votes_for}</votesFor>
      <votesAgainst>{votes_against}</votesAgainst></commission><decidedAt>2025-10-09T10:00:00+05:00</decidedAt>
      <inclusionDueBy>2025-10-23</inclusionDueBy><objects><object><title>Абай жолы</title>
      <status>included</status></object></objects><ds:Signature xmlns:ds="{DS}"/></FundDecision>""".encode()


@pytest.mark.parametrize(("members", "valid"), [("5", True), ("7", True), ("99", True), ("4", False),
                                                ("3", False), ("6", False), ("101", False), ("05", True)])
def test_schema_requires_an_odd_commission_of_at_least_five(members: str, valid: bool) -> None:
    assert DECISION_SCHEMA.validate(etree.fromstring(_decision_xml(members))) is valid


def test_parse_fund_decision_reads_bytes_and_rejects_other_documents() -> None:
    decision = parse_fund_decision(_decision_xml())
    assert decision["decided_at"] == THURSDAY
    assert decision["objects"] == [{"title": "Абай жолы", "status": "included"}]
    assert decision["reason"] is None and decision["exclusion_ground"] is None
    with pytest.raises(ValueError, match="FundDecision"):
        parse_fund_decision(submission_body())
