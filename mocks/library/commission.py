"""KazNEB standing commission: decisions on fund submissions (rules §6, §9, §10) and exclusions (§13).

The National Academic Library forms a standing commission of an odd number of members, at least
five (§6), which decides to include the objects of an application in the fund or not (§9). After a
positive decision the objects enter the fund within ten working days of the meeting (§10): the
decision names that day as ``inclusionDueBy`` (the meeting's date in Astana plus ten working days;
Saturdays, Sundays and the weekday days off of the gateway's working calendar, which the mocks share,
are skipped). Included objects are excluded when the author or another rights holder
withdraws them or they are duplicates (§13). Every answer is a ``FundDecision``
(fund-decision.xsd), signed with the library's key (enveloped XMLDSig) when the application was
built with a signer; the stored submission's ``status`` follows, so the receipt shows it.

Routes (fault injection applies, as to every ``/api/v1/`` route)
-----------------------------------------------------------------
``POST /api/v1/fund/submissions/{number}/decision``
    JSON ``{"decision": "include"|"not-include", "members": 5, "votesFor": 4, "votesAgainst": 1,
    "reason": "..."}`` (``reason`` required for not-include, optional for include). 200
    ``application/xml`` with the FundDecision. Errors (problem+json): 404
    ``LIB_SUBMISSION_NOT_FOUND``; 400 ``LIB_BAD_DECISION_REQUEST`` (not a JSON object, unknown key,
    wrong type); 400 ``LIB_COMMISSION_INVALID`` (members not odd, fewer than 5 or more than 99);
    400 ``LIB_DECISION_INCONSISTENT`` (votes do not add up to members, or the decision is not the
    majority's); 400 ``LIB_REASON_REQUIRED``; 409 ``LIB_ALREADY_DECIDED``.
``POST /api/v1/fund/submissions/{number}/exclude``
    JSON ``{"reason": "rights-withdrawn"|"duplicate", "details": "..."}`` (details optional). 200
    with a FundDecision ``excluded`` that repeats the inclusion's vote. 404 as above, 400
    ``LIB_BAD_DECISION_REQUEST``, 409 ``LIB_NOT_INCLUDED`` unless the submission is ``included``.
``GET /api/v1/fund/submissions/{number}/decision``
    200 with the latest FundDecision exactly as first sent (so a caller that lost the answer can
    fetch it again), 404 ``LIB_SUBMISSION_NOT_FOUND`` or ``LIB_DECISION_NOT_FOUND``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web
from lxml import etree

from gateway.cabinet.calendar import WorkingCalendar
from mocks.library.exchange import problem
from mocks.library.forms import FUND_DECISION_NS
from mocks.library.fund import FUND_SUBMISSIONS_PATH, LIBRARY_TZ
from mocks.library.records import Decision, Submission
from mocks.library.state import LIBRARY_STATE, LibraryState
from signing.signer import DocumentSigner

MIN_MEMBERS = 5
MAX_MEMBERS = 99
MAX_REASON_CHARS = 2000
INCLUSION_WORKING_DAYS = 10
"§10: included within ten working days of the meeting."

DECISIONS = ("include", "not-include")
EXCLUSION_GROUNDS = {
    "rights-withdrawn": "the author or another rights holder has withdrawn the work (rules §13 1))",
    "duplicate": "the object duplicates an edition already in the KazNEB fund (rules §13 2))",
}
"§13 grounds for exclusion, with the sentence that opens the decision's reason."

_OBJECT_STATUS = {"include": "included", "not-include": "not-included", "excluded": "excluded"}
_DECISION_KEYS = frozenset({"decision", "members", "votesFor", "votesAgainst", "reason"})
_EXCLUSION_KEYS = frozenset({"reason", "details"})


def load_holidays() -> frozenset[date]:
    """Monday-to-Friday days off, 2020-2035, of the gateway's working calendar (the one the mocks share).

    A Saturday the government made a working day is not counted as one here.
    """
    return WorkingCalendar.load().days_off(date(2020, 1, 1), date(2035, 12, 31))


def add_working_days(start: date, count: int, holidays: frozenset[date]) -> date:
    """The ``count``-th working day after ``start`` (Monday to Friday, not a listed holiday)."""
    day = start
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            count -= 1
    return day


@dataclass(frozen=True)
class CommissionConfig:
    """What the commission routes need besides the library state (set once at start)."""

    schema: etree.XMLSchema
    "fund-decision.xsd, compiled."
    signer: DocumentSigner | None
    "The library's key; None answers unsigned decisions."
    holidays: frozenset[date]
    "Days off besides Saturdays and Sundays."


COMMISSION_CONFIG = web.AppKey("kazneb_commission_config", CommissionConfig)


def render_decision(submission: Submission, decision: Decision) -> etree._Element:
    """The unsigned ``FundDecision`` element (schema element order); ``decision.document`` is ignored."""
    ns = FUND_DECISION_NS
    root = etree.Element(f"{{{ns}}}FundDecision", nsmap={None: ns})

    def add(parent: etree._Element, name: str, text: str) -> None:
        etree.SubElement(parent, f"{{{ns}}}{name}").text = text

    add(root, "submissionNumber", submission.number)
    if submission.application_id is not None:
        add(root, "applicationId", submission.application_id)
    add(root, "bin", submission.bin)
    add(root, "participantName", submission.participant_name)
    add(root, "decision", decision.decision)
    commission = etree.SubElement(root, f"{{{ns}}}commission")
    add(commission, "members", str(decision.members))
    add(commission, "votesFor", str(decision.votes_for))
    add(commission, "votesAgainst", str(decision.votes_against))
    add(root, "decidedAt", decision.decided_at.isoformat())
    if decision.inclusion_due_by is not None:
        add(root, "inclusionDueBy", decision.inclusion_due_by.isoformat())
    if decision.exclusion_ground is not None:
        add(root, "exclusionGround", decision.exclusion_ground)
    if decision.reason is not None:
        add(root, "reason", decision.reason)
    objects = etree.SubElement(root, f"{{{ns}}}objects")
    for item in submission.objects:
        element = etree.SubElement(objects, f"{{{ns}}}object")
        add(element, "title", item.title)
        add(element, "status", _OBJECT_STATUS[decision.decision])
    return root


def _decided(request: web.Request, submission: Submission, **fields: Any) -> web.Response:
    """Render, validate, sign and store a decision, move the submission's status, answer it.

    Synchronous from the caller's checks to the store, so two requests cannot both decide.
    """
    config = request.app[COMMISSION_CONFIG]
    draft = Decision(document=b"", **fields)
    element = render_decision(submission, draft)
    if not config.schema.validate(element):
        # A bug in the mock (or a check missing above), not in the caller: fail loudly.
        raise RuntimeError(f"mock produced an invalid FundDecision: {config.schema.error_log[0]}")
    if config.signer is not None:
        element = config.signer.sign(element)
    body = etree.tostring(element, xml_declaration=True, encoding="UTF-8")
    submission.decisions.append(Decision(document=body, **fields))
    submission.status = _OBJECT_STATUS[draft.decision]
    request.app[LIBRARY_STATE].save()
    return _xml(body)


def _xml(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/xml", charset="utf-8")


def _bad(detail: str) -> web.Response:
    return problem(400, "LIB_BAD_DECISION_REQUEST", "Bad decision request", detail)


def _find(state: LibraryState, number: str) -> Submission | web.Response:
    submission = state.submissions.get(number)
    if submission is None:
        return problem(404, "LIB_SUBMISSION_NOT_FOUND", "Submission not found", "no fund submission with this number")
    return submission


async def _json_object(request: web.Request, allowed: frozenset[str]) -> dict[str, Any] | web.Response:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _bad("the body must be a JSON object")
    if not isinstance(data, dict):
        return _bad("the body must be a JSON object")
    unknown = sorted(data.keys() - allowed)
    if unknown:
        return _bad(f"unknown keys {unknown}; expected some of {sorted(allowed)}")
    return data


def _text(data: dict[str, Any], key: str) -> str | web.Response | None:
    """An optional string field, whitespace collapsed (blank is None), at most MAX_REASON_CHARS."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        return _bad(f'"{key}" must be a string')
    value = " ".join(value.split())
    if len(value) > MAX_REASON_CHARS:
        return _bad(f'"{key}" is longer than {MAX_REASON_CHARS} characters')
    return value or None


