"""Signed results and receipts in the cabinet: the portal's own signature check, and the key fields of each
kind of result (reader ticket, commission decision, export certificate or refusal) in the reader's language.

Fields are read from the node the verifier returns as signed; when the signature does not pass, they are
read from the document as received and the check says so next to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from mocks.library.forms import parse_fund_decision, parse_ticket
from mocks.portal.web.i18n import country, has
from mocks.portal.web.layout import Html, View, facts, join, tag, when
from mocks.portal.web.report_view import indication_badge, render_report
from signing.verifier import DocumentVerifier, SignatureRejected
from signing.xmlsafe import UnsafeXmlError, XmlLimits, parse_untrusted


@dataclass(frozen=True)
class CheckedDocument:
    """A signed document after the portal's signature check."""

    root: etree._Element | None
    "What to read fields from: the signed node when the signature passed, else the document as received."
    report: dict[str, Any] | None
    "The validation report (None when the XML could not be parsed)."
    signed_by: str | None
    "The signer's display name, when the signature passed."


def check_signed(verifier: DocumentVerifier, xml: str) -> CheckedDocument:
    """Parse safely and verify the document's enveloped signature."""
    try:
        root = parse_untrusted(xml.encode("utf-8"), XmlLimits(max_bytes=16 * 1024 * 1024))
    except UnsafeXmlError:
        return CheckedDocument(None, None, None)
    try:
        verified = verifier.verify(root)
    except SignatureRejected as rejected:
        return CheckedDocument(root, rejected.report.to_dict(), None)
    return CheckedDocument(verified.signed, verified.report.to_dict(), verified.identity.display_name())


def _label(view: View, prefix: str, value: str | None) -> str:
    if value is None:
        return "—"
    return view.t(f"{prefix}_{value}") if has(f"{prefix}_{value}") else value


def _ticket(view: View, root: etree._Element) -> Html:
    ticket = parse_ticket(root)
    return facts([
        (view.t("r_ticket_number"), tag("strong", ticket["ticket_number"], data_testid="result-ticket-number")),
        (view.t("r_status"), _label(view, "ts", ticket["status"])),
        (view.t("r_holder"), ticket["holder_name"]),
        (view.t("r_reader_category"), _label(view, "rc", ticket["reader_category"])),
        (view.t("r_issued_at"), when(ticket["issued_at"])),
        (view.t("r_valid_until"), when(ticket["valid_until"].isoformat(), date_only=True) if ticket["valid_until"]
         else view.t("r_perpetual")),
        (view.t("r_issuer"), ticket["issuer"]),
        (view.t("r_access_rights"), tag("ul", *[tag("li", _label(view, "al", r)) for r in ticket["access_rights"]])),
    ], data_testid="result-fields", data_kind="ReaderTicket")


def _decision(view: View, root: etree._Element) -> Html:
    decision = parse_fund_decision(root)
    objects = tag("ul", *[tag("li", item["title"], " — ", _label(view, "os", item["status"]))
                          for item in decision["objects"]])
    return facts([
        (view.t("r_submission_number"), tag("strong", decision["submission_number"])),
        (view.t("r_participant"), decision["participant_name"]),
        (view.t("r_decision"), tag("strong", _label(view, "dec", decision["decision"]),
                                   data_testid="result-decision", data_decision=decision["decision"])),
        (view.t("r_votes_label"), tag("span", view.t("r_votes", votes_for=decision["votes_for"],
                                                     votes_against=decision["votes_against"],
                                                     members=decision["members"]), data_testid="result-votes")),
        (view.t("r_decided_at"), when(decision["decided_at"])),
        (view.t("r_inclusion_due"), when(decision["inclusion_due_by"].isoformat(), date_only=True)
         if decision["inclusion_due_by"] else None),
        (view.t("r_exclusion_ground"), decision["exclusion_ground"]),
        (view.t("r_reason"), tag("span", decision["reason"], data_testid="refusal-reason") if decision["reason"]
         else None),
        (view.t("f_objects"), objects),
    ], data_testid="result-fields", data_kind="FundDecision")


def _text(node: etree._Element | None, name: str) -> str | None:
    if node is None:
        return None
    found = node.find(f"{{*}}{name}")
    return None if found is None or found.text is None else " ".join(found.text.split())


_REGULATION_SUBPOINTS = {"documents-checked": 3, "head-signed": 6}
"The regulation's p. 5 subpoint each refusing step rests on (the provider writes the basis in English only)."


