"""KazNEB library mock: registration, the single ticket per IIN, input hardening, fault injection."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest
from lxml import etree

from mocks.library import (
    READER_REGISTRATION_NS,
    READER_TICKET_NS,
    build_reader_registration,
    create_library_app,
    parse_ticket,
)
from mocks.library.app import ACCESS_RIGHTS, LIBRARY_NAME
from mocks.library.exchange import MAX_BODY_BYTES
from tests.helpers import DS, XML, assert_problem, kazneb_schema, to_bytes

TICKET_SCHEMA = kazneb_schema("reader-ticket.xsd")
REGISTRATION_SCHEMA = kazneb_schema("reader-registration.xsd")


def make_iin(first_eleven: str) -> str:
    """Append the IIN check digit (two weight rounds, as the national rule says)."""
    digits = [int(c) for c in first_eleven]
    for weights in (range(1, 12), [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]):
        check = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if check != 10:
            return first_eleven + str(check)
    raise ValueError("no valid check digit for this prefix")


IIN_A = make_iin("88010130012")
IIN_B = make_iin("95061240034")
IIN_C = make_iin("01022350078")


def registration(iin: str = IIN_A, **overrides: Any) -> etree._Element:
    fields: dict[str, Any] = {
        "iin": iin,
        "surname": "Сейітқали",
        "given_name": "Әйгерім",
        "patronymic": "Нұрланқызы",
        "birth_date": date(1988, 1, 1),
        "email": "aigerim@example.kz",
        "phone": "+77011234567",
        "reader_category": "student",
        "language": "kk",
        "application_id": "APP-0001",
        "submitted_at": datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
    }
    fields.update(overrides)
    return build_reader_registration(**fields)


async def post_xml(client: Any, body: bytes | str, headers: dict[str, str] | None = None) -> Any:
    return await client.post("/api/v1/readers", data=body, headers=headers or XML)


async def read_ticket(response: Any) -> dict[str, Any]:
    assert response.status == 200, await response.text()
    assert response.content_type == "application/xml"
    document = etree.fromstring(await response.read())
    assert TICKET_SCHEMA.validate(document), TICKET_SCHEMA.error_log
    return parse_ticket(document)


# --- forms -----------------------------------------------------------------------------------------


def test_builder_output_is_valid_with_and_without_trailing_signature() -> None:
    document = registration(address="Астана, Қабанбай батыр даңғылы, 1")
    assert document.nsmap[None] == READER_REGISTRATION_NS
    assert REGISTRATION_SCHEMA.validate(document), REGISTRATION_SCHEMA.error_log
    # The portal appends an enveloped ds:Signature: the same schema must accept the signed form...
    etree.SubElement(document, f"{{{DS}}}Signature")
    assert REGISTRATION_SCHEMA.validate(document)
    # ...but not two signatures.
    etree.SubElement(document, f"{{{DS}}}Signature")
    assert not REGISTRATION_SCHEMA.validate(document)


def test_builder_rejects_naive_submission_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        registration(submitted_at=datetime(2025, 3, 1, 9, 30))


def test_minimal_registration_is_valid() -> None:
    document = build_reader_registration(
        iin=IIN_B,
        surname="Ли",
        given_name="Анна",
        patronymic=None,
        birth_date=date(1995, 6, 12),
        email="a@b.kz",
    )
    assert REGISTRATION_SCHEMA.validate(document), REGISTRATION_SCHEMA.error_log


# --- registration ----------------------------------------------------------------------------------


async def test_health(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_registration_issues_a_valid_ticket(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    ticket = await read_ticket(await post_xml(client, to_bytes(registration())))
    assert re.fullmatch(r"KAZNEB-\d{4}-\d{8}", ticket["ticket_number"])
    assert ticket["ticket_number"].startswith(f"KAZNEB-{datetime.now(UTC).year}-")
    assert ticket["status"] == "issued"
    assert ticket["iin"] == IIN_A
    assert ticket["holder_name"] == "Сейітқали Әйгерім Нұрланқызы"
    assert ticket["reader_category"] == "student"
    assert ticket["issuer"] == LIBRARY_NAME
    assert ticket["access_rights"] == list(ACCESS_RIGHTS)
    assert ticket["valid_until"] is None  # perpetual
    assert ticket["application_id"] == "APP-0001"
    assert ticket["issued_at"].tzinfo is not None


async def test_second_registration_returns_the_same_single_ticket(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    first = await read_ticket(await post_xml(client, to_bytes(registration())))
    again = registration(application_id="APP-0002", reader_category="researcher", given_name="Другое")
    second = await read_ticket(await post_xml(client, to_bytes(again)))
    assert second["status"] == "already-issued"
    assert second["ticket_number"] == first["ticket_number"]
    assert second["issued_at"] == first["issued_at"]
    # The ticket is unchanged; only the correlation id follows the current request.
    assert second["holder_name"] == first["holder_name"]
    assert second["reader_category"] == "student"
    assert second["application_id"] == "APP-0002"


async def test_concurrent_registrations_of_one_iin_issue_one_ticket(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    body = to_bytes(registration())
    tickets = [
        await read_ticket(r) for r in await asyncio.gather(*(post_xml(client, body) for _ in range(8)))
    ]
    assert {t["ticket_number"] for t in tickets} == {tickets[0]["ticket_number"]}
    assert sorted(t["status"] for t in tickets) == ["already-issued"] * 7 + ["issued"]


async def test_ticket_numbers_are_sequential_per_year(aiohttp_client: Any) -> None:
    now = {"value": datetime(2025, 12, 31, 23, 0, tzinfo=UTC)}
    client = await aiohttp_client(create_library_app(clock=lambda: now["value"]))
    a = await read_ticket(await post_xml(client, to_bytes(registration(IIN_A))))
    b = await read_ticket(await post_xml(client, to_bytes(registration(IIN_B))))
    now["value"] = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    c = await read_ticket(await post_xml(client, to_bytes(registration(IIN_C))))
    assert [a["ticket_number"], b["ticket_number"], c["ticket_number"]] == [
        "KAZNEB-2025-00000001",
        "KAZNEB-2025-00000002",
        "KAZNEB-2026-00000001",
    ]


async def test_get_reader_by_iin(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    await assert_problem(await client.get(f"/api/v1/readers/{IIN_A}"), 404, "LIB_READER_NOT_FOUND")
    issued = await read_ticket(await post_xml(client, to_bytes(registration())))
    await post_xml(client, to_bytes(registration(application_id="APP-0002")))
    stored = await read_ticket(await client.get(f"/api/v1/readers/{IIN_A}"))
    assert stored["ticket_number"] == issued["ticket_number"]
    assert stored["status"] == "issued"
    assert stored["application_id"] == "APP-0001"
    await assert_problem(await client.get(f"/api/v1/readers/{IIN_B}"), 404, "LIB_READER_NOT_FOUND")


# --- bad input -------------------------------------------------------------------------------------


def _set(name: str, value: str | None) -> bytes:
    document = registration()
    element = document.find(f"{{{READER_REGISTRATION_NS}}}{name}")
    assert element is not None
    if value is None:
        document.remove(element)
    else:
        element.text = value
    return to_bytes(document)


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        pytest.param(_set("iin", "12345678901"), "iin", id="iin-11-digits"),
        pytest.param(_set("iin", "8801013OO123"), "iin", id="iin-letters"),
        pytest.param(_set("consentPersonalData", "false"), "consentPersonalData", id="consent-false"),
        pytest.param(_set("consentPersonalData", "1"), "consentPersonalData", id="consent-1"),
        pytest.param(_set("email", None), "email", id="missing-email"),
        pytest.param(_set("email", "not-an-email"), "email", id="bad-email"),
        pytest.param(_set("phone", "87011234567"), "phone", id="bad-phone"),
        pytest.param(_set("readerCategory", "vip"), "readerCategory", id="bad-category"),
        pytest.param(_set("submittedAt", "2025-03-01T09:30:00"), "submittedAt", id="no-time-zone"),
        pytest.param(
            to_bytes(registration()).replace(READER_REGISTRATION_NS.encode(), b"urn:other"),
            "ReaderRegistration",
            id="wrong-namespace",
        ),
        pytest.param(b"<ReaderRegistration", "well-formed", id="not-well-formed"),
        pytest.param(b"", "well-formed", id="empty"),
    ],
)
async def test_invalid_documents_are_rejected(aiohttp_client: Any, body: bytes, mentions: str) -> None:
    client = await aiohttp_client(create_library_app())
    problem = await assert_problem(await post_xml(client, body), 400, "LIB_INVALID_DOCUMENT")
    assert mentions in problem["detail"]
    # Nothing was registered.
    await assert_problem(await client.get(f"/api/v1/readers/{IIN_A}"), 404, "LIB_READER_NOT_FOUND")


async def test_signed_document_is_rejected_because_only_the_business_document_may_be_forwarded(
    aiohttp_client: Any,
) -> None:
    client = await aiohttp_client(create_library_app())
    document = registration()
    etree.SubElement(document, f"{{{DS}}}Signature")
    problem = await assert_problem(await post_xml(client, to_bytes(document)), 400, "LIB_INVALID_DOCUMENT")
    assert "Signature" in problem["detail"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "application/x-www-form-urlencoded"]
)
async def test_wrong_content_type(aiohttp_client: Any, content_type: str) -> None:
    client = await aiohttp_client(create_library_app())
    response = await post_xml(client, to_bytes(registration()), {"Content-Type": content_type})
    await assert_problem(response, 415, "LIB_UNSUPPORTED_MEDIA_TYPE")


async def test_text_xml_with_charset_is_accepted(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    response = await post_xml(client, to_bytes(registration()), {"Content-Type": "text/xml; charset=utf-8"})
    assert (await read_ticket(response))["status"] == "issued"


def _padded(size: int) -> bytes:
    """A valid registration grown to exactly `size` bytes by a comment after the root element."""
    body = to_bytes(registration())
    return body + b"<!--" + b"x" * (size - len(body) - 7) + b"-->"


def _oversize() -> bytes:
    return _padded(MAX_BODY_BYTES + 1)


async def test_oversize_body_with_content_length(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    await assert_problem(await post_xml(client, _oversize()), 413, "LIB_PAYLOAD_TOO_LARGE")


async def test_oversize_chunked_body(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    body = _oversize()

    async def chunks() -> Any:  # no Content-Length: the limit must hold while streaming
        for start in range(0, len(body), 32 * 1024):
            yield body[start : start + 32 * 1024]

    await assert_problem(await post_xml(client, chunks()), 413, "LIB_PAYLOAD_TOO_LARGE")


async def test_body_at_the_limit_is_accepted(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    body = _padded(MAX_BODY_BYTES)
    assert len(body) == MAX_BODY_BYTES
    assert (await read_ticket(await post_xml(client, body)))["status"] == "issued"


_REGISTRATION_WITH_EMAIL = to_bytes(registration()).decode().split("?>", 1)[1]

XXE_DOCUMENTS = {
    "external-entity": (
        '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        + _REGISTRATION_WITH_EMAIL.replace("aigerim@example.kz", "&xxe;")
    ),
    "parameter-entity": (
        '<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>' + _REGISTRATION_WITH_EMAIL
    ),
    "external-dtd": '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">' + _REGISTRATION_WITH_EMAIL,
    "billion-laughs": (
        '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
        + _REGISTRATION_WITH_EMAIL.replace("Сейітқали", "&d;")
    ),
    "harmless-internal-entity": (
        '<!DOCTYPE r [<!ENTITY mail "aigerim@example.kz">]>'
        + _REGISTRATION_WITH_EMAIL.replace("aigerim@example.kz", "&mail;")
    ),
}


@pytest.mark.parametrize("name", sorted(XXE_DOCUMENTS))
async def test_dtd_and_entities_are_rejected_unresolved(aiohttp_client: Any, name: str) -> None:
    client = await aiohttp_client(create_library_app())
    response = await post_xml(client, XXE_DOCUMENTS[name].encode())
    problem = await assert_problem(response, 400, "LIB_INVALID_DOCUMENT")
    assert "DOCTYPE" in problem["detail"]
    assert "root:" not in problem["detail"]  # /etc/passwd never made it in
    await assert_problem(await client.get(f"/api/v1/readers/{IIN_A}"), 404, "LIB_READER_NOT_FOUND")


# --- fault injection -------------------------------------------------------------------------------


async def test_injected_failures_then_recovery(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    response = await client.post("/_control/fail", json={"status": 503, "count": 2})
    assert response.status == 200
    assert (await response.json())["count"] == 2
    body = to_bytes(registration())
    for _ in range(2):
        failed = await post_xml(client, body)
        await assert_problem(failed, 503, "LIB_INJECTED_FAULT")
        assert failed.headers["Retry-After"] == "1"
    assert (await client.get("/health")).status == 200  # health is never faulted
    # The failed requests registered nothing: the third one issues the ticket.
    assert (await read_ticket(await post_xml(client, body)))["status"] == "issued"


async def test_injected_failure_applies_to_reads_and_reset_clears_it(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    assert (await client.post("/_control/fail", json={"status": 500, "count": 5})).status == 200
    await assert_problem(await client.get(f"/api/v1/readers/{IIN_A}"), 500, "LIB_INJECTED_FAULT")
    assert (await client.post("/_control/reset")).status == 200
    await assert_problem(await client.get(f"/api/v1/readers/{IIN_A}"), 404, "LIB_READER_NOT_FOUND")


async def test_injected_delay(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_library_app())
    assert (await client.post("/_control/fail", json={"delay": 0.3})).status == 200
    started = time.monotonic()
    await read_ticket(await post_xml(client, to_bytes(registration())))
    assert time.monotonic() - started >= 0.3
    await client.post("/_control/reset")
    started = time.monotonic()
    await read_ticket(await client.get(f"/api/v1/readers/{IIN_A}"))
    assert time.monotonic() - started < 0.3


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"status": 200},
        {"status": "503"},
        {"status": True},
        {"status": 503, "count": 0},
        {"delay": -1},
        [],
    ],
)
async def test_bad_control_requests(aiohttp_client: Any, payload: Any) -> None:
    client = await aiohttp_client(create_library_app())
    await assert_problem(await client.post("/_control/fail", json=payload), 400, "LIB_BAD_CONTROL_REQUEST")


# --- reading tickets -------------------------------------------------------------------------------


def test_parse_ticket_reads_a_signed_ticket_from_bytes() -> None:
    source = f"""<ReaderTicket xmlns="{READER_TICKET_NS}">
      <ticketNumber>KAZNEB-2025-00000042</ticketNumber><iin>{IIN_A}</iin>
      <holderName>Сейітқали Әйгерім</holderName><readerCategory>individual</readerCategory>
      <issuedAt>2025-03-01T09:30:00Z</issuedAt><validUntil>2030-03-01</validUntil>
      <issuer>{LIBRARY_NAME}</issuer>
      <accessRights><accessRight>open-read-only</accessRight></accessRights>
      <status>issued</status><ds:Signature xmlns:ds="{DS}"/></ReaderTicket>"""
    assert TICKET_SCHEMA.validate(etree.fromstring(source.encode()))
    ticket = parse_ticket(source.encode())
    assert ticket["ticket_number"] == "KAZNEB-2025-00000042"
    assert ticket["issued_at"] == datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    assert ticket["valid_until"] == date(2030, 3, 1)
    assert ticket["access_rights"] == ["open-read-only"]
    assert ticket["application_id"] is None
    with pytest.raises(ValueError, match="ReaderTicket"):
        parse_ticket(to_bytes(registration()))


async def test_tickets_and_the_counter_survive_a_restart(aiohttp_client: Any, tmp_path: Any) -> None:
    # Issue 16: a restarted demo library gave a second reader KAZNEB-2026-00000001 again.
    from mocks.statefile import StateFile

    store = StateFile(tmp_path / "world" / "library.json")
    first = await aiohttp_client(create_library_app(store=store))
    a = await read_ticket(await post_xml(first, to_bytes(registration(IIN_A))))
    restarted = await aiohttp_client(create_library_app(store=store))
    again = await read_ticket(await post_xml(restarted, to_bytes(registration(IIN_A))))
    assert (again["ticket_number"], again["status"]) == (a["ticket_number"], "already-issued")
    b = await read_ticket(await post_xml(restarted, to_bytes(registration(IIN_B))))
    assert int(b["ticket_number"][-8:]) == int(a["ticket_number"][-8:]) + 1, "the counter went on"
    assert not list(store.path.parent.glob("*.tmp")), "written by rename, no temporary file left"


async def test_a_damaged_library_file_stops_the_start(tmp_path: Any) -> None:
    from mocks.statefile import StateFile, StateFileError

    store = StateFile(tmp_path / "library.json")
    store.path.write_text("{not json")
    with pytest.raises(StateFileError, match=r"cannot read .*library\.json.*--fresh"):
        create_library_app(store=store)