def _count(data: dict[str, Any], key: str) -> int | web.Response:
    value = data.get(key)
    if type(value) is not int or value < 0:  # bool is an int subclass: rejected by the type check
        return _bad(f'"{key}" must be a non-negative integer')
    return value


def _now(state: LibraryState) -> datetime:
    return state.clock().astimezone(LIBRARY_TZ).replace(microsecond=0)


async def decide(request: web.Request) -> web.Response:
    """POST .../{number}/decision: record the commission's decision on a registered submission."""
    state = request.app[LIBRARY_STATE]
    submission = _find(state, request.match_info["number"])
    if isinstance(submission, web.Response):
        return submission
    data = await _json_object(request, _DECISION_KEYS)
    if isinstance(data, web.Response):
        return data
    decision = data.get("decision")
    if decision not in DECISIONS:
        return _bad(f'"decision" must be one of {list(DECISIONS)}')
    counts: list[int] = []
    for key in ("members", "votesFor", "votesAgainst"):
        count = _count(data, key)
        if isinstance(count, web.Response):
            return count
        counts.append(count)
    members, votes_for, votes_against = counts
    reason = _text(data, "reason")
    if isinstance(reason, web.Response):
        return reason
    if members < MIN_MEMBERS or members > MAX_MEMBERS or members % 2 == 0:
        detail = f"the commission has {members} members; rules §6 require an odd number, at least {MIN_MEMBERS}"
        return problem(400, "LIB_COMMISSION_INVALID", "Invalid commission", detail)
    if votes_for + votes_against != members:
        detail = f"{votes_for} for and {votes_against} against do not add up to the {members} members"
        return problem(400, "LIB_DECISION_INCONSISTENT", "Inconsistent decision", detail)
    majority = "include" if votes_for > votes_against else "not-include"
    if decision != majority:
        detail = f"{votes_for} for and {votes_against} against is a majority to {majority}, not to {decision}"
        return problem(400, "LIB_DECISION_INCONSISTENT", "Inconsistent decision", detail)
    if decision == "not-include" and reason is None:
        return problem(400, "LIB_REASON_REQUIRED", "Reason required", "a decision not to include needs a reason")
    if submission.status != "registered":
        detail = f"{submission.number} is already {submission.status}"
        return problem(409, "LIB_ALREADY_DECIDED", "Already decided", detail)
    config = request.app[COMMISSION_CONFIG]
    now = _now(state)
    due = add_working_days(now.date(), INCLUSION_WORKING_DAYS, config.holidays) if decision == "include" else None
    return _decided(
        request, submission, decision=decision, members=members, votes_for=votes_for, votes_against=votes_against,
        decided_at=now, inclusion_due_by=due, exclusion_ground=None, reason=reason,
    )


