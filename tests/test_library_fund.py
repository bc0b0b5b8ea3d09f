"""KazNEB library mock: participants' fund submissions (rules §4, §5, §7, §13; cooperation agreement)."""

from __future__ import annotations

import importlib.resources
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from lxml import etree

from mocks.library import (
    FUND_RECEIPT_NS,
    FUND_SUBMISSION_NS,
    LIBRARY_STATE,
    build_fund_submission,
    create_library_app,
    parse_fund_receipt,
    sample_fund_objects,
)
from mocks.library.exchange import MAX_BODY_BYTES
from mocks.library.forms import ACCESS_LEVELS, DIGITISATION_FORMATS, FUND_CATEGORIES
from mocks.library.fund import quarter_end
from signing.idnumbers import make_bin
from tests.helpers import DS, XML, assert_problem, kazneb_schema, to_bytes

PATH = "/api/v1/fund/submissions"
NOW = datetime(2025, 5, 14, 8, 0, tzinfo=UTC)


SUBMISSION_SCHEMA = kazneb_schema("fund-submission.xsd")
RECEIPT_SCHEMA = kazneb_schema("fund-receipt.xsd")

BIN_A = make_bin(1999, 3, "resident", "head", 1234)
BIN_B = make_bin(2004, 11, "resident", "head", 42)


def make_object(title: str, pages: int = 10, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "title": title,
        "category": "printed-publication",
        "pages": pages,
        "format": "pdf",
        "access_level": "open-full-download",
        "author_agreement": "АК-2025/100",
    }
    item.update(overrides)
    return item


def submission(bin_: str = BIN_A, objects: list[dict[str, Any]] | None = None, **overrides: Any) -> etree._Element:
    fields: dict[str, Any] = {
        "bin": bin_,
        "participant_name": "Қарағанды облыстық әмбебап ғылыми кітапханасы",
        "kind": "library",
        "head_name": "Әбілқасымова Гүлнар Серікқызы",
        "objects": sample_fund_objects() if objects is None else objects,
        "application_id": "FUND-0001",
        "submitted_at": datetime(2025, 5, 14, 13, 0, tzinfo=timezone(timedelta(hours=5))),
    }
    fields.update(overrides)
    return build_fund_submission(**fields)


def app(now: datetime = NOW) -> Any:
    return create_library_app(clock=lambda: now)


async def post_xml(client: Any, body: bytes | str, headers: dict[str, str] | None = None) -> Any:
    return await client.post(PATH, data=body, headers=headers or XML)


async def read_receipt(response: Any) -> dict[str, Any]:
    assert response.status == 200, await response.text()
    assert response.content_type == "application/xml"
    document = etree.fromstring(await response.read())
    assert RECEIPT_SCHEMA.validate(document), RECEIPT_SCHEMA.error_log
    return parse_fund_receipt(document)


def stored(client: Any) -> dict[str, Any]:
    return client.server.app[LIBRARY_STATE].submissions


# --- forms -----------------------------------------------------------------------------------------


def test_builder_output_is_valid_with_and_without_trailing_signature() -> None:
    document = submission()
    assert document.nsmap[None] == FUND_SUBMISSION_NS
    assert SUBMISSION_SCHEMA.validate(document), SUBMISSION_SCHEMA.error_log
    assert document.findtext(f"{{{FUND_SUBMISSION_NS}}}totalPages") == "560"
    document.set("Id", "fund-1")
    etree.SubElement(document, f"{{{DS}}}Signature")
    assert SUBMISSION_SCHEMA.validate(document), SUBMISSION_SCHEMA.error_log
    etree.SubElement(document, f"{{{DS}}}Signature")
    assert not SUBMISSION_SCHEMA.validate(document)


