"""Back-office desks take queued applications (jobs) and answer them over HTTP; operators handle dead letters.

Desks (senders with ``jobs = [serviceIds]``), HTTP Basic:

``POST /api/v1/jobs/{serviceId}/claim?worker=NAME&wait=SECONDS``  next job (JSON, with its ``leaseToken``) or 204
``POST /api/v1/jobs/{serviceId}/{entryId}/progress``             ``{"step", "note"}``: a named step in the history
``POST /api/v1/jobs/{serviceId}/{entryId}/result``   ``{"outcome": completed|refused, "document", "reason"}``
``POST /api/v1/jobs/{serviceId}/{entryId}/fail``                 ``{"reason"}``: give the job up for another worker
``POST /api/v1/jobs/{serviceId}/{entryId}/keep``                 heartbeat: still working on it (resets its timeout)

Every job route after the claim names the same ``worker`` and sends the claim's lease token in the
``X-Lease-Token`` header (a header, so it never reaches an access log): a worker that did not claim this delivery,
or whose delivery was reclaimed by another desk after the visibility timeout, is refused ``CLIENT_JOB_NOT_HELD``
(409). ``progress`` and ``result`` renew the lease like ``keep``. Notes and reasons are plain text of at most
:data:`MAX_NOTE` printable characters and step names short codes (:data:`STEP_PATTERN`), refused otherwise
(``CLIENT_ENVELOPE_INVALID``); the cabinet serves them as JSON strings, and whatever renders them must escape them.

Operators (senders with ``operator = true``):

``GET  /api/v1/admin/dead-letters?service=ID``                       dead jobs and stopped applications
``POST /api/v1/admin/dead-letters/{serviceId}/{deadId}/replay``      put a dead job back on its queue
``POST /api/v1/admin/applications/{sessionId}/replay``               deliver a stopped application again

Redis stays private: desks never need its address or credentials.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from connectors.queue import QueueError
from gateway.access.senders import AuthenticatedSender
from gateway.config import ConnectorKind
from gateway.delivery.desks import DESKS
from gateway.delivery.engine import CHECK_LATER
from gateway.errors import GatewayError
from gateway.lifecycle.application import Application, Status
from gateway.lifecycle.transitions import IllegalTransition, Lifecycle
from gateway.web.json_body import loads_bounded
from gateway.web.problems import guarded
from gateway.web.reading import basic_auth_sender, operator_sender, read_body

log = logging.getLogger("egov.jobs")
MAX_WAIT_SECONDS = 25
_NOT_HELD = ("this worker does not hold the job under this lease token: never claimed by it, or reclaimed by "
             "another delivery after the visibility timeout")
LEASE_HEADER = "X-Lease-Token"
MAX_NOTE = 500
"Longest progress note or failure reason, in characters."
STEP_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,59}")
"A step is a code (``registered``, ``documents-checked``), never free text."
_MAX_RESULT_BYTES = 4 * 1024 * 1024


async def _desk(request: web.Request) -> tuple[AuthenticatedSender, str]:
    sender = await basic_auth_sender(request, request.app[DESKS].senders)
    service_id = request.match_info["service_id"]
    if service_id not in sender.settings.jobs:
        raise GatewayError("CLIENT_ACCESS_DENIED", "this sender may not take jobs of this service")
    if request.app[DESKS].registry.get(service_id) is None:
        raise GatewayError("CLIENT_UNKNOWN_SERVICE")
    return sender, service_id


def _worker(request: web.Request, sender: AuthenticatedSender) -> str:
    return request.query.get("worker") or sender.sender_id


async def _held(request: web.Request, sender: AuthenticatedSender, service_id: str, entry_id: str) -> bool:
    """Whether the caller holds this delivery (its worker and lease token); renews the lease when it does."""
    lease = request.headers.get(LEASE_HEADER, "")
    return await request.app[DESKS].jobs.keep(service_id, entry_id, _worker(request, sender), lease)


def _text(data: dict[str, Any], key: str, default: str = "") -> str:
    """A note or reason: printable text of at most MAX_NOTE characters (refused, not cut, beyond that)."""
    value = data.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not value.isprintable():
        raise GatewayError("CLIENT_ENVELOPE_INVALID", f"{key} must be a single line of printable text")
    if len(value) > MAX_NOTE:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", f"{key} is longer than {MAX_NOTE} characters")
    return value


_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def _stream_id(request: web.Request, key: str) -> str:
    """A job's or dead letter's id from the path; anything else is no such job (never a Redis error)."""
    value = request.match_info[key]
    if not _STREAM_ID.fullmatch(value):
        raise GatewayError("CLIENT_JOB_NOT_FOUND", f"{key} is not a queue entry id")
    return value


async def _operator(request: web.Request) -> AuthenticatedSender:
    return await operator_sender(request, request.app[DESKS].senders)


async def _json(request: web.Request) -> dict[str, Any]:
    body = await read_body(request, _MAX_RESULT_BYTES)  # an over-limit Content-Length before reading anything
    data = loads_bounded(body or b"{}", max_bytes=_MAX_RESULT_BYTES)  # bounded depth: no RecursionError
    if not isinstance(data, dict):
        raise GatewayError("CLIENT_MALFORMED_JSON", "a JSON object is expected")
    return data


async def _application(request: web.Request, service_id: str, entry_id: str) -> Application:
    """The application behind a job this desk holds (the job's fields name it)."""
    components = request.app[DESKS]
    fields = await components.jobs.fields(service_id, entry_id)
    if fields is None:
        raise GatewayError("CLIENT_JOB_NOT_FOUND")
    app = await components.store.get(fields.get("session_id", ""))
    if app is None:
        raise GatewayError("CLIENT_JOB_NOT_FOUND")
    return app


@guarded
async def claim(request: web.Request) -> web.Response:
    sender, service_id = await _desk(request)
    components = request.app[DESKS]
    worker = _worker(request, sender)
    if any(c in worker for c in "|\r\n") or not worker.isprintable() or len(worker) > 100:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "worker: up to 100 printable characters, no '|'")
    try:
        wait = min(MAX_WAIT_SECONDS, max(0.0, float(request.query.get("wait", "0"))))
    except ValueError:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "wait must be a number of seconds") from None
    job = await components.jobs.claim(service_id, worker, block_ms=int(wait * 1000))
    if job is None:
        return web.Response(status=204)
    app = await components.store.get(job.fields.get("session_id", ""))
    if app is not None and not app.status.final:
        await components.lifecycle.take(app, f"taken by the back-office desk ({worker}), attempt {job.attempt}")
    fields = job.fields
    return web.json_response({
        "entryId": job.entry_id, "sessionId": fields.get("session_id"), "messageId": fields.get("message_id"),
        "serviceId": service_id, "attempt": job.attempt, "document": fields.get("document"),
        "applicant": {"iin": fields.get("applicant_iin"), "bin": fields.get("applicant_bin") or None,
                      "name": fields.get("applicant_name"), "organisation": fields.get("organisation") or None},
        "enqueuedAt": fields.get("enqueued_at"), "leaseToken": job.lease,
    })


