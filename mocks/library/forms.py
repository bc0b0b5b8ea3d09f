"""Build KazNEB reader registrations and fund submissions; read reader tickets, fund receipts and decisions.

Used by the CLI, the tests and the mock portal to make sample applications, and by tests to read
the library's answer. The documents follow ``schemas/kazneb/reader-registration.xsd``,
``reader-ticket.xsd``, ``fund-submission.xsd``, ``fund-receipt.xsd`` and ``fund-decision.xsd``;
nothing here signs anything (the portal adds the applicant's enveloped ds:Signature, the gateway
or the library signs the answer).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from lxml import etree

READER_REGISTRATION_NS = "urn:egov:kazneb:reader-registration:v1"
READER_TICKET_NS = "urn:egov:kazneb:reader-ticket:v1"
FUND_SUBMISSION_NS = "urn:egov:kazneb:fund-submission:v1"
FUND_RECEIPT_NS = "urn:egov:kazneb:fund-receipt:v1"
FUND_DECISION_NS = "urn:egov:kazneb:fund-decision:v1"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

READER_CATEGORIES = ("individual", "student", "researcher", "library_staff")
LANGUAGES = ("kk", "ru", "en")

PARTICIPANT_KINDS = ("library", "museum", "archive")
"KazNEB participants (rules §2 2)): Kazakhstan's libraries, museums and archives."
FUND_CATEGORIES = (
    "printed-publication",
    "rare-book-or-manuscript",
    "socially-significant-literature",
    "legal-deposit-copy",
    "research-report-or-dissertation",
    "local-history-literature",
    "special-edition-for-visually-impaired",
    "copyright-protected-copy",
)
"The eight categories of fund objects of rules §4, in the order of the rules."
DIGITISATION_FORMATS = ("tiff", "pdf", "jpeg")
ACCESS_LEVELS = ("open-full-download", "open-read-only", "first-24-pages")
"The three access levels a partner chooses per document (cooperation agreement)."


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


class _Fields:
    """Reads the child texts of a result document, failing clearly when it is not one or a field is missing."""

    def __init__(self, element_or_bytes: etree._Element | etree._ElementTree | bytes | str, ns: str, kind: str,
                 *, normalize: bool = False) -> None:
        self.root = _as_element(element_or_bytes)
        if self.root.tag != f"{{{ns}}}{kind}":
            raise ValueError(f"not a {kind}: {self.root.tag}")
        self.ns, self.kind, self.normalize = ns, kind, normalize

    def text(self, name: str, parent: etree._Element | None = None) -> str | None:
        child = (self.root if parent is None else parent).find(f"{{{self.ns}}}{name}")
        if child is None or child.text is None:
            return None
        return " ".join(child.text.split()) if self.normalize else child.text.strip()

    def required(self, name: str, parent: etree._Element | None = None) -> str:
        value = self.text(name, parent)
        if value is None:
            raise ValueError(f"{self.kind} has no {name}")
        return value


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
    fields = _Fields(element_or_bytes, READER_TICKET_NS, "ReaderTicket")
    root, ns, text, required = fields.root, fields.ns, fields.text, fields.required

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


_OBJECT_FIELDS = ("title", "category", "pages", "format", "access_level", "author_agreement")
_OPTIONAL_OBJECT_FIELDS = ("author", "year")


def build_fund_submission(
    *,
    bin: str,  # shadows the builtin on purpose: the domain calls it BIN
    participant_name: str,
    kind: str,
    head_name: str,
    objects: list[dict[str, Any]],
    application_id: str | None = None,
    submitted_at: datetime | None = None,
) -> etree._Element:
    """Build an unsigned ``FundSubmission`` element (the appendix form of the KazNEB rules).

    Each object is a dict with ``title``, ``category``, ``pages``, ``format``, ``access_level``,
    ``author_agreement`` and optionally ``author`` and ``year`` (``None`` means absent); any other
    key raises ``ValueError``, so a typo cannot silently drop a field. ``totalPages`` is the sum of
    the objects' pages. Values are otherwise written as given: the schema is the judge of
    validity, so an empty ``objects`` list builds an (invalid) empty ``objects`` element.
    ``submitted_at`` defaults to now (UTC) and must be timezone-aware.
    """
    when = submitted_at if submitted_at is not None else datetime.now(UTC)
    ns = FUND_SUBMISSION_NS
    root = etree.Element(f"{{{ns}}}FundSubmission", nsmap={None: ns})

    def add(parent: etree._Element, name: str, text: object) -> etree._Element:
        child = etree.SubElement(parent, f"{{{ns}}}{name}")
        child.text = str(text)
        return child

    # Order matters: the schema is an xsd:sequence.
    if application_id is not None:
        add(root, "applicationId", application_id)
    participant = etree.SubElement(root, f"{{{ns}}}participant")
    add(participant, "bin", bin)
    add(participant, "name", participant_name)
    add(participant, "kind", kind)
    container = etree.SubElement(root, f"{{{ns}}}objects")
    total = 0
    for index, item in enumerate(objects):
        missing = [key for key in _OBJECT_FIELDS if key not in item]
        unknown = sorted(item.keys() - {*_OBJECT_FIELDS, *_OPTIONAL_OBJECT_FIELDS})
        if missing or unknown:
            raise ValueError(f"object {index}: missing {missing}, unknown {unknown}")
        element = etree.SubElement(container, f"{{{ns}}}object")
        add(element, "title", item["title"])
        add(element, "category", item["category"])
        add(element, "pages", item["pages"])
        add(element, "format", item["format"])
        add(element, "accessLevel", item["access_level"])
        add(element, "authorAgreement", item["author_agreement"])
        if item.get("author") is not None:
            add(element, "author", item["author"])
        if item.get("year") is not None:
            year = item["year"]
            add(element, "year", f"{year:04d}" if isinstance(year, int) else year)
        total += int(item["pages"])
    add(root, "totalPages", total)
    add(root, "headName", head_name)
    add(root, "submittedAt", _xml_datetime(when))
    return root


def sample_fund_objects() -> list[dict[str, Any]]:
    """Two realistic fund objects for samples and tests (a new list each call, safe to modify).

    A rare manuscript collection offered read-only as TIFF scans, and a local-history book offered
    with its first 24 pages as PDF; both carry the reference of their author's agreement.
    """
    return [
        {
            "title": "Мәшһүр Жүсіп Көпейұлы. Қолжазбалар жинағы",
            "category": "rare-book-or-manuscript",
            "pages": 212,
            "format": "tiff",
            "access_level": "open-read-only",
            "author_agreement": "АК-2025/017",
            "author": "Мәшһүр Жүсіп Көпейұлы",
        },
        {
            "title": "Ақмола өңірінің тарихы: өлкетану очерктері",
            "category": "local-history-literature",
            "pages": 348,
            "format": "pdf",
            "access_level": "first-24-pages",
            "author_agreement": "АК-2025/018",
            "author": "Жұмабаев Ә. Қ.",
            "year": 2019,
        },
    ]


def parse_fund_receipt(element_or_bytes: etree._Element | etree._ElementTree | bytes | str) -> dict[str, Any]:
    """Read a ``FundSubmissionReceipt`` (signed or not) into a dict.

    Keys: ``submission_number``, ``bin``, ``participant_name``, ``object_count`` and
    ``total_pages`` (int), ``received_at`` (aware ``datetime``), ``status``, ``commission_due_by``
    (``date``), ``application_id`` (str or ``None``).
    This is a reader, not a validator: validate against fund-receipt.xsd first where it matters.
    Raises ``ValueError`` if the root is not a FundSubmissionReceipt.
    """
    fields = _Fields(element_or_bytes, FUND_RECEIPT_NS, "FundSubmissionReceipt")
    text, required = fields.text, fields.required

    return {
        "submission_number": required("submissionNumber"),
        "bin": required("bin"),
        "participant_name": required("participantName"),
        "object_count": int(required("objectCount")),
        "total_pages": int(required("totalPages")),
        "received_at": _parse_datetime(required("receivedAt")),
        "status": required("status"),
        "commission_due_by": date.fromisoformat(required("commissionDueBy")),
        "application_id": text("applicationId"),
    }


def parse_fund_decision(element_or_bytes: etree._Element | etree._ElementTree | bytes | str) -> dict[str, Any]:
    """Read a ``FundDecision`` (signed or not) into a dict.

    Keys: ``submission_number``, ``application_id`` (str or ``None``), ``bin``, ``participant_name``,
    ``decision`` (``include``, ``not-include`` or ``excluded``), ``members``, ``votes_for`` and ``votes_against`` (int),
    ``decided_at`` (aware ``datetime``), ``inclusion_due_by`` (``date`` or ``None``),
    ``exclusion_ground`` and ``reason`` (str or ``None``), ``objects`` (list of ``{"title",
    "status"}``). This is a reader, not a validator (nor a signature check): validate against
    fund-decision.xsd and verify the ds:Signature first where it matters.
    Raises ``ValueError`` if the root is not a FundDecision.
    """
    fields = _Fields(element_or_bytes, FUND_DECISION_NS, "FundDecision", normalize=True)
    root, ns, text, required = fields.root, fields.ns, fields.text, fields.required

    commission = root.find(f"{{{ns}}}commission")
    if commission is None:
        raise ValueError("FundDecision has no commission")
    due = text("inclusionDueBy")
    return {
        "submission_number": required("submissionNumber"),
        "application_id": text("applicationId"),
        "bin": required("bin"),
        "participant_name": required("participantName"),
        "decision": required("decision"),
        "members": int(required("members", commission)),
        "votes_for": int(required("votesFor", commission)),
        "votes_against": int(required("votesAgainst", commission)),
        "decided_at": _parse_datetime(required("decidedAt")),
        "inclusion_due_by": date.fromisoformat(due) if due else None,
        "exclusion_ground": text("exclusionGround"),
        "reason": text("reason"),
        "objects": [
            {"title": required("title", item), "status": required("status", item)}
            for item in root.iterfind(f"{{{ns}}}objects/{{{ns}}}object")
        ],
    }
