"""``/deposit``: the software deposit form (rules No. 146/НҚ) with the package uploaded from the browser.

The browser reads the act's tables (``FILE.tables.json`` from ``egov-gateway deposit pack``, which also names the
package's SHA-256 and size), uploads the package in chunks (tus PATCHes with ``fetch``, a progress bar) through
this server, which forwards them to the gateway's ``/api/v1/uploads`` with the portal's sender credentials (the
browser never sees them), then posts the tables; the server builds the application of appendix 1, signs it with
the signed-in employee's key and sends it. Routes::

    GET  /deposit                               the form
    POST /deposit                               JSON {softwareCode, tables}: sign and send; JSON {location} or refusal
    POST /deposit/uploads                       tus create, forwarded (Location rewritten to the portal's address)
    HEAD|PATCH /deposit/uploads/{id}            tus offset / chunk, forwarded, the chunk streamed through
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from mocks.deposit.forms import PackageInfo, build_application
from mocks.deposit.pack import Tables
from mocks.portal.web.layout import Html, View, error_page, page, tag
from mocks.portal.web.session import PERSON
from mocks.portal.web.state import STATE, PortalState, full_name, view_for
from signing.nca import SignerRole

DEPOSIT_SERVICE = "egov.software-deposit"
UPLOADS = "/api/v1/uploads"
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FORWARDED = ("Tus-Resumable", "Upload-Length", "Upload-Metadata", "Upload-Offset", "Content-Type", "Content-Length")
_RETURNED = ("Tus-Resumable", "Upload-Offset", "Upload-Length", "Upload-Expires")
SIGNING_ROLES = frozenset({SignerRole.FIRST_HEAD, SignerRole.CAN_SIGN})
log = logging.getLogger("egov.portal.web")

JS = r"""
(function () {
  var form = document.getElementById('deposit-form');
  if (!form) return;
  var bar = document.getElementById('upload-progress'), percent = document.getElementById('upload-percent');
  var status = document.getElementById('deposit-status'), CHUNK = 4 * 1024 * 1024;
  function say(key, extra) { status.textContent = form.getAttribute('data-msg-' + key) + (extra ? ' ' + extra : ''); }
  function fail(text) { say('refused', text); form.elements['send'].disabled = false; }
  function b64(text) {
    var bytes = new TextEncoder().encode(text), out = '';
    for (var i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]);
    return btoa(out);
  }
  async function problem(response) {
    try {
      var body = await response.json();
      return (body.code || response.status) + ': ' + (body.detail || body.title || '');
    } catch (e) { return String(response.status); }
  }
  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    var pkg = form.elements['package'].files[0], tablesFile = form.elements['tables'].files[0];
    if (!pkg || !tablesFile) { say('choose'); return; }
    var tables;
    try { tables = JSON.parse(await tablesFile.text()); } catch (e) { say('bad-tables'); return; }
    var info = tables['package'] || {};
    if (info.sizeBytes !== pkg.size || !info.sha256) { say('mismatch'); return; }
    form.elements['send'].disabled = true;
    say('uploading');
    var headers = {'Tus-Resumable': '1.0.0', 'Upload-Length': String(pkg.size),
                   'Upload-Metadata': 'filename ' + b64(pkg.name) + ',sha256 ' + b64(info.sha256)};
    var response = await fetch('/deposit/uploads', {method: 'POST', headers: headers});
    if (response.status !== 201) { return fail(await problem(response)); }
    var url = response.headers.get('Location'), offset = 0;
    bar.max = pkg.size;
    while (offset < pkg.size) {
      response = await fetch(url, {method: 'PATCH', body: pkg.slice(offset, offset + CHUNK), headers: {
        'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream'}});
      if (response.status !== 204) { return fail(await problem(response)); }
      offset = Number(response.headers.get('Upload-Offset'));
      bar.value = offset;
      percent.textContent = Math.floor(100 * offset / pkg.size) + '%';
    }
    say('signing');
    response = await fetch('/deposit', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({softwareCode: form.elements['softwareCode'].value, tables: tables})});
    var answer = await response.json();
    if (answer.location) { window.location.assign(answer.location); return; }
    say('refused', (answer.code || '') + ': ' + (answer.message || ''));
    form.elements['send'].disabled = false;
  });
})();
"""


def may_deposit(person: Any) -> bool:
    """An organisation's first head or an employee with the right to sign (the service's required roles)."""
    return bool(person.bin) and bool(SIGNING_ROLES & set(person.roles))


async def show_form(request: web.Request) -> web.Response:
    view = view_for(request)
    person = request[PERSON]
    if not may_deposit(person):
        return error_page(view, view.t("org_only_title"), view.t("dep_roles_only"), status=403, testid="org-only")
    messages = {f"data_msg_{key}": view.t(f"dep_msg_{key.replace('-', '_')}")
                for key in ("choose", "bad-tables", "mismatch", "uploading", "signing", "refused")}
    field = lambda label, control: tag("label", tag("span", label), control, class_="field")  # noqa: E731
    form = tag(
        "form",
        field(view.t("dep_code"), tag("input", name="softwareCode", value="EGOV-GW-001", required=True,
                                      data_testid="software-code")),
        field(view.t("dep_tables"), tag("input", type="file", name="tables", accept=".json", required=True,
                                        data_testid="tables-file")),
        field(view.t("dep_package"), tag("input", type="file", name="package", accept=".gz,.tgz", required=True,
                                         data_testid="package-file")),
        tag("p", tag("progress", id="upload-progress", value="0", max="1", data_testid="upload-progress"), " ",
            tag("span", "0%", id="upload-percent", data_testid="upload-percent")),
        tag("p", tag("button", view.t("dep_send"), type="submit", name="send", class_="button",
                     data_testid="deposit-send")),
        tag("p", "", id="deposit-status", role="status", data_testid="deposit-status"),
        id="deposit-form", class_="card", data_testid="deposit-form", **messages)
    return page(view, view.t(f"svc_{DEPOSIT_SERVICE}"),
                tag("h1", view.t(f"svc_{DEPOSIT_SERVICE}"), data_testid="service-title"),
                tag("p", view.t("dep_intro"), class_="lead"),
                tag("p", view.t("you_are", name=full_name(person)), " — ", person.organisation or "", class_="meta"),
                form, tag("script", src="/static/deposit.js", defer=True))


async def send(request: web.Request) -> web.Response:
    """POST /deposit: the application with the posted tables, signed by the signed-in employee, sent."""
    state, person = request.app[STATE], request[PERSON]
    if not may_deposit(person):
        return web.json_response({"code": "ID_ROLE_NOT_ALLOWED", "message": "organisation signers only"}, status=403)
    try:
        posted = await request.json()
        tables = Tables.from_json(posted["tables"])
        info = posted["tables"]["package"]
        package = PackageInfo(Path(str(info["fileName"])).name, int(info["sizeBytes"]), str(info["sha256"]))
        code = str(posted.get("softwareCode") or "")[:200]
    except (ValueError, KeyError, TypeError):
        return web.json_response({"code": "PORTAL_BAD_TABLES", "message": "unreadable tables"}, status=400)
    name, _, version = tables.disk_label.partition(" ")
    document = build_application(
        bin=person.bin or "", owner_name=person.organisation or "", software_name=name or "software",
        software_version=version or "1", architecture_code=code, contact_person=full_name(person),
        package=package, tables=tables)
    signed = state.signer(person, "sign").sign(document)
    message_id = str(uuid.uuid4())
    try:
        client = await state.soap_client()
        result = await asyncio.to_thread(client.send, service_id=DEPOSIT_SERVICE, sender_id=state.sender,
                                         password=state.password, document=signed, message_id=message_id)
    except Exception as exc:  # zeep/requests raise many kinds; the reader only needs to know it failed
        log.warning("gateway unreachable for %s: %s", DEPOSIT_SERVICE, type(exc).__name__)
        return web.json_response({"code": "GATEWAY_UNREACHABLE", "message": "the gateway is unreachable"},
                                 status=502)
    if not result.ok:
        messages = (result.error_data or {}).get("messages") or {}
        lang = view_for(request).lang
        return web.json_response({"code": result.status_code, "message": messages.get(lang) or result.message},
                                 status=422)
    return web.json_response({"location": f"/cabinet/{person.bin}/{message_id}?submitted=1"})


# ------------------------------------------------------------------------------------- the upload proxy


def _headers(request: web.Request, state: PortalState) -> dict[str, str]:
    headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
    return {**headers, **state.auth}


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(256 * 1024):
        yield chunk


async def _forward(request: web.Request, method: str, url: str, **kwargs: Any) -> web.Response:
    state = request.app[STATE]
    assert state.session is not None
    try:
        async with state.session.request(method, url, headers=_headers(request, state), **kwargs) as upstream:
            body = await upstream.read()
            headers = {name: upstream.headers[name] for name in _RETURNED if name in upstream.headers}
            location = upstream.headers.get("Location")
            if location:
                headers["Location"] = "/deposit/uploads/" + location.rstrip("/").rsplit("/", 1)[-1]
            return web.Response(status=upstream.status, body=body, headers=headers,
                                content_type=upstream.content_type if body else None)
    except aiohttp.ClientError:
        return web.json_response({"code": "GATEWAY_UNREACHABLE", "detail": "the gateway is unreachable"}, status=502)


async def create_upload(request: web.Request) -> web.Response:
    return await _forward(request, "POST", request.app[STATE].gateway_url + UPLOADS)


async def upload_chunk(request: web.Request) -> web.Response:
    upload_id = request.match_info["upload_id"]
    if not _UPLOAD_ID.fullmatch(upload_id):
        return web.json_response({"code": "UPLOAD_NOT_FOUND"}, status=404)
    url = f"{request.app[STATE].gateway_url}{UPLOADS}/{upload_id}"
    if request.method == "HEAD":
        return await _forward(request, "HEAD", url)
    return await _forward(request, "PATCH", url, data=_body(request))


async def script(request: web.Request) -> web.Response:
    return web.Response(text=JS, content_type="application/javascript", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/deposit", show_form)
    app.router.add_post("/deposit", send)
    app.router.add_post("/deposit/uploads", create_upload)
    app.router.add_route("HEAD", "/deposit/uploads/{upload_id}", upload_chunk)
    app.router.add_patch("/deposit/uploads/{upload_id}", upload_chunk)
    app.router.add_get("/static/deposit.js", script)


def card(view: View) -> Html:
    """The service's card on the home page (for organisation signers)."""
    return tag("a", tag("h3", view.t(f"svc_{DEPOSIT_SERVICE}")), tag("p", view.t("dep_intro")),
               tag("p", view.t("for_organisations"), class_="meta"),
               tag("span", view.t("apply"), " →", class_="button"), href="/deposit", class_="card",
               data_testid=f"service-{DEPOSIT_SERVICE}")
