"""``/apply/{serviceId}``: the form, then build, sign (on the portal's server, with the person's key),
optionally spoil it (a bad case), send it through the SyncChannel, and show what happened.

Success goes to the application's page in the cabinet (which shows what was signed); a refusal is
explained here: the gateway's message in the reader's language, the code, the sub-indication and the
validation report.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiohttp import web
from cryptography.x509.oid import NameOID
from lxml import etree

from mocks.pki import Person
from mocks.portal.shep_client import SendResult
from mocks.portal.web import forms
from mocks.portal.web.form_pages import applicant_card, other_subjects, render_form
from mocks.portal.web.forms import SERVICE_BY_ID, ServiceSpec
from mocks.portal.web.layout import Html, View, error_page, facts, join, page, tag, when, xml_block
from mocks.portal.web.report_view import render_report, sub_indication_text
from mocks.portal.web.session import PERSON
from mocks.portal.web.state import STATE, CastMember, PortalState, Submission, full_name, view_for
from signing.signer import DocumentSigner

log = logging.getLogger("egov.portal.web")


def _resolve(request: web.Request, view: View) -> tuple[ServiceSpec, Person] | web.Response:
    spec = SERVICE_BY_ID.get(request.match_info["service_id"])
    if spec is None:
        return error_page(view, view.t("not_found_title"), view.t("unknown_service"), status=404)
    person = request[PERSON]  # the signed-in person (the login middleware saw to it)
    if not forms.may_apply(spec, person):  # explained before signing, rather than refused by the gateway after
        return error_page(view, view.t("org_only_title"), view.t("org_only"), status=403, testid="org-only")
    return spec, person


def others_of(state: PortalState, person: Person) -> list[CastMember]:
    """Everyone in the cast but ``person``."""
    return [member for member in state.cast.values() if member.person.handle != person.handle]


def _form_page(view: View, state: PortalState, spec: ServiceSpec, person: Person, values: dict[str, Any],
               errors: forms.Errors) -> web.Response:
    others = others_of(state, person)
    return page(view, view.t(f"svc_{spec.id}"),
                    tag("h1", view.t(f"svc_{spec.id}"), data_testid="service-title"),
                    tag("p", view.t(f"svcd_{spec.id}"), class_="lead"),
                    applicant_card(view, person),
                    tag("div", render_form(view, spec, person, values, errors, others), style="margin-top:16px"),
                    status=422 if errors else 200)


async def show_form(request: web.Request) -> web.Response:
    """GET: the form, prefilled for the person."""
    view = view_for(request)
    resolved = _resolve(request, view)
    if isinstance(resolved, web.Response):
        return resolved
    spec, person = resolved
    return _form_page(view, request.app[STATE], spec, person, forms.defaults(spec.id, person, view.lang), {})


def _submission(signer: DocumentSigner, *, message_id: str, spec: ServiceSpec, person: Person, owner: str,
                signed: etree._Element, key: str, notes: list[tuple[str, dict[str, str]]]) -> Submission:
    cert = signer.certificate

    def cn(name: Any) -> str:
        found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(found[0].value) if found else name.rfc4514_string()

    return Submission(
        message_id=message_id, service_id=spec.id, handle=person.handle, owner=owner,
        signed_xml=etree.tostring(signed, encoding="unicode"), key=key, certificate_name=cn(cert.subject),
        certificate_serial=format(cert.serial_number, "x"), certificate_issuer=cn(cert.issuer),
        valid_from=cert.not_valid_before_utc, valid_to=cert.not_valid_after_utc, notes=tuple(notes))


def signed_panel(view: View, submission: Submission) -> Html:
    """"What was signed": the signer's certificate, the key, any bad case, and the XML as sent."""
    notes = []
    for kind, values in submission.notes:
        if kind == "tampered":
            notes.append(view.t("tampered_note", field=view.t(values["field_key"]), old=values["old"],
                                new=values["new"]))
        else:
            notes.append(view.t("other_note", who=values["who"]))
    rows: list[tuple[str, object]] = [
        (view.t("signed_by"), tag("strong", submission.certificate_name, data_testid="signed-certificate")),
        (view.t("key_type"), tag("span", view.t(f"key_{submission.key}"), data_testid="signed-key-type",
                                 data_key=submission.key)),
        (view.t("cert_serial"), tag("code", submission.certificate_serial)),
        (view.t("cert_issuer"), submission.certificate_issuer),
        (view.t("cert_valid"), join(when(submission.valid_from), " — ", when(submission.valid_to))),
        (view.t("message_id"), tag("code", submission.message_id, data_testid="message-id")),
    ]
    return tag("section", tag("h2", view.t("signed_title")), facts(rows),
               *[tag("div", note, class_="alert error", data_testid="bad-case-note") for note in notes],
               xml_block(submission.signed_xml, testid="signed-xml", summary=view.t("show_xml"), open_=True),
               class_="card", data_testid="what-was-signed")