def _legal_basis(view: View, step: str | None, written: str | None) -> str | None:
    """The refusal's legal basis in the reader's language; the provider's own (English) text only in English."""
    sub = _REGULATION_SUBPOINTS.get(step or "")
    if sub is not None:
        return view.t("legal_basis_export", sub=sub)
    return written if view.lang == "en" else None


def _export(view: View, root: etree._Element) -> Html:
    steps = root.findall("{*}steps/{*}step")
    step_names = {_text(s, "code"): _text(s, {"kk": "name", "ru": "nameRu", "en": "nameEn"}[view.lang]) for s in steps}
    outcome = _text(root, "outcome")
    rows: list[tuple[str, object]] = [
        (view.t("r_registration_number"), tag("strong", _text(root, "registrationNumber"))),
        (view.t("r_provider"), _text(root, "provider")),
        (view.t("r_outcome"), tag("strong", _label(view, "out", outcome), data_testid="result-outcome",
                                  data_outcome=outcome)),
    ]
    certificate, refusal = root.find("{*}certificate"), root.find("{*}refusal")
    if certificate is not None:
        items = tag("ul", *[tag("li", _text(item, "name"), f" × {_text(item, 'quantity')}, ",
                                f"{_text(item, 'insuredValueKzt')} ₸, ",
                                _label(view, "hs", _text(item, "heritageStatus")))
                            for item in certificate.findall("{*}items/{*}item")])
        rows += [(view.t("r_certificate_number"), tag("strong", _text(certificate, "number"),
                                                       data_testid="result-certificate-number")),
                 (view.t("r_issued_at"), when(_text(certificate, "issuedAt"))),
                 (view.t("f_export_from"), when(_text(certificate, "exportFrom"), date_only=True)),
                 (view.t("r_valid_until"), when(_text(certificate, "validUntil"), date_only=True)),
                 (view.t("f_destination"), country(view.lang, _text(certificate, "destinationCountry") or "")),
                 (view.t("f_purpose"), _label(view, "purpose", _text(certificate, "purpose"))),
                 (view.t("f_items"), items)]
    if refusal is not None:
        reason = _text(refusal, {"kk": "reason", "ru": "reasonRu", "en": "reasonEn"}[view.lang])
        step = _text(refusal, "step")
        rows += [(view.t("r_reason"), tag("strong", reason, data_testid="refusal-reason")),
                 (view.t("r_refusal_step"), step_names.get(step) or step),
                 (view.t("r_legal_basis"), _legal_basis(view, step, _text(refusal, "legalBasis"))),
                 (view.t("error_code"), tag("code", ", ".join(g.text or "" for g in refusal.findall("{*}groundCode"))))]
    rows.append((view.t("r_steps"), tag("ol", *[
        tag("li", step_names.get(_text(s, "code")) or _text(s, "code"), " — ", when(_text(s, "completedAt")))
        for s in steps])))
    return facts(rows, data_testid="result-fields", data_kind="CulturalExportResult")


def _generic(view: View, root: etree._Element) -> Html:
    rows = [(etree.QName(el).localname, " ".join(" ".join(el.itertext()).split()))
            for el in root if isinstance(el.tag, str) and etree.QName(el).localname != "Signature"]
    return facts(rows, data_testid="result-fields", data_kind=etree.QName(root).localname)


def _table(view: View, rows: list[etree._Element], columns: tuple[tuple[str, str], ...], testid: str) -> Html:
    head = tag("tr", *[tag("th", view.t(label) if has(label) else label) for label, _ in columns])
    body = [tag("tr", *[tag("td", _text(row, name) or "") for _, name in columns]) for row in rows]
    table = tag("table", tag("thead", head), tag("tbody", *body), class_="grid-table", data_testid=testid)
    return tag("div", table, style="overflow-x:auto; font-size:12px; word-break:break-all")  # digests are long


_FILE_COLUMNS = (("dep_col_no", "number"), ("dep_col_label", "diskLabel"), ("dep_col_directory", "directory"),
                 ("dep_col_file", "fileName"), ("dep_col_mb", "sizeMb"), ("dep_col_language", "language"),
                 ("dep_col_changed", "modifiedAt"), ("SHA-256", "sha256"))
