"""The three services' forms as data: sensible defaults for a person, server-side validation, and the
business document built from checked values (the builders of the library and E-licensing mocks).

Values are plain dicts; repeated groups (fund objects, exported items) are lists of dicts. Errors map a
form field's name (``objects-0-pages``) to a catalogue key and its placeholders, so the page shows them
in the reader's language. The checks follow the services' XSDs, so a form that passes here is valid there.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from lxml import etree

from mocks.elicense.forms import HERITAGE_STATUSES, PURPOSES, build_export_application, sample_items
from mocks.library.forms import (
    ACCESS_LEVELS,
    DIGITISATION_FORMATS,
    FUND_CATEGORIES,
    PARTICIPANT_KINDS,
    READER_CATEGORIES,
    build_fund_submission,
    build_reader_registration,
    sample_fund_objects,
)
from mocks.pki import Person
from mocks.portal.applicant import ELICENSE_SERVICE, FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE
from mocks.portal.web.i18n import COUNTRIES, LANGUAGES, has, t
from mocks.portal.web.state import full_name

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"(?:\+7|8|7)?([0-9]{10})")
"A Kazakhstan mobile number as people write it: +7, 8 or nothing, then 10 digits (after dropping spaces etc.)."
PHONE_INPUT = re.compile(r"\+?[0-9 \(\)\-]{10,20}")
"What the phone input accepts as typed (the browser's ``pattern``; escaped for the v-flag regexes it uses)."
MONEY = re.compile(r"[0-9]{1,16}(\.[0-9]{1,2})?")
EMAIL_PATTERN, PHONE_PATTERN, MONEY_PATTERN = EMAIL.pattern, PHONE_INPUT.pattern, MONEY.pattern
MAX_OBJECTS, MAX_ITEMS = 100, 50
BAD_CASES = ("none", "other", "auth", "tamper")
OBJECT_FIELDS = ("title", "category", "pages", "format", "access_level", "author_agreement")
ITEM_FIELDS = ("name", "description", "quantity", "insured_value_kzt", "heritage_status")

Errors = dict[str, tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class ServiceSpec:
    """One service the portal offers."""

    id: str
    "serviceId on SHEP."
    organisation: bool
    "True when an organisation applies (the document carries a BIN), else a person (IIN)."


SERVICES = (ServiceSpec(READER_TICKET_SERVICE, False), ServiceSpec(FUND_SUBMISSION_SERVICE, True),
            ServiceSpec(ELICENSE_SERVICE, False))
SERVICE_BY_ID = {spec.id: spec for spec in SERVICES}


def may_apply(spec: ServiceSpec, person: Person) -> bool:
    """Whether the person's certificate fits the service: an organisation's service needs one with a BIN."""
    return not spec.organisation or bool(person.bin)


def normalise_phone(value: str) -> str | None:
    """``+77011234567`` from ``8 701 123 45 67``, ``+7 (701) 123-45-67`` and the like; None when it is not one."""
    found = PHONE.fullmatch(re.sub(r"[\s()\-]", "", value))
    return f"+7{found.group(1)}" if found else None


def email_for(person: Person) -> str:
    """A plausible test address for the person."""
    return f"{re.sub(r'[^a-z0-9]+', '.', person.handle.lower()).strip('.')}@example.kz"


def defaults(service_id: str, person: Person, lang: str) -> dict[str, Any]:
    """A sensibly prefilled form for ``person``."""
    common: dict[str, Any] = {"bad_case": "none", "other_person": ""}
    if service_id == READER_TICKET_SERVICE:
        category = "library_staff" if person.kind == "employee" else "individual"
        return {**common, "email": email_for(person), "phone": "+77011234567", "reader_category": category,
                "language": lang, "consent": False}
    if service_id == FUND_SUBMISSION_SERVICE:
        objects = [{key: str(obj[key]) for key in OBJECT_FIELDS} for obj in sample_fund_objects()]
        for obj in objects:  # the library refuses a title it already has: a fresh inventory number each time
            obj["title"] = f"{obj['title']} (инв. № {uuid.uuid4().int % 1_000_000:06d})"
        return {**common, "kind": "museum" if person.org == "murager" else "library",
                "head_name": full_name(person), "objects": objects}
    start = date.today() + timedelta(days=30)
    items = [{key: str(item[key]) for key in ITEM_FIELDS} | {"description": _sample_description(item, lang)}
             for item in sample_items("ordinary")]
    return {**common, "contact_phone": "+77011234567", "purpose": "exhibition", "purpose_details": "",
            "destination": "FR", "export_from": start.isoformat(),
            "return_by": (start + timedelta(days=90)).isoformat(), "items": items, "expert_opinion": False}


def _sample_description(item: dict[str, Any], lang: str) -> str:
    """A sample item's description in the form's language (the E-licensing samples are written in English)."""
    key = f"sample_{item['photo_reference'].removeprefix('photo-').removesuffix('.jpg')}"
    return t(lang, key) if has(key) else str(item["description"])


class _Checker:
    """Reads one posted form, collecting errors under the fields' names."""

    def __init__(self, form: Mapping[str, str]) -> None:
        self.form = form
        self.errors: Errors = {}

    def fail(self, name: str, key: str, **values: Any) -> None:
        self.errors.setdefault(name, (key, values))

    def text(self, name: str, *, max_len: int, required: bool = True) -> str:
        value = " ".join(str(self.form.get(name, "")).split())  # xsd:token collapses whitespace
        if not value and required:
            self.fail(name, "v_required")
        elif len(value) > max_len:
            self.fail(name, "v_too_long", max=max_len)
        return value

    def match(self, name: str, pattern: re.Pattern[str], key: str, *, required: bool, max_len: int = 254) -> str:
        value = str(self.form.get(name, "")).strip()
        if not value:
            if required:
                self.fail(name, "v_required")
        elif len(value) > max_len:
            self.fail(name, "v_too_long", max=max_len)
        elif not pattern.fullmatch(value):
            self.fail(name, key)
        return value

    def phone(self, name: str) -> str:
        """An optional phone number, normalised to ``+7`` and 10 digits."""
        value = str(self.form.get(name, "")).strip()
        if not value:
            return ""
        normalised = normalise_phone(value) if len(value) <= 30 else None
        if normalised is None:
            self.fail(name, "v_phone")
            return value
        return normalised

    def choice(self, name: str, options: tuple[str, ...] | list[str]) -> str:
        value = str(self.form.get(name, "")).strip()
        if value not in options:
            self.fail(name, "v_choice" if value else "v_required")
        return value

    def integer(self, name: str, low: int, high: int) -> str:
        value = str(self.form.get(name, "")).strip()
        if not value:
            self.fail(name, "v_required")
        elif not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
            self.fail(name, "v_int_range", min=low, max=high)
        return value

    def day(self, name: str) -> date | None:
        value = str(self.form.get(name, "")).strip()
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(name, "v_required" if not value else "v_date")
            return None

    def flag(self, name: str) -> bool:
        return str(self.form.get(name, "")).lower() in ("on", "true", "1", "yes")

    def rows(self, prefix: str, fields: tuple[str, ...], limit: int) -> list[dict[str, str]]:
        """Repeated groups ``prefix-N-field`` in order of N (the browser may leave gaps), renumbered from 0."""
        found = sorted({int(m.group(1)) for key in self.form if (m := re.fullmatch(rf"{prefix}-(\d+)-\w+", key))})
        if not 1 <= len(found) <= limit:
            self.fail(prefix, "v_rows", max=limit)
        return [{field: str(self.form.get(f"{prefix}-{index}-{field}", "")) for field in fields}
                for index in found[:limit]]


