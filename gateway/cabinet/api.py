"""Cabinet API: an applicant's applications, for the portal to show in the personal cabinet.

``GET /api/v1/cabinet/{iin}/applications``               list, newest first (``offset``, ``limit``);
                                                         an organisation's BIN works in place of the IIN
``GET /api/v1/cabinet/{iin}/applications/{messageId}``   one: status, history, report, signed result, and the
                                                         document and result as JSON (:mod:`gateway.cabinet.readable`)
``GET .../{messageId}/result``                           the signed result document as XML
``GET .../{messageId}/receipt``                          the gateway's signed receipt as XML
``GET /api/v1/cabinet/{iin}/events``                     server-sent events: the owner's applications changing

Answers are JSON in UTF-8, indented with ``?pretty``. Names (status, steps, service, errors) come in the
language of ``?lang=`` or Accept-Language (kk, ru, en);
deadlines are counted in Kazakhstan working days from acceptance (:mod:`gateway.cabinet.calendar`).

Only a sender with ``cabinet = true`` (a portal), authenticated with HTTP Basic, may call it, and it sees
only the applications it submitted itself; ``cabinet_reads_all = true`` is the explicit grant to read every
sender's (the national portal of record). The lookup is always scoped by the IIN in the path too: an item is
never shown under another IIN. ``{messageId}`` is the caller's own messageId, or an application's sessionId
(``{uuid}``, as listed), which is how a granted reader opens another sender's application.
Another sender's application, like a missing one, is ``CLIENT_NOT_FOUND`` (404, not 403): a reader must not
learn that some other portal holds an application of this person. Every read is registered
(:mod:`gateway.cabinet.access_log`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from gateway.access.senders import AuthenticatedSender
from gateway.cabinet import archived
from gateway.cabinet.archived import Found
from gateway.cabinet.catalogue import SERVICES, STATUSES, STEPS, name
from gateway.cabinet.context import CABINET
from gateway.cabinet.events import refusal, serve
from gateway.errors import CATALOGUE, GatewayError, storage_refusal
from gateway.lifecycle.application import Application
from gateway.web.problems import guarded, language_of
from gateway.web.reading import basic_auth_sender
from signing.idnumbers import is_valid_bin, is_valid_iin

log = logging.getLogger("egov.cabinet")


def _summary(request: web.Request, app: Application, language: str, *, archived: bool = False) -> dict[str, Any]:
    components = request.app[CABINET]
    service = components.registry.get(app.service_id)
    deadline = overdue = None
    if service is not None:
        settings = service.settings
        due = components.calendar.add(datetime.fromisoformat(app.created_at),
                                      working_days=settings.deadline_working_days, hours=settings.deadline_hours)
        finished_at = datetime.fromisoformat(app.updated_at) if app.status.final else datetime.now(UTC)
        deadline, overdue = due.isoformat(timespec="seconds"), finished_at > due
    error = CATALOGUE.get(app.error_code or "")
    return {
        "sessionId": app.id,
        "messageId": app.message_id,
        "senderId": app.sender_id,
        "serviceId": app.service_id,
        "serviceTitle": name(SERVICES, app.service_id, language, service.settings.title if service else None),
        "status": str(app.status),
        "statusName": name(STATUSES, str(app.status), language),
        "createdAt": app.created_at,
        "updatedAt": app.updated_at,
        "deadline": deadline,
        "overdue": overdue,
        "applicantName": app.applicant_name,
        "applicantBin": app.applicant_bin,
        "organisation": app.organisation,
        "errorCode": app.error_code,
        "errorMessage": error.message(language) if error else None,
        "hasResult": app.has_result,
        "archived": archived,
    }


@dataclass(frozen=True)
class Reader:
    """An authenticated cabinet reader and the owner (IIN or BIN) whose cabinet it asks for."""

    sender: AuthenticatedSender
    "Who reads."
    owner: str
    "Whose cabinet: the valid IIN or BIN from the path."

    @property
    def scope(self) -> str | None:
        """The sender whose applications it may see; None when granted every sender's (``cabinet_reads_all``)."""
        return None if self.sender.settings.cabinet_reads_all else self.sender.sender_id

    async def register(self, request: web.Request, action: str, apps: Sequence[Application], *,
                       found: bool = True) -> None:
        """Record this read (before it is answered: no record, no answer)."""
        await request.app[CABINET].access_log.record(
            sender=self.sender.sender_id, owner=self.owner, action=action, applications=[a.id for a in apps],
            found=found, remote=request.remote or "")


async def _reader(request: web.Request) -> Reader:
    components = request.app[CABINET]
    sender = await basic_auth_sender(request, components.senders)
    if not sender.settings.cabinet:
        raise GatewayError("CLIENT_ACCESS_DENIED", "this sender may not read cabinets")
    owner = request.match_info["iin"]
    if not (len(owner) == 12 and owner.isascii() and owner.isdigit()):  # e.g. a README's <IIN> left as it was
        raise GatewayError("CLIENT_OWNER_INVALID", "put the applicant's IIN or the organisation's BIN in the path "
                                                   "(a test person's: `egov-gateway pki list`)")
    if not (is_valid_iin(owner) or is_valid_bin(owner)):  # a citizen's IIN or an organisation's BIN
        raise GatewayError("ID_IIN_INVALID", "the path must hold a valid IIN or BIN")
    return Reader(sender, owner)


