"""The e-government ICT infrastructure operator's deposit back-end (mock), behind ``egov.software-deposit``.

Rules for accounting and storage of e-government software, source code and licensed-software settings (order
No. 146/НҚ of 29.06.2019 as amended): the operator registers the application (§8, appendix 2), forms a
repository, takes the deposit (§9), checks the act against the medium (§15) and answers with the act and the
agreement signed (§17) or a reasoned refusal (§16). Steps and deadlines: :mod:`mocks.deposit.steps`.

Routes
------
``POST /api/v1/deposits``
    An application (``SoftwareDepositApplication``, XML). 201 JSON ``{"reference", "registerNumber"}``. A repeat
    under the same ``Idempotency-Key`` (the gateway's application id), or of the same ``applicationId``, gets the
    first answer. 400 ``DEP_INVALID_DOCUMENT``, 413 ``DEP_TOO_LARGE``.
``PUT /api/v1/deposits/{reference}/package``
    The medium, streamed (never held in memory) into the operator's storage; its SHA-256 and size must be the
    application's (422 ``DEP_PACKAGE_DIGEST``, 413 ``DEP_TOO_LARGE``). 204; a repeat after it arrived is 204 too.
``GET /api/v1/deposits/{reference}``
    JSON ``{"reference", "steps": [{code, name, startedAt, dueAt, completedAt}], "final", "refused",
    "document"}``: ``document`` is the signed ``SoftwareDepositResult`` once the last step completed.
``POST /_control/register`` ``{"code": "...", "name": "..."}``: put software in the register of software.
``GET /_control/stats``: requests, applications and packages received.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from lxml import etree

from mocks.deposit.answer import Deposit, render
from mocks.deposit.forms import read_package, read_tables, read_text
from mocks.deposit.medium import MediumUnreadable, compare, read_medium
from mocks.deposit.steps import AUTHORITY_NOTICE_DAYS, NAMES, SIGNED, timeline
from mocks.elicense.steps import WorkingCalendar
from mocks.idempotency import IdempotencyMemory, idempotency_middleware
from mocks.library.exchange import problem
from mocks.library.forms import safe_xml_parser
from signing.signer import DocumentSigner

MAX_APPLICATION_BYTES = 64 * 1024 * 1024
MAX_PACKAGE_BYTES = 4 * 1024 * 1024 * 1024
CHUNK = 1024 * 1024


@dataclass
class OperatorState:
    """The operator's register of software, its register of applications and its storage."""

    schema: etree.XMLSchema
    "The application's XSD."
    result_schema: etree.XMLSchema
    "The answer's XSD."
    storage: Path
    "Where the media are kept."
    calendar: WorkingCalendar
    "Working days."
    clock: Callable[[], datetime]
    "Now."
    pace: float
    "How many times faster than its deadlines the operator works."
    signer: DocumentSigner | None
    "The operator's key (answers unsigned without it)."
    software: dict[str, str] = field(default_factory=dict)
    "The register of software: architecture code -> name."
    deposits: dict[str, Deposit] = field(default_factory=dict)
    "By reference."
    by_application: dict[str, str] = field(default_factory=dict)
    "applicationId -> reference."
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    "Register rows."
    idempotency: IdempotencyMemory = field(default_factory=IdempotencyMemory)
    "Answers by Idempotency-Key."
    requests: int = 0
    "API requests received."
    packages: int = 0
    "Media received."
    checks: set[asyncio.Task[None]] = field(default_factory=set)
    "Media being checked (§15), off the event loop."


OPERATOR = web.AppKey("deposit_operator", OperatorState)


async def submit_application(request: web.Request) -> web.Response:
    state = request.app[OPERATOR]
    state.requests += 1
    body = await request.content.read(MAX_APPLICATION_BYTES + 1)
    if len(body) > MAX_APPLICATION_BYTES:
        return problem(413, "DEP_TOO_LARGE", "Too large", "application above 64 MiB")
    try:
        root = etree.fromstring(body, safe_xml_parser())
    except etree.XMLSyntaxError as exc:
        return problem(400, "DEP_INVALID_DOCUMENT", "Invalid application", str(exc)[:300])
    if not state.schema.validate(root):
        return problem(400, "DEP_INVALID_DOCUMENT", "Invalid application", str(state.schema.error_log.last_error))
    application_id = request.headers.get("Idempotency-Key") or read_text(root, "applicationId")
    if application_id in state.by_application:  # the same application again: the same registration
        return _registered(state.deposits[state.by_application[application_id]])
    number = next(state.numbers)
    code = read_text(root, "architectureCode")
    deposit = Deposit(
        reference=f"DEP-{number:06d}", register_number=number, application_id=application_id,
        bin=read_text(root, "bin"), owner_name=read_text(root, "ownerName"),
        applicant=read_text(root, "contactPerson"), software_name=read_text(root, "softwareName"),
        architecture_code=code, tables=read_tables(root.find("{*}act")), package=read_package(root),
        registered_at=state.clock(), in_register=code in state.software)
    if not deposit.in_register:
        deposit.ground, deposit.checked = "not-in-register", True
    state.deposits[deposit.reference] = deposit
    state.by_application[application_id] = deposit.reference
    return _registered(deposit, status=201)


def _registered(deposit: Deposit, status: int = 200) -> web.Response:
    return web.json_response({"reference": deposit.reference, "registerNumber": deposit.register_number},
                             status=status)