def _as_form(rows: list[dict[str, str]], prefix: str) -> dict[str, str]:
    return {f"{prefix}-{position}-{key}": value for position, row in enumerate(rows) for key, value in row.items()}


def validate(service_id: str, form: Mapping[str, str], *, today: date | None = None) -> tuple[dict[str, Any], Errors]:
    """Check a posted form; returns the cleaned values (also when invalid, to show them again) and the errors."""
    check = _Checker(form)
    values: dict[str, Any] = {"bad_case": form.get("bad_case", "none") if form.get("bad_case") in BAD_CASES
                              else "none", "other_person": str(form.get("other_person", ""))}
    if values["bad_case"] == "other" and not values["other_person"]:
        check.fail("other_person", "v_other_person")
    if service_id == READER_TICKET_SERVICE:
        values.update(email=check.match("email", EMAIL, "v_email", required=True),
                      phone=check.phone("phone"),
                      reader_category=check.choice("reader_category", READER_CATEGORIES),
                      language=check.choice("language", LANGUAGES), consent=check.flag("consent"))
        if not values["consent"]:
            check.fail("consent", "v_consent")
    elif service_id == FUND_SUBMISSION_SERVICE:
        values.update(kind=check.choice("kind", PARTICIPANT_KINDS),
                      head_name=check.text("head_name", max_len=200))
        objects = check.rows("objects", OBJECT_FIELDS, MAX_OBJECTS)
        renumbered = _Checker(_as_form(objects, "objects"))
        for n, obj in enumerate(objects):
            name = f"objects-{n}-"
            obj.update(title=renumbered.text(name + "title", max_len=500),
                       category=renumbered.choice(name + "category", FUND_CATEGORIES),
                       pages=renumbered.integer(name + "pages", 1, 100_000),
                       format=renumbered.choice(name + "format", DIGITISATION_FORMATS),
                       access_level=renumbered.choice(name + "access_level", ACCESS_LEVELS),
                       author_agreement=renumbered.text(name + "author_agreement", max_len=100))
        check.errors.update(renumbered.errors)
        values["objects"] = objects
    else:
        values.update(contact_phone=check.phone("contact_phone"),
                      purpose=check.choice("purpose", PURPOSES),
                      purpose_details=check.text("purpose_details", max_len=2000, required=False),
                      destination=check.choice("destination", list(COUNTRIES)),
                      expert_opinion=check.flag("expert_opinion"))
        start, end = check.day("export_from"), check.day("return_by")
        if start and start < (today or date.today()):
            check.fail("export_from", "v_date_past")
        if start and end and end < start:
            check.fail("return_by", "v_return_before")
        values.update(export_from=start.isoformat() if start else str(form.get("export_from", "")),
                      return_by=end.isoformat() if end else str(form.get("return_by", "")))
        items = check.rows("items", ITEM_FIELDS, MAX_ITEMS)
        renumbered = _Checker(_as_form(items, "items"))
        for n, item in enumerate(items):
            name = f"items-{n}-"
            item.update(name=renumbered.text(name + "name", max_len=300),
                        description=renumbered.text(name + "description", max_len=2000),
                        quantity=renumbered.integer(name + "quantity", 1, 1_000_000),
                        insured_value_kzt=renumbered.match(name + "insured_value_kzt", MONEY, "v_money",
                                                           required=True, max_len=19),
                        heritage_status=renumbered.choice(name + "heritage_status", HERITAGE_STATUSES))
        check.errors.update(renumbered.errors)
        values["items"] = items
    return values, check.errors


