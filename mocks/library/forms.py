"""Build KazNEB reader registrations and read reader tickets.

Used by the CLI, the tests and the mock portal to make sample applications, and by tests to read
the library's answer. The documents follow ``schemas/kazneb/reader-registration.xsd`` and
``schemas/kazneb/reader-ticket.xsd``; nothing here signs anything (the portal adds the applicant's
enveloped ds:Signature, the gateway signs the ticket).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from lxml import etree

READER_REGISTRATION_NS = "urn:egov:kazneb:reader-registration:v1"
READER_TICKET_NS = "urn:egov:kazneb:reader-ticket:v1"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

READER_CATEGORIES = ("individual", "student", "researcher", "library_staff")
LANGUAGES = ("kk", "ru", "en")


def safe_xml_parser() -> etree.XMLParser:
    """A parser that never loads a DTD, resolves an entity or touches the network.

    A new parser per call: lxml parsers keep state and must not be shared across threads.
    Whitespace is kept as is, because stripping it would break signature digests.
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )


def _xml_datetime(value: datetime) -> str:
    """ISO 8601 with an explicit offset, whole seconds (the schemas reject local times)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("submitted_at must be timezone-aware")
    return value.replace(microsecond=0).isoformat()


def build_reader_registration(
    *,
    iin: str,
    surname: str,
    given_name: str,
    patronymic: str | None,
    birth_date: date,
    email: str,
    phone: str | None = None,
    reader_category: str = "individual",
    language: str = "kk",
    application_id: str | None = None,
    submitted_at: datetime | None = None,
    address: str | None = None,
) -> etree._Element:
    """Build an unsigned ``ReaderRegistration`` element.

    Values are written as given (the schema, not this builder, is the judge of validity), except
    that ``consentPersonalData`` is always ``true``: an application without consent cannot exist.
    ``submitted_at`` defaults to now (UTC) and must be timezone-aware.
    """
    when = submitted_at if submitted_at is not None else datetime.now(UTC)
    ns = READER_REGISTRATION_NS
    root = etree.Element(f"{{{ns}}}ReaderRegistration", nsmap={None: ns})

    def add(name: str, text: str | None) -> None:
        if text is not None:
            etree.SubElement(root, f"{{{ns}}}{name}").text = text

    # Order matters: the schema is an xsd:sequence.
    add("applicationId", application_id)
    add("iin", iin)
    add("surname", surname)
    add("givenName", given_name)
    add("patronymic", patronymic)
    add("birthDate", birth_date.isoformat())
    add("email", email)
    add("phone", phone)
    add("address", address)
    add("readerCategory", reader_category)
    add("preferredLanguage", language)
    add("consentPersonalData", "true")
    add("submittedAt", _xml_datetime(when))
    return root


def _as_element(element_or_bytes: etree._Element | etree._ElementTree | bytes | str) -> etree._Element:
    if isinstance(element_or_bytes, etree._ElementTree):
        return element_or_bytes.getroot()
    if isinstance(element_or_bytes, etree._Element):
        return element_or_bytes
    data = element_or_bytes.encode("utf-8") if isinstance(element_or_bytes, str) else element_or_bytes
    return etree.fromstring(data, safe_xml_parser())


def _parse_datetime(text: str) -> datetime:
    # fromisoformat in 3.11 accepts "Z" and offsets alike.
    return datetime.fromisoformat(text)


def parse_ticket(element_or_bytes: etree._Element | etree._ElementTree | bytes | str) -> dict[str, Any]:
    """Read a ``ReaderTicket`` (signed or not) into a dict.

    Keys: ``ticket_number``, ``iin``, ``holder_name``, ``reader_category``, ``issued_at``
    (aware ``datetime``), ``valid_until`` (``date`` or ``None`` for a perpetual ticket), ``issuer``,
    ``access_rights`` (list of str), ``application_id`` (str or ``None``), ``status``.
    This is a reader, not a validator: validate against reader-ticket.xsd first where it matters.
    Raises ``ValueError`` if the root is not a ReaderTicket.
    """
    root = _as_element(element_or_bytes)
    ns = READER_TICKET_NS
    if root.tag != f"{{{ns}}}ReaderTicket":
        raise ValueError(f"not a ReaderTicket: {root.tag}")

    def text(name: str) -> str | None:
        child = root.find(f"{{{ns}}}{name}")
        return None if child is None or child.text is None else child.text.strip()

    def required(name: str) -> str:
        value = text(name)
        if value is None:
            raise ValueError(f"ReaderTicket has no {name}")
        return value

    valid_until = text("validUntil")
    return {
        "ticket_number": required("ticketNumber"),
        "iin": required("iin"),
        "holder_name": required("holderName"),
        "reader_category": required("readerCategory"),
        "issued_at": _parse_datetime(required("issuedAt")),
        "valid_until": date.fromisoformat(valid_until) if valid_until else None,
        "issuer": required("issuer"),
        "access_rights": [
            (right.text or "").strip() for right in root.iterfind(f"{{{ns}}}accessRights/{{{ns}}}accessRight")
        ],
        "application_id": text("applicationId"),
        "status": required("status"),
    }