@guarded
async def progress(request: web.Request) -> web.Response:
    sender, service_id = await _desk(request)
    data = await _json(request)
    step, note = data.get("step"), _text(data, "note")
    if not isinstance(step, str) or not STEP_PATTERN.fullmatch(step):
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "step is required: a code of letters, digits, '.', '_', '-'")
    entry_id = _stream_id(request, "entry_id")
    app = await _application(request, service_id, entry_id)
    held = await _held(request, sender, service_id, entry_id)
    if app.status.final:
        raise GatewayError("CLIENT_JOB_FINISHED")
    if not held:
        raise GatewayError("CLIENT_JOB_NOT_HELD", _NOT_HELD)
    await request.app[DESKS].lifecycle.progress(app, note or step, step=step)
    return web.json_response({"status": str(app.status)})


@guarded
async def result(request: web.Request) -> web.Response:
    sender, service_id = await _desk(request)
    components = request.app[DESKS]
    data = await _json(request)
    outcome, document = data.get("outcome"), data.get("document")
    if outcome not in ("completed", "refused") or not isinstance(document, str) or not document:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "outcome (completed|refused) and document are required")
    entry_id = _stream_id(request, "entry_id")
    app = await _application(request, service_id, entry_id)
    held = await _held(request, sender, service_id, entry_id)
    if app.status.final:
        if held:  # answered meanwhile (e.g. a replayed dead letter): the holder's job is over
            await components.jobs.ack(service_id, entry_id)
        raise GatewayError("CLIENT_JOB_FINISHED")
    if not held:
        raise GatewayError("CLIENT_JOB_NOT_HELD", _NOT_HELD)
    service = components.registry.get(service_id)
    if service is None:  # _desk checked it; the registry does not change while running
        raise GatewayError("CLIENT_UNKNOWN_SERVICE")
    try:
        await components.delivery.complete(app, service, document.encode(), refused=outcome == "refused")
    except GatewayError as exc:
        if exc.code != CHECK_LATER:  # refused by the gateway: the job is over; else the desk posts it again
            await components.jobs.ack(service_id, entry_id)
        raise
    await components.jobs.ack(service_id, entry_id)
    return web.json_response({"status": str(app.status)})


@guarded
async def keep(request: web.Request) -> web.Response:
    """Heartbeat of a desk that still holds the job (e.g. waiting for a person's decision)."""
    sender, service_id = await _desk(request)
    if not await _held(request, sender, service_id, _stream_id(request, "entry_id")):
        raise GatewayError("CLIENT_JOB_NOT_HELD", _NOT_HELD)
    return web.json_response({"kept": True})