async def exclude(request: web.Request) -> web.Response:
    """POST .../{number}/exclude: exclude the included objects of a submission (§13)."""
    state = request.app[LIBRARY_STATE]
    submission = _find(state, request.match_info["number"])
    if isinstance(submission, web.Response):
        return submission
    data = await _json_object(request, _EXCLUSION_KEYS)
    if isinstance(data, web.Response):
        return data
    ground = data.get("reason")
    if ground not in EXCLUSION_GROUNDS:
        return _bad(f'"reason" must be one of {sorted(EXCLUSION_GROUNDS)}')
    details = _text(data, "details")
    if isinstance(details, web.Response):
        return details
    if submission.status != "included":
        detail = f"{submission.number} is {submission.status}; only included objects can be excluded"
        return problem(409, "LIB_NOT_INCLUDED", "Not included", detail)
    inclusion = submission.decisions[-1]
    opening = EXCLUSION_GROUNDS[ground]
    reason = f"Excluded from the fund: {opening}." + (f" {details}" if details else "")
    return _decided(
        request, submission, decision="excluded", members=inclusion.members, votes_for=inclusion.votes_for,
        votes_against=inclusion.votes_against, decided_at=_now(state), inclusion_due_by=None,
        exclusion_ground=ground, reason=reason[:MAX_REASON_CHARS],
    )


async def get_decision(request: web.Request) -> web.Response:
    """GET .../{number}/decision: the latest decision, byte for byte as it was answered."""
    submission = _find(request.app[LIBRARY_STATE], request.match_info["number"])
    if isinstance(submission, web.Response):
        return submission
    if not submission.decisions:
        detail = f"{submission.number} is {submission.status}: the commission has not decided yet"
        return problem(404, "LIB_DECISION_NOT_FOUND", "No decision yet", detail)
    return _xml(submission.decisions[-1].document)


def add_commission_routes(
    app: web.Application,
    schema: etree.XMLSchema,
    signer: DocumentSigner | None,
    holidays: Iterable[date] | Callable[[], Iterable[date]] = load_holidays,
) -> None:
    """Register the decision routes on an application built by ``create_library_app``.

    ``holidays`` is the list of days off besides weekends, or a loader of it (default: the shared
    calendar file, read once here).
    """
    days = holidays() if callable(holidays) else holidays
    app[COMMISSION_CONFIG] = CommissionConfig(schema=schema, signer=signer, holidays=frozenset(days))
    base = FUND_SUBMISSIONS_PATH + "/{number}"
    app.router.add_post(base + "/decision", decide)
    app.router.add_get(base + "/decision", get_decision)
    app.router.add_post(base + "/exclude", exclude)