def _refusal(view: View, result: SendResult) -> Html:
    data = result.error_data or {}
    messages = data.get("messages") if isinstance(data.get("messages"), dict) else {}
    title = messages.get(view.lang) or result.message
    rows: list[tuple[str, object]] = [
        (view.t("error_code"), tag("code", result.status_code, data_testid="refusal-code")),
        (view.t("sub_indication"), tag("span", sub_indication_text(view, data.get("subIndication")),
                                       data_testid="refusal-sub-indication") if data.get("subIndication") else None),
        (view.t("session_id"), tag("code", result.session_id) if result.session_id else None),
        # The gateway's detail is English, for operators: shown on English pages only.
        (view.t("technical_detail"), data.get("detail") if data.get("detail") and view.lang == "en" else None),
    ]
    report = data.get("validationReport") if isinstance(data.get("validationReport"), dict) else None
    return tag("section", tag("h2", view.t("refused_title")),
               tag("div", title, class_="alert error", data_testid="refusal-message", role="alert"),
               facts(rows), render_report(view, report) if report else "",
               class_="card", data_testid="refusal", data_code=result.status_code)


async def submit(request: web.Request) -> web.Response:
    """POST: validate; build, sign, spoil as asked, send; then the cabinet (accepted) or the refusal."""
    state = request.app[STATE]
    view = view_for(request)
    resolved = _resolve(request, view)
    if isinstance(resolved, web.Response):
        return resolved
    spec, person = resolved
    posted = await request.post()
    values, errors = forms.validate(spec.id, {key: str(value) for key, value in posted.items()})
    other = state.pki.people.get(values["other_person"]) if values["bad_case"] == "other" else None
    allowed = {handle for handle, _ in other_subjects(spec, person, others_of(state, person))}
    if values["bad_case"] == "other" and (other is None or other.handle not in allowed):
        errors.setdefault("other_person", ("v_other_person", {}))
    if errors:
        return _form_page(view, state, spec, person, values, errors)

    message_id = str(uuid.uuid4())
    subject = other or person
    key = "auth" if values["bad_case"] == "auth" else "sign"
    signer = state.signer(person, key, organisation=spec.organisation)
    signed = signer.sign(forms.build(spec.id, person, values, subject=subject))
    notes: list[tuple[str, dict[str, str]]] = []
    if other is not None:
        their_id = other.bin if spec.organisation and other.bin else other.iin
        notes.append(("other", {"who": f"{full_name(other)} ({their_id})"}))
    if values["bad_case"] == "tamper":
        label, old, new = forms.tamper(spec.id, signed)
        notes.append(("tampered", {"field_key": label, "old": old, "new": new}))
    owner = (subject.bin or subject.iin) if spec.organisation else subject.iin
    submission = _submission(signer, message_id=message_id, spec=spec, person=person, owner=owner, signed=signed,
                             key=key, notes=notes)
    state.remember(submission)
    try:
        client = await state.soap_client()
        result = await asyncio.to_thread(client.send, service_id=spec.id, sender_id=state.sender,
                                         password=state.password, document=signed, message_id=message_id)
    except Exception as exc:  # zeep/requests raise many kinds; the reader only needs to know it failed
        log.warning("gateway unreachable for %s: %s", spec.id, type(exc).__name__)
        return page(view, view.t("error"), tag("h1", view.t(f"svc_{spec.id}")),
                    tag("div", view.t("gateway_unreachable"), class_="alert error", data_testid="gateway-unreachable"),
                    signed_panel(view, submission), status=502)
    if result.ok:
        # A plain 303 (not a raised HTTPSeeOther) so the language cookie is still set on it.
        return web.Response(status=303, headers={"Location": f"/cabinet/{owner}/{message_id}?submitted=1"})
    back = tag("p", tag("a", view.t("try_again"), href=f"/apply/{spec.id}", class_="button",
                        data_testid="try-again"), " ",
               tag("a", view.t("nav_home"), href="/", class_="button secondary"), style="margin-top:16px")
    return page(view, view.t("refused_title"), tag("h1", view.t(f"svc_{spec.id}")),
                _refusal(view, result), tag("div", signed_panel(view, submission), style="margin-top:16px"), back)