@guarded
async def fail(request: web.Request) -> web.Response:
    sender, service_id = await _desk(request)
    data = await _json(request)
    reason = _text(data, "reason", "no reason given")
    entry_id = _stream_id(request, "entry_id")
    app = await _application(request, service_id, entry_id)
    store, lifecycle = request.app[DESKS].store, request.app[DESKS].lifecycle
    try:
        await request.app[DESKS].jobs.fail(service_id, entry_id, _worker(request, sender),
                                           request.headers.get(LEASE_HEADER, ""), reason)
    except QueueError:
        raise GatewayError("CLIENT_JOB_NOT_HELD", _NOT_HELD) from None
    app = await store.get(app.id) or app  # the last failure may have dead-lettered it (stopped) meanwhile
    if not app.status.final:
        await lifecycle.note(app, f"the back-office desk could not finish it: {reason}")
    return web.json_response({"status": str(app.status)})


@guarded
async def dead_letters(request: web.Request) -> web.Response:
    await _operator(request)
    components = request.app[DESKS]
    services = [request.query["service"]] if "service" in request.query else [
        s.service_id for s in components.registry if s.settings.connector is ConnectorKind.QUEUE]
    listing = []
    for service_id in services:
        for dead in await components.jobs.dead_letters(service_id):
            listing.append({"serviceId": service_id, "deadId": dead.dead_id, "originalId": dead.original_id,
                            "sessionId": dead.fields.get("session_id"), "attempts": dead.attempts,
                            "reason": dead.reason, "deadAt": dead.dead_at})
    return web.json_response({"deadLetters": listing})


@guarded
async def replay_dead_letter(request: web.Request) -> web.Response:
    await _operator(request)
    components = request.app[DESKS]
    service_id = request.match_info["service_id"]
    try:
        entry = await components.jobs.replay(service_id, _stream_id(request, "dead_id"))
    except (KeyError, QueueError):
        raise GatewayError("CLIENT_JOB_NOT_FOUND") from None
    fields = await components.jobs.fields(service_id, entry) or {}
    app = await components.store.get(fields.get("session_id", ""))
    if app is not None and app.status is Status.STOPPED:
        await components.lifecycle.replay(app, "replayed by an operator: back on the back-office queue",
                                          reference=entry)
    elif app is not None:  # answered meanwhile: the desk that takes the job is told CLIENT_JOB_FINISHED
        log.info("dead letter of %s replayed, but the application is already %s", app.id, app.status)
    return web.json_response({"entryId": entry})


@guarded
async def replay_application(request: web.Request) -> web.Response:
    await _operator(request)
    components = request.app[DESKS]
    app = await components.store.get(request.match_info["session_id"])
    if app is None:
        raise GatewayError("CLIENT_NOT_FOUND")
    if app.status is not Status.STOPPED:
        raise GatewayError("CLIENT_JOB_FINISHED", f"only stopped applications are replayed (this one is {app.status})")
    try:
        await components.delivery.replay(app)
    except IllegalTransition:  # changed meanwhile by another process
        raise GatewayError("CLIENT_JOB_FINISHED", "the application changed meanwhile; look again") from None
    service = components.registry.get(app.service_id)
    if service is not None and service.settings.connector is ConnectorKind.QUEUE:
        # Delivered anew as a whole: its dead letter goes, or replaying that too would queue the job twice.
        await components.jobs.discard_dead_letters(app.service_id, app.id)
    return web.json_response({"status": str(app.status)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/jobs/{service_id}/claim", claim)
    app.router.add_post("/api/v1/jobs/{service_id}/{entry_id}/progress", progress)
    app.router.add_post("/api/v1/jobs/{service_id}/{entry_id}/result", result)
    app.router.add_post("/api/v1/jobs/{service_id}/{entry_id}/fail", fail)
    app.router.add_post("/api/v1/jobs/{service_id}/{entry_id}/keep", keep)
    app.router.add_get("/api/v1/admin/dead-letters", dead_letters)
    app.router.add_post("/api/v1/admin/dead-letters/{service_id}/{dead_id}/replay", replay_dead_letter)
    # sessionIds are "{uuid}": aiohttp's default segment pattern excludes braces, so the pattern is explicit.
    app.router.add_post("/api/v1/admin/applications/{session_id:[^/]+}/replay", replay_application)


async def mark_stopped(lifecycle: Lifecycle, fields: dict[str, str], reason: str) -> None:
    """A job was dead-lettered: its application is stopped until an operator replays it."""
    app = await lifecycle.store.get(fields.get("session_id", ""))
    if app is not None and not app.status.final:
        await lifecycle.stop(app, "PROVIDER_UNAVAILABLE", reason,
                             f"delivery stopped: {reason}; an operator may replay it")