def test_sample_objects_are_two_kazakh_titles_in_known_vocabularies() -> None:
    objects = sample_fund_objects()
    assert len(objects) == 2
    assert {item["category"] for item in objects} == {"rare-book-or-manuscript", "local-history-literature"}
    for item in objects:
        assert re.search("[әіңғүұқөһ]", item["title"].lower())  # Kazakh-specific letters
        assert item["format"] in DIGITISATION_FORMATS
        assert item["access_level"] in ACCESS_LEVELS
        assert item["author_agreement"]
    objects[0]["title"] = "changed"
    assert sample_fund_objects()[0]["title"] != "changed"  # a fresh list each call


def test_every_category_is_accepted_and_documented_in_kazakh() -> None:
    objects = [make_object(f"Title {n}", category=category) for n, category in enumerate(FUND_CATEGORIES)]
    assert SUBMISSION_SCHEMA.validate(submission(objects=objects)), SUBMISSION_SCHEMA.error_log
    source = (importlib.resources.files("schemas") / "kazneb" / "fund-submission.xsd").read_bytes()
    xsd = etree.fromstring(source)
    q = "{http://www.w3.org/2001/XMLSchema}"
    enums = xsd.find(f"{q}simpleType[@name='FundCategoryType']/{q}restriction").findall(f"{q}enumeration")
    assert tuple(e.get("value") for e in enums) == FUND_CATEGORIES
    for number, enum in enumerate(enums, start=1):
        kazakh = enum.find(f"{q}annotation/{q}documentation[@{{http://www.w3.org/XML/1998/namespace}}lang='kk']")
        assert kazakh is not None and kazakh.text.strip().startswith(f"{number})")


def test_builder_checks_object_keys_and_time_zone() -> None:
    with pytest.raises(ValueError, match="unknown"):
        submission(objects=[{**make_object("A"), "acces_level": "open-read-only"}])
    with pytest.raises(ValueError, match="missing"):
        submission(objects=[{k: v for k, v in make_object("A").items() if k != "author_agreement"}])
    with pytest.raises(ValueError, match="timezone"):
        submission(submitted_at=datetime(2025, 5, 14, 13, 0))


@pytest.mark.parametrize(
    ("day", "end"),
    [
        (date(2025, 1, 1), date(2025, 3, 31)),
        (date(2025, 3, 31), date(2025, 3, 31)),
        (date(2024, 5, 20), date(2024, 6, 30)),
        (date(2025, 7, 1), date(2025, 9, 30)),
        (date(2025, 12, 31), date(2025, 12, 31)),
        (date(2025, 10, 1), date(2025, 12, 31)),
    ],
)
def test_quarter_end(day: date, end: date) -> None:
    assert quarter_end(day) == end


# --- submission ------------------------------------------------------------------------------------


