"""The application forms as HTML: the same checks as the server's in HTML5 attributes, localized messages
in ``data-msg-*`` for the script, repeatable rows, and the "test a bad case" section.

Every control has ``data-testid="field-<name>"`` and its message ``data-testid="error-<name>"``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from mocks.elicense.forms import HERITAGE_STATUSES, PURPOSES
from mocks.library.forms import (
    ACCESS_LEVELS,
    DIGITISATION_FORMATS,
    FUND_CATEGORIES,
    PARTICIPANT_KINDS,
    READER_CATEGORIES,
)
from mocks.pki import Person
from mocks.portal.web import forms
from mocks.portal.web.forms import Errors, ServiceSpec
from mocks.portal.web.i18n import COUNTRIES, LANGUAGES, country
from mocks.portal.web.layout import Html, View, facts, join, tag, when
from mocks.portal.web.state import CastMember, full_name


def _error(view: View, errors: Errors, name: str) -> Html:
    found = errors.get(name)
    return tag("div", view.t(found[0], **found[1]) if found else "", class_="field-error", id=f"e-{name}",
               data_testid=f"error-{name}", role="alert" if found else None)


def field(view: View, name: str, label: str, control: Html, errors: Errors, *, required: bool = False,
          hint: str | None = None) -> Html:
    """A labelled control with its hint and error message."""
    return tag("div", tag("label", label, " *" if required else "", for_=f"f-{name}"), control,
               tag("div", hint, class_="hint") if hint else "", _error(view, errors, name),
               class_="field invalid" if name in errors else "field")


def text_input(name: str, value: object, *, type_: str = "text", **extra: object) -> Html:
    """An ``<input>`` wired to its label and error."""
    return tag("input", type=type_, name=name, id=f"f-{name}", value="" if value is None else value,
               data_testid=f"field-{name}", aria_describedby=f"e-{name}", **extra)


def select(name: str, value: str, options: list[tuple[str, str]], **extra: object) -> Html:
    """A ``<select>`` with (value, label) options."""
    return tag("select", *[tag("option", label, value=code, selected=code == value) for code, label in options],
               name=name, id=f"f-{name}", data_testid=f"field-{name}", aria_describedby=f"e-{name}", **extra)


def _options(view: View, prefix: str, codes: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    return [(code, view.t(f"{prefix}_{code}")) for code in codes]


def applicant_card(view: View, person: Person) -> Html:
    """Who applies, as the certificate says (not editable)."""
    rows: list[tuple[str, object]] = [(view.t("full_name"), full_name(person)), (view.t("iin"), person.iin),
                                      (view.t("birth_date"), when(person.birth_date.isoformat(), date_only=True))]
    if person.organisation:
        rows += [(view.t("organisation"), person.organisation), (view.t("bin"), person.bin)]
    return tag("section", tag("h2", view.t("form_applicant")), facts(rows, data_testid="applicant-card"),
               tag("p", view.t("form_from_certificate"), class_="hint"), class_="card")


def _reader(view: View, values: dict[str, Any], errors: Errors) -> Html:
    return join(
        field(view, "email", view.t("f_email"), text_input(
            "email", values["email"], type_="email", required=True, maxlength=254, pattern=forms.EMAIL_PATTERN,
            autocomplete="email", data_msg_pattern=view.t("v_email")), errors, required=True),
        field(view, "phone", view.t("f_phone"), text_input(
            "phone", values["phone"], type_="tel", pattern=forms.PHONE_PATTERN, autocomplete="tel", maxlength=20,
            data_msg_pattern=view.t("v_phone")), errors, hint=view.t("f_phone_hint")),
        tag("div", field(view, "reader_category", view.t("f_reader_category"), select(
            "reader_category", values["reader_category"], _options(view, "rc", READER_CATEGORIES), required=True),
            errors, required=True),
            field(view, "language", view.t("f_language"), select(
                "language", values["language"], _options(view, "lang", LANGUAGES), required=True), errors,
                required=True), class_="row"),
        tag("div", tag("label", tag("input", type="checkbox", name="consent", id="f-consent", required=True,
                                    checked=bool(values["consent"]), data_testid="field-consent",
                                    data_msg_required=view.t("v_consent"), aria_describedby="e-consent"),
                       view.t("f_consent"), " *", class_="inline", for_="f-consent"),
            _error(view, errors, "consent"), class_="field invalid" if "consent" in errors else "field"),
    )


def _object_row(view: View, index: int | str, obj: dict[str, str], errors: Errors) -> Html:
    name = f"objects-{index}-"
    title = view.t("object_n", n=int(index) + 1 if isinstance(index, int) else "")
    return tag("fieldset", tag("legend", title, data_row_title=view.t("object_n", n="{n}")),
               field(view, name + "title", view.t("f_title"), text_input(
                   name + "title", obj["title"], required=True, maxlength=500), errors, required=True),
               tag("div", field(view, name + "category", view.t("f_category"), select(
                   name + "category", obj["category"], _options(view, "fc", FUND_CATEGORIES), required=True),
                   errors, required=True),
                   field(view, name + "pages", view.t("f_pages"), text_input(
                       name + "pages", obj["pages"], type_="number", min=1, max=100000, step=1, required=True,
                       inputmode="numeric", data_msg_range=view.t("v_int_range", min=1, max=100000)), errors,
                       required=True), class_="row"),
               tag("div", field(view, name + "format", view.t("f_format"), select(
                   name + "format", obj["format"], [(code, code.upper()) for code in DIGITISATION_FORMATS],
                   required=True), errors, required=True),
                   field(view, name + "access_level", view.t("f_access"), select(
                       name + "access_level", obj["access_level"], _options(view, "al", ACCESS_LEVELS),
                       required=True), errors, required=True), class_="row"),
               field(view, name + "author_agreement", view.t("f_agreement"), text_input(
                   name + "author_agreement", obj["author_agreement"], required=True, maxlength=100), errors,
                   required=True, hint=view.t("f_agreement_hint")),
               tag("button", view.t("remove"), type="button", class_="link", data_remove="objects",
                   data_testid=f"remove-object-{index}"),
               data_row=index, data_testid=f"object-{index}", class_="card")


def _fund(view: View, values: dict[str, Any], errors: Errors) -> Html:
    blank = {"title": "", "category": "printed-publication", "pages": "", "format": "pdf",
             "access_level": "open-read-only", "author_agreement": ""}
    rows = [_object_row(view, n, obj, errors) for n, obj in enumerate(values["objects"])]
    return join(
        tag("div", field(view, "kind", view.t("f_kind"), select(
            "kind", values["kind"], _options(view, "kind", PARTICIPANT_KINDS), required=True), errors, required=True),
            field(view, "head_name", view.t("f_head_name"), text_input(
                "head_name", values["head_name"], required=True, maxlength=200), errors, required=True), class_="row"),
        tag("h3", view.t("f_objects")), _error(view, errors, "objects"),
        tag("div", *rows, data_repeat="objects", data_max=forms.MAX_OBJECTS),
        tag("template", _object_row(view, "__i__", blank, {}), data_template="objects"),
        tag("button", "+ ", view.t("add_object"), type="button", class_="secondary", data_add="objects",
            data_testid="add-object"),
    )


def _item_row(view: View, index: int | str, item: dict[str, str], errors: Errors) -> Html:
    name = f"items-{index}-"
    title = view.t("item_n", n=int(index) + 1 if isinstance(index, int) else "")
    return tag("fieldset", tag("legend", title, data_row_title=view.t("item_n", n="{n}")),
               field(view, name + "name", view.t("f_item_name"), text_input(
                   name + "name", item["name"], required=True, maxlength=300), errors, required=True),
               field(view, name + "description", view.t("f_item_description"), text_input(
                   name + "description", item["description"], required=True, maxlength=2000), errors, required=True),
               tag("div", field(view, name + "quantity", view.t("f_quantity"), text_input(
                   name + "quantity", item["quantity"], type_="number", min=1, max=1000000, step=1, required=True,
                   data_msg_range=view.t("v_int_range", min=1, max=1000000)), errors, required=True),
                   field(view, name + "insured_value_kzt", view.t("f_value"), text_input(
                       name + "insured_value_kzt", item["insured_value_kzt"], required=True, inputmode="decimal",
                       pattern=forms.MONEY_PATTERN, data_msg_pattern=view.t("v_money")), errors, required=True),
                   field(view, name + "heritage_status", view.t("f_heritage"), select(
                       name + "heritage_status", item["heritage_status"], _options(view, "hs", HERITAGE_STATUSES),
                       required=True), errors, required=True), class_="row"),
               tag("button", view.t("remove"), type="button", class_="link", data_remove="items",
                   data_testid=f"remove-item-{index}"),
               data_row=index, data_testid=f"item-{index}", class_="card")


def _export(view: View, values: dict[str, Any], errors: Errors) -> Html:
    blank = {"name": "", "description": "", "quantity": "1", "insured_value_kzt": "", "heritage_status": "none"}
    countries = [(code, f"{country(view.lang, code)} ({code})") for code in COUNTRIES]
    return join(
        tag("div", field(view, "purpose", view.t("f_purpose"), select(
            "purpose", values["purpose"], _options(view, "purpose", PURPOSES), required=True), errors, required=True),
            field(view, "destination", view.t("f_destination"), select(
                "destination", values["destination"], countries, required=True), errors, required=True),
            class_="row"),
        field(view, "purpose_details", view.t("f_purpose_details"), text_input(
            "purpose_details", values["purpose_details"], maxlength=2000), errors),
        tag("div", field(view, "export_from", view.t("f_export_from"), text_input(
            "export_from", values["export_from"], type_="date", required=True, min=date.today().isoformat(),
            data_msg_range=view.t("v_date_past")), errors, required=True),
            field(view, "return_by", view.t("f_return_by"), text_input(
                "return_by", values["return_by"], type_="date", required=True,
                data_msg_range=view.t("v_return_before")), errors, required=True), class_="row"),
        tag("p", view.t("f_export_hint"), class_="hint"),
        field(view, "contact_phone", view.t("f_contact_phone"), text_input(
            "contact_phone", values["contact_phone"], type_="tel", pattern=forms.PHONE_PATTERN, maxlength=20,
            data_msg_pattern=view.t("v_phone")), errors, hint=view.t("f_phone_hint")),
        tag("h3", view.t("f_items")), _error(view, errors, "items"),
        tag("div", *[_item_row(view, n, item, errors) for n, item in enumerate(values["items"])],
            data_repeat="items", data_max=forms.MAX_ITEMS),
        tag("template", _item_row(view, "__i__", blank, {}), data_template="items"),
        tag("button", "+ ", view.t("add_item"), type="button", class_="secondary", data_add="items",
            data_testid="add-item"),
        tag("p", view.t("photo_note"), class_="hint"),
        tag("h3", view.t("f_attachments")),
        tag("ul", tag("li", view.t("att_agreement")), tag("li", view.t("att_insurance"))),
        tag("div", tag("label", tag("input", type="checkbox", name="expert_opinion", id="f-expert_opinion",
                                    checked=bool(values["expert_opinion"]), data_testid="field-expert_opinion"),
                       view.t("f_expert_opinion"), class_="inline", for_="f-expert_opinion"),
            tag("div", view.t("f_expert_hint"), class_="hint"), class_="field"),
    )


def other_subjects(spec: ServiceSpec, person: Person, others: list[CastMember]) -> list[tuple[str, str]]:
    """The "whose IIN/BIN" choices as (handle, label): for an organisation's service, the other organisations
    (name and BIN, by one of their employees); otherwise the other people (name and IIN)."""
    if not spec.organisation:
        return [(m.person.handle, f"{full_name(m.person)} — {m.person.iin}") for m in others]
    organisations: dict[str, tuple[str, str]] = {}
    for member in others:
        bin_ = member.person.bin
        if bin_ and bin_ != person.bin and bin_ not in organisations:
            organisations[bin_] = (member.person.handle, f"{member.person.organisation} — {bin_}")
    return list(organisations.values())


def _bad_cases(view: View, spec: ServiceSpec, person: Person, values: dict[str, Any], errors: Errors,
               others: list[CastMember]) -> Html:
    labels = {"none": "bad_none", "other": "bad_other", "auth": "bad_auth", "tamper": "bad_tamper"}
    radios = [tag("label", tag("input", type="radio", name="bad_case", value=case, checked=values["bad_case"] == case,
                               data_testid=f"bad-case-{case}"), view.t(labels[case]), class_="inline")
              for case in forms.BAD_CASES]
    options = [("", "—"), *other_subjects(spec, person, others)]
    return tag("fieldset", tag("legend", view.t("bad_title")), tag("p", view.t("bad_hint"), class_="hint"),
               *radios, field(view, "other_person", view.t("bad_other_person"),
                              select("other_person", values["other_person"], options), errors),
               class_="bad-case", data_testid="bad-cases")


def render_form(view: View, spec: ServiceSpec, person: Person, values: dict[str, Any], errors: Errors,
                others: list[CastMember]) -> Html:
    """The whole form section for one service."""
    body = {"kazneb.reader-ticket": _reader, "kazneb.fund-submission": _fund}.get(spec.id, _export)
    summary = (tag("div", view.t("form_has_errors"), class_="alert error", data_testid="form-errors", role="alert")
               if errors else "")
    header: list[object] = []
    if spec.organisation:
        header.append(tag("div", field(view, "bin", view.t("bin"), text_input(
            "bin", person.bin or "", readonly=True), {}),
            field(view, "participant", view.t("f_participant"), text_input(
                "participant", person.organisation or full_name(person), readonly=True), {}), class_="row"))
    return tag("form", summary,
               tag("section", tag("h2", view.t("form_details")), tag("p", view.t("required_hint"), class_="hint"),
                   *header, body(view, values, errors), class_="card"),
               tag("section", _bad_cases(view, spec, person, values, errors, others), style="margin-top:16px"),
               tag("p", view.t("submit_hint"), class_="hint"),
               tag("button", view.t("submit_sign"), type="submit", data_testid="submit"),
               " ", tag("a", view.t("back"), href="/", class_="button secondary"),
               method="post", action=f"/apply/{spec.id}", data_validate=True,
               data_msg_required=view.t("v_required"), data_testid="application-form")