async def _authorise_stream(request: web.Request) -> Reader:
    """Who opens a live stream of whose cabinet: an owner it submitted applications of, unless granted all."""
    reader = await _reader(request)
    store, archive = request.app[CABINET].store, request.app[CABINET].archive
    try:  # the stream handler answers GatewayErrors only
        allowed = reader.scope is None or await store.has_applications(reader.owner, reader.scope) or bool(
            archive and await archive.has(reader.owner, reader.scope))
        await reader.register(request, "events", (), found=allowed)
    except RedisError as exc:
        raise storage_refusal(exc) from None
    if not allowed:  # as for a missing application: whether other senders have some is not revealed
        raise GatewayError("CLIENT_NOT_FOUND", "no applications of this owner from this sender")
    return reader


async def _find(request: web.Request, reader: Reader, action: str) -> Found:
    """The application in the path (live or archived), if this reader may see it; registered either way."""
    components, wanted = request.app[CABINET], request.match_info["message_id"]
    found = await archived.find(components.store, components.archive, reader.owner, wanted,
                                sender_id=reader.sender.sender_id, scope=reader.scope)
    await reader.register(request, action, [found.application] if found else (), found=found is not None)
    if found is None:  # the same words whether it is missing or another sender's
        raise GatewayError("CLIENT_NOT_FOUND", "no application with this messageId or sessionId in this cabinet "
                                               "from this sender")
    return found


@guarded
async def list_applications(request: web.Request) -> web.Response:
    reader = await _reader(request)
    try:
        offset = max(0, int(request.query.get("offset", "0")))
        limit = min(200, max(1, int(request.query.get("limit", "50"))))
    except ValueError:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "offset and limit must be integers") from None
    components = request.app[CABINET]
    total, apps = await archived.page(components.store, components.archive, reader.owner, sender_id=reader.scope,
                                      offset=offset, limit=limit)
    await reader.register(request, "list", [found.application for found in apps])
    language = language_of(request)
    return web.json_response({"iin": reader.owner, "total": total, "offset": offset,
                              "applications": [_summary(request, f.application, language, archived=f.archived)
                                               for f in apps]},
                             dumps=_dumps_for(request))


@guarded
async def get_application(request: web.Request) -> web.Response:
    found = await _find(request, await _reader(request), "application")
    app = found.application
    history = found.history if found.history is not None else await request.app[CABINET].store.history(app.id)
    language = language_of(request)
    readable = request.app[CABINET].readable
    for event in history:
        event["statusName"] = name(STATUSES, event.get("status"), language)
        if event.get("step"):
            event["stepName"] = name(STEPS, event["step"], language, event.get("note"))
    return web.json_response({
        **_summary(request, app, language, archived=found.archived),
        "errorDetail": app.error_detail,
        "history": history,
        "validationReport": app.report,
        "document": app.document_text,
        "documentFields": readable.document_fields(app.service_id, app.document_text),
        "receipt": app.receipt,
        "result": app.result,
        "resultFields": readable.result_fields(app.service_id, app.result),
    }, dumps=_dumps_for(request))


def _dumps_for(request: web.Request) -> Callable[[Any], str]:
    """JSON in real UTF-8 (names readable in a terminal, not ``\\u`` escapes); indented with ``?pretty``."""
    indent = 2 if "pretty" in request.query else None
    return functools.partial(json.dumps, ensure_ascii=False, indent=indent)


async def get_result(request: web.Request) -> web.Response:
    return await _signed_document(request, "result")


async def get_receipt(request: web.Request) -> web.Response:
    return await _signed_document(request, "receipt")


@guarded
async def _signed_document(request: web.Request, kind: str) -> web.Response:
    """The signed result or receipt as a downloadable XML file."""
    app = (await _find(request, await _reader(request), kind)).application
    document = getattr(app, kind)
    if document is None:
        raise GatewayError("CLIENT_NOT_FOUND", f"the application has no {kind} yet")
    return web.Response(
        text=document, content_type="application/xml", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{kind}-{app.message_id}.xml"'},
    )


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``application`` event per change to this owner's applications.

    Every stream of the process shares the hub's one Redis subscription (:mod:`gateway.cabinet.events`);
    streams are capped per owner and in total (429/503 with Retry-After). When Redis fails the stream stays
    open and gets a ``resync`` event once the hub has subscribed again; should the stream end, ``retry:``
    tells the browser when to reconnect. A page gone away is noticed at the next keep-alive.
    """
    hub = request.app[CABINET].events
    try:
        reader = await _authorise_stream(request)
        stream = hub.open(reader.owner, reader.scope)
    except GatewayError as error:
        return refusal(error, language_of(request), hub.settings)
    return await serve(request, hub, stream)
