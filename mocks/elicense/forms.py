"""Build and read cultural-export applications; the refusal rules; render the provider's result.

The application follows ``schemas/elicense/export-application.xsd`` and the result
``schemas/elicense/export-result.xsd``. Nothing here signs: the portal adds the applicant's enveloped
ds:Signature, the E-licensing mock signs the result with the provider's key (see ``app.py``).
"""

from __future__ import annotations

import calendar as gregorian
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from lxml import etree

from mocks.elicense.steps import DOCUMENTS_CHECKED, HEAD_SIGNED, KZ_TIME, StepStatus

APPLICATION_NS = "urn:egov:elicense:cultural-export:v1"
RESULT_NS = "urn:egov:elicense:cultural-export-result:v1"
SERVICE_NS = "urn:egov:elicense:service:v1"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

PURPOSES = ("exhibition", "restoration", "research", "other")
HERITAGE_STATUSES = ("none", "local-significance", "national-significance", "national-treasure")
ATTACHMENT_KINDS = ("exhibition-agreement", "insurance-policy", "expert-opinion", "other")
MAX_EXPORT_MONTHS = 6
"Longest temporary export the mock allows: ``returnBy`` at most six months after ``exportFrom``."

PROVIDER_NAME = "«Ақмола облысының мәдениет басқармасы» ММ"
"The service provider of the regulation: the Culture Department of Akmola region."
_LEGAL_BASIS = ("Regulation of the public service «Issuing a certificate for the right of temporary export of "
                "cultural values» (Akmola region), p. 5 subp. {sub}); Standard of the public service (order of the "
                "Minister of Culture and Sports No. 146 of 22.04.2015, reg. No. 11238), p. 9-1")


@dataclass(frozen=True)
class ExportItem:
    """One cultural value to be exported."""

    name: str
    "What it is."
    quantity: int
    "How many pieces."
    insured_value_kzt: Decimal
    "Insured value in tenge."
    heritage_status: str
    "One of HERITAGE_STATUSES."


@dataclass(frozen=True)
class ExportApplication:
    """The fields of a schema-valid application the provider's rules look at."""

    application_id: str | None
    "The portal's reference, echoed in the result."
    iin: str | None
    "Applicant's IIN (individual); personal data: never log it."
    bin: str | None
    "Applicant's BIN (organisation)."
    name: str
    "Applicant's name."
    purpose: str
    "One of PURPOSES."
    destination: str
    "ISO 3166 alpha-2 country code."
    export_from: date
    "First day of the export."
    return_by: date
    "Day the values must be back: the certificate is valid until then."
    items: tuple[ExportItem, ...]
    "The values."
    attachment_kinds: frozenset[str]
    "Kinds of documents attached."


@dataclass(frozen=True)
class RefusalGround:
    """One reason for a reasoned refusal, in words a person understands."""

    code: str
    "Stable code: EXPERT_OPINION_MISSING, RETURN_BEFORE_EXPORT, EXPORT_TERM_TOO_LONG, NATIONAL_TREASURE."
    step: str
    "The step that refuses: ``documents-checked`` or ``head-signed``."
    reason_kk: str
    "The reason in Kazakh."
    reason_ru: str
    "The reason in Russian."
    reason_en: str
    "The reason in English."
    legal_basis: str
    "Which rules the refusal rests on."