def build(service_id: str, person: Person, values: dict[str, Any], *, subject: Person) -> etree._Element:
    """The unsigned business document from checked values; ``subject`` is whose IIN/BIN it carries.

    No ``applicationId``: the providers correlate by the gateway's request (E-licensing refuses one that differs).
    """
    if service_id == READER_TICKET_SERVICE:
        return build_reader_registration(
            iin=subject.iin, surname=person.surname, given_name=person.name, patronymic=person.given_name or None,
            birth_date=person.birth_date, email=values["email"], phone=values["phone"] or None,
            reader_category=values["reader_category"], language=values["language"])
    if service_id == FUND_SUBMISSION_SERVICE:
        objects = [{**obj, "pages": int(obj["pages"])} for obj in values["objects"]]
        return build_fund_submission(
            bin=subject.bin or subject.iin, participant_name=person.organisation or full_name(person),
            kind=values["kind"], head_name=values["head_name"], objects=objects)
    items = [{**item, "quantity": int(item["quantity"]), "photo_reference": f"photo-item-{n + 1}.jpg"}
             for n, item in enumerate(values["items"])]
    attachments = [{"kind": "exhibition-agreement", "reference": "doc-exhibition-agreement.pdf"},
                   {"kind": "insurance-policy", "reference": "doc-insurance-policy.pdf"}]
    if values["expert_opinion"]:
        attachments.append({"kind": "expert-opinion", "reference": "doc-expert-opinion.pdf"})
    return build_export_application(
        iin=subject.iin, name=full_name(person), items=items, purpose=values["purpose"],
        purpose_details=values["purpose_details"] or None, destination=values["destination"],
        export_from=date.fromisoformat(values["export_from"]), return_by=date.fromisoformat(values["return_by"]),
        attachments=attachments, contact_phone=values["contact_phone"] or None)


TAMPER_TARGETS: dict[str, tuple[str, str]] = {
    READER_TICKET_SERVICE: ("email", "f_email"),
    FUND_SUBMISSION_SERVICE: ("pages", "f_pages"),
    ELICENSE_SERVICE: ("insuredValueKzt", "f_value"),
}
"Per service: the element changed after signing in the tamper bad case, and its label's catalogue key."


def tamper(service_id: str, signed: etree._Element) -> tuple[str, str, str]:
    """Change one signed field in place (the signature no longer matches); returns (label key, old, new)."""
    element_name, label = TAMPER_TARGETS[service_id]
    element = next(signed.iter(f"{{*}}{element_name}"))
    old = element.text or ""
    if element_name == "email":
        element.text = "someone.else@example.kz"
    elif element_name == "pages":
        element.text = str(int(old) * 10 if old.isdigit() and int(old) else 1)
    else:
        element.text = "1.00"
    return label, old, element.text
