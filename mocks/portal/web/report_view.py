"""A signature validation report (the gateway's ``ValidationReport.to_dict()``) as a person reads it.

The verifier's own error and warning texts are English technical detail for operators: they are shown on
English pages only. Everything else (indication, sub-indication, error code, roles, key purpose, revocation)
is in the reader's language, and identifiers (codes, algorithms, formats) are ``<code>``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from mocks.portal.web.i18n import has
from mocks.portal.web.layout import Html, View, badge, day_text, facts, join, tag, when

_CN = re.compile(r"(?:^|,)CN=((?:\\,|[^,])+)")
INDICATION_CLASS = {"TOTAL_PASSED": "pass", "TOTAL_FAILED": "fail", "INDETERMINATE": "indeterminate"}


def common_name(subject: str | None) -> str:
    """The CN of an RFC 4514 name, or the whole name when it has none."""
    found = _CN.search(subject or "")
    return found.group(1).replace("\\,", ",") if found else (subject or "")


def short_algorithm(uri: str | None) -> str:
    """``rsa-sha256`` from ``http://www.w3.org/2001/04/xmldsig-more#rsa-sha256``."""
    return (uri or "—").rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def indication_badge(view: View, indication: str | None, *, testid: str = "indication") -> Html:
    """The indication as a coloured badge with its localized meaning."""
    code = indication or "INDETERMINATE"
    text = view.t(f"ind_{code}") if has(f"ind_{code}") else code
    return badge(INDICATION_CLASS.get(code, "indeterminate"), join(text, " (", tag("code", code), ")"), testid=testid)


def sub_indication_text(view: View, sub: str | None) -> Html:
    """``HASH_FAILURE — the document was changed after signing.`` (the code as ``<code>``)."""
    if not sub:
        return Html("")
    return join(tag("code", sub), " — ", view.t(f"si_{sub}")) if has(f"si_{sub}") else tag("code", sub)


def _signer_rows(view: View, signer: dict[str, Any]) -> list[tuple[str, object]]:
    roles = [view.t(f"role_{role}") if has(f"role_{role}") else role for role in signer.get("roles") or []]
    purpose = signer.get("key_purpose")
    purpose_text = view.t(f"key_{purpose}") if purpose in ("sign", "auth") else purpose
    name = signer.get("name") or "—"
    if signer.get("organisation"):
        name = f"{name}, {signer['organisation']}"
    return [(view.t("signer"), tag("strong", name, data_testid="report-signer")), (view.t("iin"), signer.get("iin")),
            (view.t("bin"), signer.get("bin")), (view.t("roles"), ", ".join(roles)),
            (view.t("key_purpose"), purpose_text), (view.t("cert_serial"),
                                                  tag("code", signer.get("certificate_serial"))
                                                  if signer.get("certificate_serial") else None)]


def _revocation(view: View, revocation: dict[str, Any] | None) -> Html | None:
    if not revocation:
        return None
    status = str(revocation.get("status") or "unknown")
    text = view.t(f"rev_{status}") if has(f"rev_{status}") else status
    parts: list[object] = [tag("strong", text)]
    if revocation.get("source") and revocation.get("source") != "none":
        parts.append(f" ({view.t('via', source=str(revocation['source']).upper())})")
    if revocation.get("checked_at"):
        parts += [", ", when(revocation["checked_at"])]
    if revocation.get("detail") and view.lang == "en":
        parts.append(tag("div", revocation["detail"], class_="note"))
    return join(*parts)


def _day(value: object) -> str:
    """A certificate's end date as dd.mm.yyyy, like every other date on the portal."""
    try:
        return day_text(datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value or "—")


def render_report(view: View, report: dict[str, Any] | None, *, testid: str = "validation-report",
                  title: str | None = None) -> Html:
    """The whole report as a card; empty when there is none."""
    if not report:
        return Html("")
    chain = report.get("chain") or []
    chain_list = tag("ol", *[
        tag("li", tag("span", common_name(element.get("subject")), title=element.get("subject")), " ",
            tag("span", view.t("until", date=_day(element.get("not_after"))), class_="meta"))
        for element in chain
    ]) if chain else None
    rows: list[tuple[str, object]] = [
        (view.t("indication"), indication_badge(view, report.get("indication"))),
        (view.t("sub_indication"), tag("span", sub_indication_text(view, report.get("sub_indication")),
                                       data_testid="report-sub-indication") if report.get("sub_indication") else None),
        (view.t("error_code"), tag("code", report.get("error_code")) if report.get("error_code") else None),
        *_signer_rows(view, report.get("signer") or {}),
        (view.t("chain"), chain_list),
        (view.t("revocation"), _revocation(view, report.get("revocation"))),
        (view.t("algorithms"), tag("code", f"{short_algorithm(report.get('signature_algorithm'))} / "
                                           f"{short_algorithm(report.get('digest_algorithm'))}")),
        (view.t("format"), tag("code", report.get("signature_format")) if report.get("signature_format") else None),
        (view.t("validation_time"), when(report.get("validation_time"))),
        (view.t("errors"), tag("ul", *[tag("li", error) for error in report.get("errors") or []])
         if report.get("errors") and view.lang == "en" else None),
        (view.t("warnings"), tag("ul", *[tag("li", warning) for warning in report.get("warnings") or []])
         if report.get("warnings") and view.lang == "en" else None),
    ]
    return tag("section", tag("h3", title or view.t("report_title")), facts(rows), class_="card",
               data_testid=testid, data_indication=report.get("indication"))
