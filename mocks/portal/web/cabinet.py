"""The personal cabinet: the applicant's applications, one application in detail, the signed downloads, and
the live event stream, all read from the gateway's cabinet API with the portal's own credentials.

The browser only ever talks to the portal: ``/cabinet/{owner}/events`` relays the gateway's server-sent
events, and the downloads are proxied, so the sender's password never reaches a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from gateway.cabinet.catalogue import STATUSES, STEPS, name
from mocks.portal.web.i18n import has
from mocks.portal.web.layout import Html, View, badge, error_page, facts, join, page, tag, when, xml_block
from mocks.portal.web.report_view import render_report
from mocks.portal.web.results import check_signed, receipt_fields, result_fields, signature_check
from mocks.portal.web.session import PERSON, owners_of
from mocks.portal.web.state import STATE, PortalState, view_for
from mocks.portal.web.submit import signed_panel
from signing.xmlsafe import UnsafeXmlError, parse_untrusted

log = logging.getLogger("egov.portal.web")
OWNER = re.compile(r"[0-9]{12}")
API_TIMEOUT = aiohttp.ClientTimeout(total=20)


class ApiProblem(Exception):
    """The gateway's cabinet API answered with an error (or could not be reached)."""

    def __init__(self, status: int, title: str, code: str | None) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.title, self.code = status, title, code


async def _api_json(state: PortalState, url: str, lang: str, **params: str) -> dict[str, Any]:
    assert state.session is not None
    try:
        async with state.session.get(url, params={"lang": lang, **params}, timeout=API_TIMEOUT,
                                     headers={**state.auth, "Accept-Language": lang}) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                raise ApiProblem(response.status, str(body.get("title") or response.reason), body.get("code"))
            return body
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        log.warning("cabinet API unavailable: %s", type(exc).__name__)
        raise ApiProblem(502, "", None) from None


def _owner(request: web.Request, view: View) -> str | web.Response:
    """The cabinet in the path, if it is the signed-in person's (or their organisation's); else a 404 page,
    the same as for no such cabinet."""
    owner = request.match_info["owner"]
    if not (OWNER.fullmatch(owner) and owner in owners_of(request[PERSON])):
        return error_page(view, view.t("not_found_title"), view.t("not_found_title"), status=404)
    return owner


def _problem_page(view: View, problem: ApiProblem) -> web.Response:
    message = f"{problem.title} ({problem.code})" if problem.code else (problem.title or view.t("gateway_unreachable"))
    return error_page(view, view.t("cabinet_error"), message, status=404 if problem.status == 404 else 502,
                      testid="cabinet-error")


def _service_title(view: View, item: dict[str, Any]) -> str:
    """The service's one name (the same catalogue as the cards and forms); the gateway's title for others."""
    key = f"svc_{item.get('serviceId')}"
    return view.t(key) if has(key) else str(item.get("serviceTitle") or item.get("serviceId"))


def _status_name(view: View, item: dict[str, Any]) -> str:
    status = str(item.get("status"))
    return name(STATUSES, status, view.lang) or status


def _status(view: View, item: dict[str, Any]) -> Html:
    """The status badge; an application the gateway moved to its archive (after the retention) says so."""
    archived = (tag("span", view.t("archived"), class_="archived", data_testid="archived-marker")
                if item.get("archived") else "")
    return join(badge(str(item.get("status")), _status_name(view, item)), archived)


def _deadline(view: View, item: dict[str, Any]) -> Html:
    overdue = (tag("span", view.t("overdue"), class_="overdue", data_testid="overdue-marker")
               if item.get("overdue") else "")
    return join(when(item.get("deadline")), overdue) if item.get("deadline") else join("—", overdue)


def _heading(view: View, state: PortalState, owner: str) -> Html:
    name = state.owner_name(owner)
    label = view.t("bin") if any(org.get("bin") == owner for org in state.pki.organisations.values()) else view.t("iin")
    return join(tag("h1", view.t("nav_cabinet"), data_testid="cabinet-title"),
                tag("p", tag("strong", name or ""), f" · {label} {owner}", class_="lead", data_testid="cabinet-owner"))