async def test_valid_submission_is_registered_with_a_valid_receipt(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    receipt = await read_receipt(await post_xml(client, to_bytes(submission())))
    assert receipt == {
        "submission_number": "KAZNEB-F-2025-000001",
        "bin": BIN_A,
        "participant_name": "Қарағанды облыстық әмбебап ғылыми кітапханасы",
        "object_count": 2,
        "total_pages": 560,
        "received_at": NOW,
        "status": "registered",
        "commission_due_by": date(2025, 6, 30),
        "application_id": "FUND-0001",
    }
    state = client.server.app[LIBRARY_STATE]
    assert state.submissions_received == 1
    assert state.registrations_received == 0
    kept = state.submissions["KAZNEB-F-2025-000001"]
    assert kept.participant_kind == "library"
    assert kept.head_name == "Әбілқасымова Гүлнар Серікқызы"
    assert [(o.category, o.pages, o.format, o.access_level) for o in kept.objects] == [
        ("rare-book-or-manuscript", 212, "tiff", "open-read-only"),
        ("local-history-literature", 348, "pdf", "first-24-pages"),
    ]
    assert kept.objects[1].year == 2019 and kept.objects[0].year is None


@pytest.mark.parametrize(
    ("now", "due"),
    [
        pytest.param(datetime(2025, 2, 10, 9, 0, tzinfo=UTC), date(2025, 3, 31), id="q1"),
        pytest.param(datetime(2025, 9, 30, 12, 0, tzinfo=UTC), date(2025, 9, 30), id="last-day-of-q3"),
        # 19:30 UTC on 31 March is 00:30 on 1 April in Astana: the library's quarter is already Q2.
        pytest.param(datetime(2025, 3, 31, 19, 30, tzinfo=UTC), date(2025, 6, 30), id="astana-new-quarter"),
        pytest.param(datetime(2025, 12, 31, 19, 30, tzinfo=UTC), date(2026, 3, 31), id="astana-new-year"),
    ],
)
async def test_commission_is_due_by_the_end_of_the_quarter(aiohttp_client: Any, now: datetime, due: date) -> None:
    client = await aiohttp_client(app(now))
    receipt = await read_receipt(await post_xml(client, to_bytes(submission())))
    assert receipt["commission_due_by"] == due
    assert receipt["submission_number"] == f"KAZNEB-F-{now.year}-000001"


async def test_submission_numbers_are_sequential_per_year(aiohttp_client: Any) -> None:
    now = {"value": datetime(2025, 12, 31, 10, 0, tzinfo=UTC)}
    client = await aiohttp_client(create_library_app(clock=lambda: now["value"]))
    numbers = []
    for bin_, title in [(BIN_A, "Бірінші"), (BIN_B, "Екінші"), (BIN_A, "Үшінші")]:
        if title == "Үшінші":
            now["value"] = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
        body = to_bytes(submission(bin_, [make_object(title)]))
        numbers.append((await read_receipt(await post_xml(client, body)))["submission_number"])
    assert numbers == ["KAZNEB-F-2025-000001", "KAZNEB-F-2025-000002", "KAZNEB-F-2026-000001"]


async def test_hundred_objects_are_accepted(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    objects = [make_object(f"Кітап № {n}", pages=100000) for n in range(100)]
    receipt = await read_receipt(await post_xml(client, to_bytes(submission(objects=objects))))
    assert (receipt["object_count"], receipt["total_pages"]) == (100, 10_000_000)


async def test_minimal_submission_without_optional_fields(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    body = to_bytes(submission(objects=[make_object("Өлке тарихы")], application_id=None, kind="museum"))
    receipt = await read_receipt(await post_xml(client, body))
    assert receipt["application_id"] is None
    assert (receipt["object_count"], receipt["total_pages"]) == (1, 10)


async def test_get_submission_by_number(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    await assert_problem(await client.get(f"{PATH}/KAZNEB-F-2025-000001"), 404, "LIB_SUBMISSION_NOT_FOUND")
    posted = await read_receipt(await post_xml(client, to_bytes(submission())))
    fetched = await read_receipt(await client.get(f"{PATH}/{posted['submission_number']}"))
    assert fetched == posted
    await assert_problem(await client.get(f"{PATH}/KAZNEB-F-2025-000002"), 404, "LIB_SUBMISSION_NOT_FOUND")
    await assert_problem(await client.get(f"{PATH}/not-a-number"), 404, "LIB_SUBMISSION_NOT_FOUND")


# --- business checks -------------------------------------------------------------------------------


async def test_total_pages_must_equal_the_sum_of_object_pages(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    document = submission()
    document.find(f"{{{FUND_SUBMISSION_NS}}}totalPages").text = "561"
    assert SUBMISSION_SCHEMA.validate(document)  # only the library can see the mismatch
    problem = await assert_problem(await post_xml(client, to_bytes(document)), 400, "LIB_PAGES_MISMATCH")
    assert "561" in problem["detail"] and "560" in problem["detail"]
    assert stored(client) == {}


async def test_a_title_already_submitted_by_the_same_bin_is_refused(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    first = await read_receipt(await post_xml(client, to_bytes(submission())))
    title = sample_fund_objects()[1]["title"]
    # Same title, different case and spacing, next to a new object: the whole application is refused.
    again = [make_object("Жаңа кітап"), make_object("  " + title.upper().replace(" ", "   "))]
    problem = await assert_problem(
        await post_xml(client, to_bytes(submission(objects=again))), 409, "LIB_DUPLICATE_OBJECT"
    )
    assert first["submission_number"] in problem["detail"]
    assert list(stored(client)) == [first["submission_number"]]
    # Another participant may submit the same title.
    other = await read_receipt(await post_xml(client, to_bytes(submission(BIN_B, [make_object(title)]))))
    assert other["status"] == "registered"


async def test_a_title_repeated_in_one_application_is_refused(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    body = to_bytes(submission(objects=[make_object("Абай жолы"), make_object("абай  жолы", pages=5)]))
    problem = await assert_problem(await post_xml(client, body), 409, "LIB_DUPLICATE_OBJECT")
    assert "more than once" in problem["detail"]
    assert stored(client) == {}


# --- bad input -------------------------------------------------------------------------------------


def _with(change: str, value: str | None) -> bytes:
    """The sample submission with the first element at path ``change`` set to value (None: removed)."""
    document = submission()
    path = "/".join(f"{{{FUND_SUBMISSION_NS}}}{name}" for name in change.split("/"))
    element = document.find(path)
    assert element is not None, change
    if value is None:
        element.getparent().remove(element)
    else:
        element.text = value
    return to_bytes(document)


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        pytest.param(_with("objects/object/category", "poetry"), "category", id="bad-category"),
        pytest.param(_with("objects/object/format", "docx"), "format", id="bad-format"),
        pytest.param(_with("objects/object/format", "PDF"), "format", id="format-uppercase"),
        pytest.param(_with("objects/object/accessLevel", "closed"), "accessLevel", id="bad-access-level"),
        pytest.param(_with("objects/object/authorAgreement", None), "authorAgreement", id="no-author-agreement"),
        pytest.param(_with("objects/object/authorAgreement", "   "), "authorAgreement", id="blank-agreement"),
        pytest.param(_with("objects/object/pages", "0"), "pages", id="zero-pages"),
        pytest.param(_with("objects/object/pages", "100001"), "pages", id="too-many-pages"),
        pytest.param(_with("objects/object/title", "x" * 501), "title", id="title-too-long"),
        pytest.param(_with("objects/object[2]/year", "19"), "year", id="short-year"),
        pytest.param(_with("participant/bin", "99034000123"), "bin", id="bin-11-digits"),
        pytest.param(_with("participant/kind", "school"), "kind", id="bad-kind"),
        pytest.param(_with("headName", None), "headName", id="no-head"),
        pytest.param(_with("submittedAt", "2025-05-14T13:00:00"), "submittedAt", id="no-time-zone"),
        pytest.param(to_bytes(submission(objects=[])), "objects", id="zero-objects"),
        pytest.param(
            to_bytes(submission(objects=[make_object(f"Кітап {n}") for n in range(101)])),
            "object",
            id="101-objects",
        ),
        pytest.param(
            to_bytes(submission()).replace(FUND_SUBMISSION_NS.encode(), b"urn:other"),
            "FundSubmission",
            id="wrong-namespace",
        ),
        pytest.param(b"<FundSubmission", "well-formed", id="not-well-formed"),
    ],
)
async def test_invalid_documents_are_rejected(aiohttp_client: Any, body: bytes, mentions: str) -> None:
    client = await aiohttp_client(app())
    problem = await assert_problem(await post_xml(client, body), 400, "LIB_INVALID_DOCUMENT")
    assert mentions in problem["detail"]
    assert stored(client) == {}


async def test_signed_document_is_rejected(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    document = submission()
    etree.SubElement(document, f"{{{DS}}}Signature")
    problem = await assert_problem(await post_xml(client, to_bytes(document)), 400, "LIB_INVALID_DOCUMENT")
    assert "Signature" in problem["detail"]
    assert stored(client) == {}


_BODY = to_bytes(submission()).decode().split("?>", 1)[1]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + _BODY.replace("FUND-0001", "&xxe;"),
            id="external-entity",
        ),
        pytest.param('<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">' + _BODY, id="external-dtd"),
        pytest.param('<!DOCTYPE r [<!ENTITY id "FUND-0001">]>' + _BODY.replace("FUND-0001", "&id;"), id="internal"),
    ],
)
async def test_doctype_is_refused(aiohttp_client: Any, body: str) -> None:
    client = await aiohttp_client(app())
    problem = await assert_problem(await post_xml(client, body.encode()), 400, "LIB_INVALID_DOCUMENT")
    assert "DOCTYPE" in problem["detail"]
    assert "root:" not in problem["detail"]
    assert stored(client) == {}


async def test_wrong_content_type_and_oversize_body(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    body = to_bytes(submission())
    await assert_problem(
        await post_xml(client, body, {"Content-Type": "application/json"}), 415, "LIB_UNSUPPORTED_MEDIA_TYPE"
    )
    oversize = body + b"<!--" + b"x" * (MAX_BODY_BYTES - len(body)) + b"-->"
    await assert_problem(await post_xml(client, oversize), 413, "LIB_PAYLOAD_TOO_LARGE")
    accepted = await post_xml(client, body, {"Content-Type": "text/xml; charset=utf-8"})
    assert (await read_receipt(accepted))["status"] == "registered"


# --- fault injection -------------------------------------------------------------------------------


async def test_injected_failures_apply_to_fund_routes(aiohttp_client: Any) -> None:
    client = await aiohttp_client(app())
    assert (await client.post("/_control/fail", json={"status": 503, "count": 2})).status == 200
    failed = await post_xml(client, to_bytes(submission()))
    await assert_problem(failed, 503, "LIB_INJECTED_FAULT")
    assert failed.headers["Retry-After"] == "1"
    await assert_problem(await client.get(f"{PATH}/KAZNEB-F-2025-000001"), 503, "LIB_INJECTED_FAULT")
    state = client.server.app[LIBRARY_STATE]
    assert state.submissions_received == 0 and state.submissions == {}
    receipt = await read_receipt(await post_xml(client, to_bytes(submission())))
    assert receipt["submission_number"] == "KAZNEB-F-2025-000001"
    assert (await client.post("/_control/fail", json={"status": 500})).status == 200
    await assert_problem(await client.get(f"{PATH}/{receipt['submission_number']}"), 500, "LIB_INJECTED_FAULT")
    await read_receipt(await client.get(f"{PATH}/{receipt['submission_number']}"))


# --- reading receipts ------------------------------------------------------------------------------


def test_parse_fund_receipt_reads_a_signed_receipt_from_bytes() -> None:
    source = f"""<FundSubmissionReceipt xmlns="{FUND_RECEIPT_NS}" Id="r1">
      <submissionNumber>KAZNEB-F-2025-000042</submissionNumber><bin>{BIN_A}</bin>
      <participantName>Абай атындағы музей</participantName><objectCount>3</objectCount>
      <totalPages>900</totalPages><receivedAt>2025-05-14T08:00:00Z</receivedAt>
      <status>included</status><commissionDueBy>2025-06-30</commissionDueBy>
      <ds:Signature xmlns:ds="{DS}"/></FundSubmissionReceipt>"""
    assert RECEIPT_SCHEMA.validate(etree.fromstring(source.encode())), RECEIPT_SCHEMA.error_log
    receipt = parse_fund_receipt(source.encode())
    assert receipt["submission_number"] == "KAZNEB-F-2025-000042"
    assert (receipt["object_count"], receipt["total_pages"]) == (3, 900)
    assert receipt["received_at"] == NOW
    assert receipt["status"] == "included"
    assert receipt["commission_due_by"] == date(2025, 6, 30)
    assert receipt["application_id"] is None
    with pytest.raises(ValueError, match="FundSubmissionReceipt"):
        parse_fund_receipt(to_bytes(submission()))
