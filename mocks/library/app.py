"""KazNEB library back-end mock (REST), the outside party behind the reader-ticket service.

Paragraph 18 of the KazNEB rules (order No. 76 of 19.03.2021): a user gets a *single* electronic
reader ticket after registering with KazNEB, which the National Academic Library of the Republic of
Kazakhstan operates. So the mock keeps one ticket per IIN: registering again returns the same ticket
with ``status`` ``already-issued``. Tickets are perpetual (no ``validUntil``) and grant all three
access levels of the cooperation agreement. State lives in the application object and, given a
:class:`~mocks.statefile.StateFile`, on disk (the demo's ``<state>/world/library.json``).

Routes
------
``POST /api/v1/readers``
    Body: an unsigned ``ReaderRegistration`` (``Content-Type: application/xml`` or ``text/xml``).
    200 ``application/xml`` with a ``ReaderTicket`` (``issued`` or ``already-issued``).
    Errors are ``application/problem+json`` ``{"type", "title", "status", "detail", "code"}``:
    400 ``LIB_INVALID_DOCUMENT`` (not well-formed, has a DOCTYPE, fails the XSD, or still carries a
    ds:Signature: the gateway must forward only the verified business document),
    415 ``LIB_UNSUPPORTED_MEDIA_TYPE``, 413 ``LIB_PAYLOAD_TOO_LARGE`` (above 256 KiB).
``GET /api/v1/readers/{iin}``
    200 with the ticket (``status`` ``issued``, the original ``applicationId``) or 404
    ``LIB_READER_NOT_FOUND``.
``/api/v1/fund/submissions`` and below
    Fund submissions (rules §5): ``mocks.library.fund``; decisions (§9, §10, §13): ``mocks.library.commission``.
``GET /health``
    ``{"status": "ok"}``; never affected by fault injection.

Fault injection (for failure tests; applies to every ``/api/v1/`` route)
-------------------------------------------------------------------------
``POST /_control/fail`` with JSON ``{"status": 503, "count": 2}`` makes the next 2 API requests
answer 503 (problem+json, code ``LIB_INJECTED_FAULT``, ``Retry-After: 1`` for 429/503) without
touching the registry; ``count`` defaults to 1. ``{"delay": 1.5}`` delays every API response by
1.5 s until reset (or until another ``fail`` sets ``"delay": 0``); ``{"late": 1.5}`` delays every answer
after its request was handled (the work is done, a caller that dies meanwhile never hears of it); the keys
may be combined.
Answers 200 with the current plan. ``POST /_control/reset`` clears faults and delay (not data).
400 ``LIB_BAD_CONTROL_REQUEST`` for a malformed control body.

Idempotency (``mocks.idempotency``): a POST under ``/api/`` repeated with the same ``Idempotency-Key`` header gets
the first answer (``Idempotent-Replayed: true``) without being processed again; answers are kept with the
records. ``GET /_control/stats`` says how many API requests arrived (``requests``, failures included), how many
documents were processed and which more than once
(``duplicates``, by the gateway's X-Request-Id or the document's applicationId).

Run: ``python -m mocks.library --port 8710`` or ``await run_library(host, port)``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.resources.abc import Traversable

from aiohttp import web
from lxml import etree

from mocks.faults import FaultPlan
from mocks.idempotency import idempotency_middleware
from mocks.library.commission import add_commission_routes
from mocks.library.exchange import problem, read_business_document, xml_response
from mocks.library.forms import ACCESS_LEVELS, READER_REGISTRATION_NS, READER_TICKET_NS, safe_xml_parser
from mocks.library.fund import add_fund_routes
from mocks.library.records import Ticket
from mocks.library.state import LIBRARY_STATE, LibraryState
from mocks.statefile import StateFile
from signing.signer import DocumentSigner

LIBRARY_NAME = "Қазақстан Республикасының Ұлттық академиялық кітапханасы"
"Issuer written on tickets: the National Academic Library of the Republic of Kazakhstan."

ACCESS_RIGHTS = ACCESS_LEVELS
"Every reader may use fund objects of all three access levels the partners choose from."

API_PREFIX = "/api/v1/"
READERS_PATH = "/api/v1/readers"


def default_schema_dir() -> Traversable:
    """The ``schemas/kazneb`` package-data folder."""
    return importlib.resources.files("schemas") / "kazneb"


def _load_schema(directory: Traversable, name: str) -> etree.XMLSchema:
    document = etree.fromstring((directory / name).read_bytes(), safe_xml_parser())
    return etree.XMLSchema(document)


def _invalid(detail: str) -> web.Response:
    return problem(400, "LIB_INVALID_DOCUMENT", "Invalid reader registration document", detail)


def render_ticket(ticket: Ticket, *, status: str, application_id: str | None) -> etree._Element:
    """The ``ReaderTicket`` element for a stored ticket (element order follows the schema)."""
    ns = READER_TICKET_NS
    root = etree.Element(f"{{{ns}}}ReaderTicket", nsmap={None: ns})

    def add(parent: etree._Element, name: str, text: str) -> etree._Element:
        child = etree.SubElement(parent, f"{{{ns}}}{name}")
        child.text = text
        return child

    add(root, "ticketNumber", ticket.number)
    add(root, "iin", ticket.iin)
    add(root, "holderName", ticket.holder_name)
    add(root, "readerCategory", ticket.reader_category)
    add(root, "issuedAt", ticket.issued_at.isoformat())
    # validUntil omitted on purpose: the rules give the single reader ticket no term.
    add(root, "issuer", LIBRARY_NAME)
    rights = etree.SubElement(root, f"{{{ns}}}accessRights")
    for right in ACCESS_RIGHTS:
        add(rights, "accessRight", right)
    if application_id is not None:
        add(root, "applicationId", application_id)
    add(root, "status", status)
    return root


def _text(root: etree._Element, name: str) -> str | None:
    child = root.find(f"{{{READER_REGISTRATION_NS}}}{name}")
    if child is None or child.text is None:
        return None
    return " ".join(child.text.split())  # the schema's xsd:token normalisation


async def register_reader(request: web.Request) -> web.Response:
    """POST /api/v1/readers: validate the registration, issue or return the single ticket."""
    state = request.app[LIBRARY_STATE]
    state.registrations_received += 1
    root = await read_business_document(request, state.registration_schema, _invalid)
    if isinstance(root, web.Response):
        return root

    iin = _text(root, "iin") or ""
    # The gateway's application id (X-Request-Id) names the request this ticket answers; else the document's.
    application_id = " ".join(request.headers.get("X-Request-Id", "").split())[:64] or _text(root, "applicationId")
    state.idempotency.count(application_id)
    existing = state.tickets.get(iin)
    if existing is not None:
        answer = render_ticket(existing, status="already-issued", application_id=application_id)
        return xml_response(state.ticket_schema, answer)
    names = (_text(root, "surname"), _text(root, "givenName"), _text(root, "patronymic"))
    ticket = state.issue(
        iin=iin,
        holder_name=" ".join(name for name in names if name),
        reader_category=_text(root, "readerCategory") or "individual",
        application_id=application_id,
    )
    return xml_response(state.ticket_schema, render_ticket(ticket, status="issued", application_id=application_id))


async def get_reader(request: web.Request) -> web.Response:
    """GET /api/v1/readers/{iin}: the stored ticket or 404."""
    state = request.app[LIBRARY_STATE]
    ticket = state.tickets.get(request.match_info["iin"])
    if ticket is None:
        return problem(404, "LIB_READER_NOT_FOUND", "Reader not found", "no reader ticket for this IIN")
    answer = render_ticket(ticket, status="issued", application_id=ticket.application_id)
    return xml_response(state.ticket_schema, answer)


async def health(request: web.Request) -> web.Response:
    """GET /health."""
    return web.json_response({"status": "ok"})


def _bad_control(detail: str) -> web.Response:
    return problem(400, "LIB_BAD_CONTROL_REQUEST", "Bad control request", detail)


async def control_fail(request: web.Request) -> web.Response:
    """POST /_control/fail: schedule failures and/or a delay for API requests."""
    try:
        data = await request.json()
    except ValueError:
        return _bad_control("body must be JSON")
    fault = request.app[LIBRARY_STATE].fault
    error = fault.update(data)
    return _bad_control(error) if error else web.json_response(fault.as_json())


async def control_reset(request: web.Request) -> web.Response:
    """POST /_control/reset: no more injected failures or delay."""
    state = request.app[LIBRARY_STATE]
    state.fault = FaultPlan()
    return web.json_response(state.fault.as_json())


async def control_stats(request: web.Request) -> web.Response:
    """GET /_control/stats: documents processed, which more than once (duplicates), repeats answered by key."""
    state = request.app[LIBRARY_STATE]
    return web.json_response({**state.idempotency.stats(), "requests": state.api_requests})


@web.middleware
async def fault_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Apply the injected delay and failures to API requests (not /health, not /_control)."""
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    request.app[LIBRARY_STATE].api_requests += 1
    fault = request.app[LIBRARY_STATE].fault
    # Decide before sleeping, so concurrent requests consume exactly `count` failures.
    fail_with = None
    if fault.status is not None and fault.remaining > 0:
        fail_with = fault.status
        fault.remaining -= 1
        if fault.remaining == 0:
            fault.status = None
    if fault.delay > 0:
        await asyncio.sleep(fault.delay)
    if fail_with is not None:
        headers = {"Retry-After": "1"} if fail_with in (429, 503) else None
        return problem(
            fail_with, "LIB_INJECTED_FAULT", "Injected fault", "failure injected by /_control/fail", headers
        )
    response = await handler(request)
    if fault.late > 0:  # handled and kept; only the answer is late
        await asyncio.sleep(fault.late)
    return response