async def receive_package(request: web.Request) -> web.Response:
    state = request.app[OPERATOR]
    state.requests += 1
    deposit = state.deposits.get(request.match_info["reference"])
    if deposit is None:
        return problem(404, "DEP_NOT_FOUND", "Not found", "no such application")
    if deposit.package_at is not None or not deposit.in_register:
        await _drain(request)
        return web.Response(status=204)
    target = state.storage / f"{deposit.reference}.tar.gz"
    partial = target.with_suffix(".part")
    digest, size = hashlib.sha256(), 0
    with partial.open("wb") as out:
        async for chunk in request.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > deposit.package.size_bytes or size > MAX_PACKAGE_BYTES:
                partial.unlink(missing_ok=True)
                return problem(413, "DEP_TOO_LARGE", "Too large", "the medium is larger than the application says")
            digest.update(chunk)
            out.write(chunk)
    if size != deposit.package.size_bytes or digest.hexdigest() != deposit.package.sha256:
        partial.unlink(missing_ok=True)
        return problem(422, "DEP_PACKAGE_DIGEST", "Not the declared medium",
                       "the medium's size or SHA-256 is not the application's")
    partial.replace(target)
    state.packages += 1
    deposit.package_at = state.clock()
    check = asyncio.get_running_loop().create_task(_check(state, deposit, target))
    state.checks.add(check)  # a reference until it is done (the loop keeps only weak ones)
    check.add_done_callback(state.checks.discard)
    return web.Response(status=204)


async def _drain(request: web.Request) -> None:
    async for _ in request.content.iter_chunked(CHUNK):
        pass


async def _check(state: OperatorState, deposit: Deposit, path: Path) -> None:
    """§15: the act against the medium, off the event loop."""
    try:
        members = await asyncio.to_thread(read_medium, path)
    except MediumUnreadable:
        deposit.ground = "medium-unreadable"
    else:
        deposit.mismatches = compare(deposit.tables, members)
        deposit.ground = "act-mismatch" if deposit.mismatches else None
    deposit.checked = True


async def status(request: web.Request) -> web.Response:
    state = request.app[OPERATOR]
    state.requests += 1
    deposit = state.deposits.get(request.match_info["reference"])
    if deposit is None:
        return problem(404, "DEP_NOT_FOUND", "Not found", "no such application")
    steps = timeline(deposit.registered_at, refused_at_once=not deposit.in_register, package_at=deposit.package_at,
                     checked=deposit.checked, calendar=state.calendar, pace=state.pace, now=state.clock())
    last = steps[-1]
    final = last.code == SIGNED and last.completed_at is not None
    if final and deposit.answer is None:
        deposit.answer = _answer(state, deposit, last.completed_at or state.clock())
    body: dict[str, Any] = {
        "reference": deposit.reference, "final": final, "refused": final and deposit.ground is not None,
        "steps": [{"code": s.code, "name": NAMES[s.code], "startedAt": s.started_at.isoformat(),
                   "dueAt": s.due_at.isoformat(),
                   "completedAt": s.completed_at.isoformat() if s.completed_at else None} for s in steps],
        "document": deposit.answer.decode() if final and deposit.answer else None,
    }
    return web.json_response(body)


def _answer(state: OperatorState, deposit: Deposit, decided_at: datetime) -> bytes:
    taken = deposit.package_at
    notify = None if taken is None or deposit.ground else state.calendar.add_working_days(
        taken, AUTHORITY_NOTICE_DAYS).date()
    element = render(deposit, decided_at=decided_at, notify_by=notify)
    if not state.result_schema.validate(element):
        raise RuntimeError(f"mock produced an invalid answer: {state.result_schema.error_log.last_error}")
    if state.signer is not None:
        return state.signer.sign_bytes(element)
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


async def control_register(request: web.Request) -> web.Response:
    try:
        data = await request.json()
        code, name = str(data["code"]), str(data.get("name", data["code"]))
    except (ValueError, KeyError, TypeError):
        return problem(400, "DEP_BAD_CONTROL_REQUEST", "Bad control request", 'expected {"code", "name"}')
    request.app[OPERATOR].software[code] = name
    return web.json_response({"registered": code})


async def control_stats(request: web.Request) -> web.Response:
    state = request.app[OPERATOR]
    return web.json_response({"requests": state.requests, "applications": len(state.deposits),
                              "packages": state.packages})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})



def create_deposit_app(*, storage: Path, signer: DocumentSigner | None = None, pace: float = 1.0,
                       clock: Callable[[], datetime] | None = None, software: dict[str, str] | None = None,
                       calendar: WorkingCalendar | None = None) -> web.Application:
    """The operator mock; ``storage`` is where media go; ``software`` seeds the register of software."""
    import schemas

    if pace < 1:
        raise ValueError("pace must be at least 1")
    storage.mkdir(parents=True, exist_ok=True)
    app = web.Application(client_max_size=MAX_APPLICATION_BYTES, middlewares=[idempotency_middleware(
        lambda request: request.app[OPERATOR].idempotency, lambda request: None)])
    app[OPERATOR] = OperatorState(
        schema=schemas.load_xml_schema("deposit/deposit-application.xsd"),
        result_schema=schemas.load_xml_schema("deposit/deposit-result.xsd"),
        storage=storage, calendar=calendar or WorkingCalendar.load(), clock=clock or (lambda: datetime.now(UTC)),
        pace=pace, signer=signer, software=dict(software or {}))
    app.router.add_post("/api/v1/deposits", submit_application)
    app.router.add_put("/api/v1/deposits/{reference}/package", receive_package)
    app.router.add_get("/api/v1/deposits/{reference}", status)
    app.router.add_post("/_control/register", control_register)
    app.router.add_get("/_control/stats", control_stats)
    app.router.add_get("/health", health)
    return app