async def cabinet(request: web.Request) -> web.Response:
    """``/cabinet/{owner}``: the applications, newest first, updated live."""
    state, view = request.app[STATE], view_for(request)
    owner = _owner(request, view)
    if isinstance(owner, web.Response):
        return owner
    try:
        listing = await _api_json(state, state.api(owner), view.lang, limit="200")
    except ApiProblem as problem:
        return _problem_page(view, problem)
    rows = [tag("tr", tag("td", tag("a", _service_title(view, item), data_testid="application-link",
                                    href=f"/cabinet/{owner}/{quote(str(item['messageId']))}")),
                tag("td", when(item.get("createdAt"))), tag("td", _status(view, item)),
                tag("td", _deadline(view, item)),
                data_testid="application-row", data_message_id=item.get("messageId"), data_status=item.get("status"))
            for item in listing.get("applications", [])]
    table = tag("table", tag("thead", tag("tr", *[tag("th", view.t(k)) for k in
                                                  ("col_service", "col_submitted", "col_status", "col_deadline")])),
                tag("tbody", *rows), class_="apps", data_testid="applications") if rows else \
        tag("p", view.t("no_applications"), class_="card", data_testid="no-applications")
    live = tag("div", tag("p", view.t("total", n=listing.get("total", len(rows))), class_="meta"), table,
               data_live=True, data_events=f"/cabinet/{owner}/events")
    return page(view, view.t("nav_cabinet"), _heading(view, state, owner),
                tag("h2", view.t("my_applications")), tag("p", view.t("live_hint"), class_="hint"), live,
                tag("p", tag("a", view.t("new_application"), href="/", class_="button"), style="margin-top:16px"))


def _step_name(view: View, step: str) -> Html:
    """A step by its one catalogue name; a step the catalogue does not know shows its code."""
    known = name(STEPS, step, view.lang) if step in STEPS else None
    return tag("strong", known) if known else tag("code", step)


def _timeline(view: View, history: list[dict[str, Any]]) -> Html:
    """Each event's localized status and step. The events' ``note`` is English for operators (it may name a
    worker or a host), so it is never shown to the applicant."""
    items = [tag("li", tag("div", when(event.get("at")), " ", badge(str(event.get("status")),
                                                                    _status_name(view, event),
                                                                    testid="timeline-status")),
                 tag("div", _step_name(view, str(event["step"])) if event.get("step") else "",
                     data_testid="timeline-step", data_step=event.get("step")),
                 data_testid="timeline-item", data_status=event.get("status"))
             for event in history]
    return tag("section", tag("h2", view.t("timeline")), tag("ol", *items, class_="timeline", data_testid="timeline"),
               class_="card")


def _result(view: View, state: PortalState, owner: str, item: dict[str, Any]) -> Html:
    message_id = quote(str(item["messageId"]))
    if not item.get("result"):
        return tag("section", tag("h2", view.t("result")), tag("p", view.t("no_result_yet"), data_testid="no-result"),
                   class_="card", data_testid="result")
    checked = check_signed(state.verifier, item["result"])
    return tag("section", tag("h2", view.t("result")),
               result_fields(view, checked.root) if checked.root is not None else "",
               signature_check(view, checked, testid="result-signature"),
               tag("p", tag("a", view.t("download_result"), href=f"/cabinet/{owner}/{message_id}/result.xml",
                            class_="button", data_testid="result-link", download=True)),
               xml_block(item["result"], testid="result-xml", summary=view.t("show_xml")),
               class_="card", data_testid="result")


def _receipt(view: View, owner: str, item: dict[str, Any]) -> Html:
    if not item.get("receipt"):
        return Html("")
    try:
        fields = receipt_fields(view, parse_untrusted(item["receipt"].encode("utf-8")))
    except UnsafeXmlError:
        fields = Html("")
    return tag("section", tag("h2", view.t("receipt")), tag("p", view.t("receipt_hint"), class_="hint"), fields,
               tag("p", tag("a", view.t("download_receipt"), class_="button secondary", data_testid="receipt-link",
                            href=f"/cabinet/{owner}/{quote(str(item['messageId']))}/receipt.xml", download=True)),
               xml_block(item["receipt"], testid="receipt-xml", summary=view.t("show_xml")), class_="card")