def _xml_datetime(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.replace(microsecond=0).isoformat()


def _add(parent: etree._Element, ns: str, name: str, text: object | None) -> etree._Element | None:
    if text is None:
        return None
    child = etree.SubElement(parent, f"{{{ns}}}{name}")
    child.text = str(text)
    return child


def default_attachments(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    """A complete set for ``items``: agreement, insurance, and an expert opinion when any item is heritage."""
    attachments = [
        {"kind": "exhibition-agreement", "reference": "doc-exhibition-agreement.pdf"},
        {"kind": "insurance-policy", "reference": "doc-insurance-policy.pdf"},
    ]
    if any(item.get("heritage_status", "none") != "none" for item in items):
        attachments.append({"kind": "expert-opinion", "reference": "doc-expert-opinion.pdf"})
    return attachments


_ITEM_FIELDS = ("name", "description", "quantity", "insured_value_kzt", "heritage_status", "photo_reference")


def build_export_application(
    *,
    iin: str | None = None,
    bin: str | None = None,  # shadows the builtin on purpose: the domain calls it BIN
    name: str,
    items: list[dict[str, Any]],
    purpose: str = "exhibition",
    purpose_details: str | None = None,
    destination: str = "FR",
    export_from: date,
    return_by: date,
    attachments: list[dict[str, str]] | None = None,
    contact_phone: str | None = None,
    application_id: str | None = None,
    submitted_at: datetime | None = None,
) -> etree._Element:
    """Build an unsigned ``CulturalExportApplication``.

    Exactly one of ``iin`` and ``bin`` must be given. Each item is a dict with ``name``,
    ``description``, ``quantity``, ``insured_value_kzt``, ``heritage_status``, ``photo_reference`` and
    optionally ``creation_period``; other keys raise ``ValueError``. ``attachments`` (dicts with ``kind``
    and ``reference``) default to :func:`default_attachments`; pass ``[]`` for none. Values are written as
    given: the schema is the judge of validity. ``submitted_at`` defaults to now and must be aware.
    """
    if (iin is None) == (bin is None):
        raise ValueError("give exactly one of iin and bin")
    ns = APPLICATION_NS
    root = etree.Element(f"{{{ns}}}CulturalExportApplication", nsmap={None: ns})
    _add(root, ns, "applicationId", application_id)
    applicant = etree.SubElement(root, f"{{{ns}}}applicant")
    _add(applicant, ns, "iin", iin)
    _add(applicant, ns, "bin", bin)
    _add(applicant, ns, "name", name)
    _add(applicant, ns, "contactPhone", contact_phone)
    _add(root, ns, "purpose", purpose)
    _add(root, ns, "purposeDetails", purpose_details)
    _add(root, ns, "destinationCountry", destination)
    _add(root, ns, "exportFrom", export_from.isoformat())
    _add(root, ns, "returnBy", return_by.isoformat())
    container = etree.SubElement(root, f"{{{ns}}}items")
    for index, item in enumerate(items):
        missing = [key for key in _ITEM_FIELDS if key not in item]
        unknown = sorted(item.keys() - {*_ITEM_FIELDS, "creation_period"})
        if missing or unknown:
            raise ValueError(f"item {index}: missing {missing}, unknown {unknown}")
        element = etree.SubElement(container, f"{{{ns}}}item")
        _add(element, ns, "name", item["name"])
        _add(element, ns, "description", item["description"])
        _add(element, ns, "creationPeriod", item.get("creation_period"))
        _add(element, ns, "quantity", item["quantity"])
        _add(element, ns, "insuredValueKzt", item["insured_value_kzt"])
        _add(element, ns, "heritageStatus", item["heritage_status"])
        _add(element, ns, "photoReference", item["photo_reference"])
    chosen = default_attachments(items) if attachments is None else attachments
    if chosen:
        wrapper = etree.SubElement(root, f"{{{ns}}}attachments")
        for attachment in chosen:
            element = etree.SubElement(wrapper, f"{{{ns}}}attachment")
            _add(element, ns, "kind", attachment["kind"])
            _add(element, ns, "reference", attachment["reference"])
    _add(root, ns, "submittedAt", _xml_datetime(submitted_at or datetime.now(UTC)))
    return root


def sample_items(kind: str = "ordinary") -> list[dict[str, Any]]:
    """Realistic items (a new list each call): ``ordinary`` (no heritage status), ``heritage``
    (national significance: needs an expert opinion) or ``treasure`` (a national treasure: refused)."""
    ordinary = [
        {"name": "Қазақ киіз үйінің жабдықтары", "description": "Modern felt yurt furnishings for an exhibition",
         "creation_period": "2010s", "quantity": 12, "insured_value_kzt": "4500000.00",
         "heritage_status": "none", "photo_reference": "photo-yurt-set.jpg"},
        {"name": "Домбыра", "description": "Two-stringed dombra by a contemporary master", "quantity": 2,
         "insured_value_kzt": "850000.00", "heritage_status": "none", "photo_reference": "photo-dombra.jpg"},
    ]
    if kind == "ordinary":
        return ordinary
    if kind == "heritage":
        return [*ordinary[:1], {
            "name": "Күміс білезік", "description": "Silver bracelet with carnelian, Akmola region",
            "creation_period": "XIX century", "quantity": 1, "insured_value_kzt": "12000000.00",
            "heritage_status": "national-significance", "photo_reference": "photo-bracelet.jpg"}]
    if kind == "treasure":
        return [*ordinary[:1], {
            "name": "Алтын адам әшекейлерінің бөлігі", "description": "Gold plaques of the Saka period",
            "creation_period": "V-IV century BC", "quantity": 3, "insured_value_kzt": "950000000.00",
            "heritage_status": "national-treasure", "photo_reference": "photo-saka-gold.jpg"}]
    raise ValueError(f"unknown sample kind {kind!r}: ordinary, heritage or treasure")


def read_application(root: etree._Element) -> ExportApplication:
    """The rule-relevant fields of a schema-valid ``CulturalExportApplication``."""
    ns = {"a": APPLICATION_NS}

    def text(path: str, node: etree._Element = root) -> str | None:
        value = node.findtext(path, namespaces=ns)
        return None if value is None else " ".join(value.split())

    items = tuple(
        ExportItem(text("a:name", item) or "", int(text("a:quantity", item) or 0),
                   Decimal(text("a:insuredValueKzt", item) or 0), text("a:heritageStatus", item) or "none")
        for item in root.iterfind("a:items/a:item", ns)
    )
    return ExportApplication(
        application_id=text("a:applicationId"), iin=text("a:applicant/a:iin"), bin=text("a:applicant/a:bin"),
        name=text("a:applicant/a:name") or "", purpose=text("a:purpose") or "",
        destination=text("a:destinationCountry") or "",
        export_from=date.fromisoformat(text("a:exportFrom") or ""),
        return_by=date.fromisoformat(text("a:returnBy") or ""),
        items=items,
        attachment_kinds=frozenset(k for k in (text("a:kind", a) for a in root.iterfind("a:attachments/a:attachment",
                                                                                        ns)) if k),
    )


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar months, clamped to the month's last day (31 Aug + 6 months = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, gregorian.monthrange(year, month)[1]))


def _listed(items: list[ExportItem], shown: int = 5) -> str:
    """Item names for a reason text; at most ``shown`` of them, so the reason stays readable (and short)."""
    names = ", ".join(f"«{item.name}»" for item in items[:shown])
    return names if len(items) <= shown else f"{names} (+{len(items) - shown})"


def documents_check_grounds(application: ExportApplication) -> tuple[RefusalGround, ...]:
    """Step 3 rules: heritage items need an expert opinion; the export term must be sane."""
    basis = _LEGAL_BASIS.format(sub=3)
    grounds: list[RefusalGround] = []
    heritage = [item for item in application.items if item.heritage_status != "none"]
    if heritage and "expert-opinion" not in application.attachment_kinds:
        names = _listed(heritage)
        grounds.append(RefusalGround(
            "EXPERT_OPINION_MISSING", DOCUMENTS_CHECKED,
            f"Тарихи-мәдени маңызы бар заттарға ({names}) сараптама қорытындысы қоса берілмеген.",
            f"К предметам, имеющим историко-культурную ценность ({names}), не приложено экспертное заключение.",
            f"The items with heritage status ({names}) need an expert opinion, and none is attached.",
            basis))
    if application.return_by < application.export_from:
        period = f"{application.export_from.isoformat()} / {application.return_by.isoformat()}"
        grounds.append(RefusalGround(
            "RETURN_BEFORE_EXPORT", DOCUMENTS_CHECKED,
            f"Қайтару күні әкету күнінен бұрын көрсетілген ({period}).",
            f"Дата возврата указана раньше даты вывоза ({period}).",
            f"The return date is before the export date ({period}).", basis))
    elif application.return_by > add_months(application.export_from, MAX_EXPORT_MONTHS):
        latest = add_months(application.export_from, MAX_EXPORT_MONTHS).isoformat()
        grounds.append(RefusalGround(
            "EXPORT_TERM_TOO_LONG", DOCUMENTS_CHECKED,
            f"Уақытша әкету мерзімі {MAX_EXPORT_MONTHS} айдан аспауы тиіс: қайтару күні {latest} кешіктірілмеуі керек.",
            f"Срок временного вывоза не может превышать {MAX_EXPORT_MONTHS} месяцев: вернуть не позднее {latest}.",
            f"A temporary export may last at most {MAX_EXPORT_MONTHS} months: the values must be back by {latest}.",
            basis))
    return tuple(grounds)


def head_signing_grounds(application: ExportApplication) -> tuple[RefusalGround, ...]:
    """Step 6 rule: a national treasure may not leave the country, so the head refuses to sign."""
    treasures = [item for item in application.items if item.heritage_status == "national-treasure"]
    if not treasures:
        return ()
    names = _listed(treasures)
    return (RefusalGround(
        "NATIONAL_TREASURE", HEAD_SIGNED,
        f"{names} ұлттық қазына болып табылады: оларды елден әкетуге тыйым салынған, куәлік берілмейді.",
        f"{names} относятся к национальному достоянию: их вывоз из страны запрещён, свидетельство не выдаётся.",
        f"{names} belong to the national treasure of Kazakhstan: they may not be taken out of the country, "
        "so no export certificate can be issued.",
        _LEGAL_BASIS.format(sub=6)),)


def review(application: ExportApplication) -> tuple[RefusalGround, ...]:
    """The grounds of the first refusing step (documents check, then head signing); empty when issued."""
    return documents_check_grounds(application) or head_signing_grounds(application)


def render_result(
    *,
    registration_number: str,
    certificate_number: str,
    application: ExportApplication,
    steps: tuple[StepStatus, ...],
    grounds: tuple[RefusalGround, ...],
    application_id: str | None = None,
) -> etree._Element:
    """The unsigned ``CulturalExportResult`` once every step is complete (element order follows the XSD).

    ``application_id``: the one the application was submitted under (the gateway's), else the document's."""
    ns = RESULT_NS
    root = etree.Element(f"{{{ns}}}CulturalExportResult", nsmap={None: ns})
    _add(root, ns, "registrationNumber", registration_number)
    _add(root, ns, "applicationId", application_id or application.application_id)
    _add(root, ns, "provider", PROVIDER_NAME)
    applicant = etree.SubElement(root, f"{{{ns}}}applicant")
    _add(applicant, ns, "iin", application.iin)
    _add(applicant, ns, "bin", application.bin)
    _add(applicant, ns, "name", application.name)
    _add(root, ns, "outcome", "refused" if grounds else "issued")
    if grounds:
        refusal = etree.SubElement(root, f"{{{ns}}}refusal")
        _add(refusal, ns, "step", grounds[0].step)
        _add(refusal, ns, "reason", " ".join(g.reason_kk for g in grounds))
        _add(refusal, ns, "reasonRu", " ".join(g.reason_ru for g in grounds))
        _add(refusal, ns, "reasonEn", " ".join(g.reason_en for g in grounds))
        _add(refusal, ns, "legalBasis", grounds[0].legal_basis)
        for ground in grounds:
            _add(refusal, ns, "groundCode", ground.code)
    else:
        certificate = etree.SubElement(root, f"{{{ns}}}certificate")
        _add(certificate, ns, "number", certificate_number)
        completed = steps[-1].completed_at
        assert completed is not None, "the result exists only once every step is complete"
        _add(certificate, ns, "issuedAt", _xml_datetime(completed.astimezone(KZ_TIME)))
        _add(certificate, ns, "exportFrom", application.export_from.isoformat())
        _add(certificate, ns, "validUntil", application.return_by.isoformat())
        _add(certificate, ns, "destinationCountry", application.destination)
        _add(certificate, ns, "purpose", application.purpose)
        items = etree.SubElement(certificate, f"{{{ns}}}items")
        for item in application.items:
            element = etree.SubElement(items, f"{{{ns}}}item")
            _add(element, ns, "name", item.name)
            _add(element, ns, "quantity", item.quantity)
            _add(element, ns, "insuredValueKzt", item.insured_value_kzt)
            _add(element, ns, "heritageStatus", item.heritage_status)
    container = etree.SubElement(root, f"{{{ns}}}steps")
    for status in steps:
        element = etree.SubElement(container, f"{{{ns}}}step")
        _add(element, ns, "code", status.step.code)
        _add(element, ns, "name", status.step.name_kk)
        _add(element, ns, "nameRu", status.step.name_ru)
        _add(element, ns, "nameEn", status.step.name_en)
        _add(element, ns, "startedAt", _xml_datetime(status.started_at))
        _add(element, ns, "completedAt", _xml_datetime(status.completed_at or status.due_at))
        _add(element, ns, "dueAt", _xml_datetime(status.due_at))
    return root