def create_library_app(
    *,
    schema_dir_loader: Callable[[], Traversable] | None = None,
    clock: Callable[[], datetime] | None = None,
    signer: DocumentSigner | None = None,
    store: StateFile | None = None,
) -> web.Application:
    """Build the KazNEB mock application.

    ``schema_dir_loader`` returns the folder of the kazneb schemas (default: ``schemas/kazneb``), all
    compiled here, once. ``clock`` returns an aware "now" (default UTC now). ``signer`` (the library's
    key, loaded once) signs commission decisions; without it they are answered unsigned. ``store`` keeps the
    records between runs (read here).
    """
    directory = (schema_dir_loader or default_schema_dir)()
    # Injected faults first: a failure they answer is not an answer to remember under the Idempotency-Key.
    app = web.Application(middlewares=[fault_middleware, idempotency_middleware(
        lambda request: request.app[LIBRARY_STATE].idempotency, lambda request: request.app[LIBRARY_STATE].save())])
    app[LIBRARY_STATE] = LibraryState(
        registration_schema=_load_schema(directory, "reader-registration.xsd"),
        ticket_schema=_load_schema(directory, "reader-ticket.xsd"),
        submission_schema=_load_schema(directory, "fund-submission.xsd"),
        receipt_schema=_load_schema(directory, "fund-receipt.xsd"),
        clock=clock or (lambda: datetime.now(UTC)),
        store=store,
    )
    app[LIBRARY_STATE].restore()
    app.router.add_post(READERS_PATH, register_reader)
    app.router.add_get(READERS_PATH + "/{iin}", get_reader)
    add_fund_routes(app)
    add_commission_routes(app, _load_schema(directory, "fund-decision.xsd"), signer)
    app.router.add_get("/health", health)
    app.router.add_post("/_control/fail", control_fail)
    app.router.add_post("/_control/reset", control_reset)
    app.router.add_get("/_control/stats", control_stats)
    return app


async def run_library(host: str, port: int) -> web.AppRunner:
    """Start the mock on a real socket and return the runner; the caller awaits ``runner.cleanup()``.

    With ``port=0`` the OS picks a port: read it from ``runner.addresses``.
    """
    runner = web.AppRunner(create_library_app())
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m mocks.library [--host 127.0.0.1] [--port 8710]``."""
    parser = argparse.ArgumentParser(prog="python -m mocks.library", description="KazNEB library mock (REST)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8710, help="port to listen on (default: %(default)s)")
    args = parser.parse_args(argv)
    web.run_app(create_library_app(), host=args.host, port=args.port)