async def application(request: web.Request) -> web.Response:
    """``/cabinet/{owner}/{messageId}``: status, timeline, signatures, receipt and result."""
    state, view = request.app[STATE], view_for(request)
    owner = _owner(request, view)
    if isinstance(owner, web.Response):
        return owner
    message_id = request.match_info["message_id"]
    try:
        item = await _api_json(state, state.api(owner, quote(message_id, safe="")), view.lang)
    except ApiProblem as problem:
        return _problem_page(view, problem)
    submission = state.submissions.get(message_id)
    summary = facts([
        (view.t("col_status"), _status(view, item)),
        (view.t("col_submitted"), when(item.get("createdAt"))),
        (view.t("updated"), when(item.get("updatedAt"))),
        (view.t("col_deadline"), _deadline(view, item)),
        (view.t("applicant_name"), item.get("applicantName")),
        (view.t("organisation"), item.get("organisation")),
        (view.t("bin"), item.get("applicantBin")),
        (view.t("error_code"), tag("code", item.get("errorCode")) if item.get("errorCode") else None),
        (view.t("error"), item.get("errorMessage")),
        (view.t("message_id"), tag("code", item.get("messageId"))),
        (view.t("session_id"), tag("code", item.get("sessionId"))),
    ], data_testid="application-summary")
    live = tag("div", tag("section", summary, class_="card"), tag("div", _timeline(view, item.get("history") or []),
                                                                   _result(view, state, owner, item), class_="cols",
                                                                   style="margin-top:16px"),
               data_live=True, data_events=f"/cabinet/{owner}/events", data_message_id=item.get("messageId"))
    report = item.get("validationReport") if isinstance(item.get("validationReport"), dict) else None
    return page(view, _service_title(view, item),
                tag("p", tag("a", "← ", view.t("back_to_cabinet"), href=f"/cabinet/{owner}",
                             data_testid="back-to-cabinet")),
                tag("h1", _service_title(view, item), data_testid="application-title"),
                tag("div", view.t("submitted_now"), class_="alert ok", data_testid="submitted")
                if request.query.get("submitted") and submission else "",
                live,
                tag("div", signed_panel(view, submission), style="margin-top:16px") if submission else "",
                tag("div", render_report(view, report, testid="applicant-signature",
                                         title=view.t("applicant_signature")),
                    _receipt(view, owner, item), class_="cols", style="margin-top:16px"),
                tag("section", tag("h2", view.t("document")),
                    xml_block(item.get("document") or "", testid="document-xml", summary=view.t("show_xml")),
                    class_="card", style="margin-top:16px") if item.get("document") else "")


async def download(request: web.Request) -> web.StreamResponse:
    """``/cabinet/{owner}/{messageId}/result.xml`` or ``receipt.xml``: the signed XML, proxied as is."""
    state, view = request.app[STATE], view_for(request)
    owner = _owner(request, view)
    if isinstance(owner, web.Response):
        return owner
    kind, message_id = request.match_info["kind"], request.match_info["message_id"]
    assert state.session is not None
    try:
        async with state.session.get(state.api(owner, quote(message_id, safe=""), kind), headers=state.auth,
                                     params={"lang": view.lang}, timeout=API_TIMEOUT) as response:
            body = await response.read()
            if response.status != 200:
                problem = await response.json(content_type=None)
                raise ApiProblem(response.status, str(problem.get("title") or response.reason), problem.get("code"))
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return _problem_page(view, ApiProblem(502, "", None))
    except ApiProblem as problem:
        return _problem_page(view, problem)
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", message_id)
    return web.Response(body=body, content_type="application/xml", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{kind}-{safe_name}.xml"'})


async def events(request: web.Request) -> web.StreamResponse:
    """``/cabinet/{owner}/events``: the gateway's event stream for this owner, relayed line by line; only the
    signed-in person's own cabinets."""
    state = request.app[STATE]
    owner = request.match_info["owner"]
    if owner not in owners_of(request[PERSON]):
        raise web.HTTPNotFound()
    assert state.session is not None
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(b"retry: 5000\n\n")
    upstream: aiohttp.ClientResponse | None = None
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
        upstream = await state.session.get(state.events_url(owner),
                                           headers={**state.auth, "Accept": "text/event-stream"},
                                           timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=90))
        state.streams.add(upstream)
        if upstream.status != 200:
            log.warning("gateway event stream answered HTTP %s", upstream.status)
            await response.write(f": gateway answered {upstream.status}\n\n".encode())
        else:
            async for line in upstream.content:
                await response.write(line)
    if upstream is not None:
        state.streams.discard(upstream)
        upstream.release()
    return response