_LIBRARY_COLUMNS = (("dep_col_no", "number"), ("dep_col_label", "diskLabel"), ("dep_col_directory", "directory"),
                    ("dep_col_name", "name"), ("dep_col_mb", "sizeMb"), ("dep_col_language", "language"),
                    ("dep_col_version", "version"))
_MISMATCH_COLUMNS = (("dep_col_no", "row"), ("dep_col_file", "path"), ("dep_col_field", "field"),
                     ("dep_col_declared", "declared"), ("dep_col_actual", "actual"))


def _deposit(view: View, root: etree._Element) -> Html:
    """The operator's act and agreement with the act's two tables, or its reasoned refusal (rules No. 146/НҚ)."""
    accepted = _text(root, "outcome") == "accepted"
    entry, act, refusal = root.find("{*}registerEntry"), root.find("{*}act"), root.find("{*}refusal")
    rows: list[tuple[str, object]] = [
        (view.t("dep_outcome"), tag("strong", view.t("dep_accepted" if accepted else "dep_refused"),
                                    data_testid="deposit-outcome", data_outcome=_text(root, "outcome"))),
        (view.t("dep_register_entry"), f"{_text(entry, 'number')} ({_text(entry, 'applicationNumber')})"),
        (view.t("dep_repository"), _text(root, "repositoryId")),
    ]
    parts: list[object] = []
    if accepted and act is not None:
        agreement = root.find("{*}agreement")
        rows += [(view.t("dep_act"), f"{_text(act, 'actNumber')}, {_text(act, 'date')}, {_text(act, 'place')}"),
                 (view.t("dep_agreement"), f"{_text(agreement, 'agreementNumber')}, {_text(agreement, 'date')}"),
                 (view.t("dep_notify_by"), _text(root, "authorityNotifyBy"))]
        parts += [tag("h3", view.t("dep_table_files")),
                  _table(view, act.findall("{*}tables/{*}sourceFiles/{*}file"), _FILE_COLUMNS, "act-files"),
                  tag("h3", view.t("dep_table_libraries")),
                  _table(view, act.findall("{*}tables/{*}libraries/{*}library"), _LIBRARY_COLUMNS, "act-libraries")]
    elif refusal is not None:
        reason = _text(refusal, {"kk": "reasonKk", "ru": "reasonRu"}.get(view.lang, "reasonEn"))
        rows += [(view.t("dep_ground"), tag("span", f"{reason} ({_text(refusal, 'legalBasis')})",
                                            data_testid="deposit-ground", data_ground=_text(refusal, "ground")))]
        mismatches = refusal.findall("{*}mismatch")
        if mismatches:
            parts += [tag("h3", view.t("dep_mismatches")),
                      _table(view, mismatches, _MISMATCH_COLUMNS, "act-mismatches")]
    return tag("div", facts(rows), *parts, data_testid="result-fields", data_kind="SoftwareDepositResult")


_READERS = {"ReaderTicket": _ticket, "FundDecision": _decision, "CulturalExportResult": _export,
            "SoftwareDepositResult": _deposit}


def result_fields(view: View, root: etree._Element) -> Html:
    """The key fields of a result document, by its kind."""
    reader = _READERS.get(etree.QName(root).localname, _generic)
    try:
        return reader(view, root)
    except (ValueError, KeyError):
        return _generic(view, root)


def signature_check(view: View, checked: CheckedDocument, *, testid: str) -> Html:
    """One line (indication and signer) with the full report behind it."""
    report = checked.report or {}
    signer = (report.get("signer") or {}).get("name")
    line = join(indication_badge(view, report.get("indication"), testid=f"{testid}-indication"), " ",
                f"{view.t('signed_by_whom')}: {checked.signed_by or signer or '—'}")
    return tag("div", tag("p", line),
               tag("details", tag("summary", view.t("report_title")),
                   render_report(view, report, testid=f"{testid}-report")),
               data_testid=testid, data_indication=report.get("indication"))


def receipt_fields(view: View, root: etree._Element) -> Html:
    """The receipt's binding to the request."""
    digest = root.find("{*}requestDigest")
    return facts([
        (view.t("session_id"), tag("code", _text(root, "sessionId"))),
        (view.t("received_at"), when(_text(root, "receivedAt"))),
        (view.t("request_digest"), tag("code", digest.text if digest is not None else "")),
        (view.t("indication"), tag("code", _text(root, "signatureIndication"))),
    ], data_testid="receipt-fields")
