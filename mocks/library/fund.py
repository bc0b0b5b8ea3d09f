"""KazNEB fund submissions: participants' applications to include fund objects (REST, in memory).

Rules for forming, accounting and giving access to the KazNEB fund (order No. 76 of 19.03.2021):
participants (libraries, museums, archives) send an application in the appendix form with the
fund objects, their volume in pages, signed by the participant's head (§5). The National Academic
Library registers it and puts it before the standing commission as applications arrive, but at
least once a quarter (§7): the receipt names the last day of the current quarter, Astana time, as
``commissionDueBy``. Commission decisions (§9, §10) and exclusions (§13) are in
``mocks.library.commission``: they append to a stored :class:`Submission`'s ``decisions`` and
move its ``status`` to ``included``, ``not-included`` or ``excluded``, which the receipt shows.

Routes (fault injection applies, as to every ``/api/v1/`` route)
-----------------------------------------------------------------
``POST /api/v1/fund/submissions``
    Body: an unsigned ``FundSubmission`` (fund-submission.xsd), ``application/xml`` or
    ``text/xml``. 200 ``application/xml`` with a ``FundSubmissionReceipt`` (fund-receipt.xsd),
    ``status`` ``registered``. Errors (problem+json): 400 ``LIB_INVALID_DOCUMENT``, 413, 415 exactly
    as for readers. An ``X-Request-Id`` header (the gateway's application id) becomes the submission's
    ``applicationId``, which its receipt and decisions repeat; without one the document's is used. 400
    ``LIB_PAGES_MISMATCH`` when ``totalPages`` is not the sum of the objects'
    pages; 409 ``LIB_DUPLICATE_OBJECT`` when an object title (compared without case and with
    whitespace collapsed) was already submitted by the same BIN or appears twice in the request
    (§13: duplicates are excluded from the fund, so they are refused at the door).
``GET /api/v1/fund/submissions/{number}``
    200 with the receipt (current ``status``, the original ``applicationId``) or 404
    ``LIB_SUBMISSION_NOT_FOUND``.
"""

from __future__ import annotations

from datetime import UTC, date, timedelta, timezone

from aiohttp import web
from lxml import etree

from mocks.library.exchange import problem, read_business_document, xml_response
from mocks.library.forms import FUND_RECEIPT_NS, FUND_SUBMISSION_NS
from mocks.library.records import FundObject, Submission
from mocks.library.state import LIBRARY_STATE, LibraryState

FUND_SUBMISSIONS_PATH = "/api/v1/fund/submissions"

LIBRARY_TZ = timezone(timedelta(hours=5), "Astana")
"The library's time zone: all of Kazakhstan has used UTC+5 since 1 March 2024."

SUBMISSION_STATUSES = ("registered", "included", "not-included", "excluded")
"Statuses of fund-receipt.xsd: ``registered`` here, the others by commission decisions."


def quarter_end(day: date) -> date:
    """The last day of the calendar quarter containing ``day``."""
    first_month_of_next = (day.month - 1) // 3 * 3 + 4
    if first_month_of_next > 12:
        return date(day.year, 12, 31)
    return date(day.year, first_month_of_next, 1) - timedelta(days=1)


def title_key(title: str) -> str:
    """How titles are compared for duplicates: whitespace collapsed, case folded."""
    return " ".join(title.split()).casefold()


def _invalid(detail: str) -> web.Response:
    return problem(400, "LIB_INVALID_DOCUMENT", "Invalid fund submission document", detail)


def _token(parent: etree._Element, path: str) -> str | None:
    """Text of the child at ``path`` (names in the submission namespace), xsd:token-normalised."""
    ns = FUND_SUBMISSION_NS
    child = parent.find("/".join(f"{{{ns}}}{name}" for name in path.split("/")))
    if child is None or child.text is None:
        return None
    return " ".join(child.text.split())


def _read_object(element: etree._Element) -> FundObject:
    """A schema-valid ``object`` element as a FundObject (required fields are present)."""
    year = _token(element, "year")
    return FundObject(
        title=_token(element, "title") or "",
        category=_token(element, "category") or "",
        pages=int(_token(element, "pages") or 0),
        format=_token(element, "format") or "",
        access_level=_token(element, "accessLevel") or "",
        author_agreement=_token(element, "authorAgreement") or "",
        author=_token(element, "author"),
        year=int(year) if year else None,
    )


def _register(state: LibraryState, root: etree._Element, objects: tuple[FundObject, ...],
              request_id: str | None = None) -> Submission:
    """Number and store a checked application; numbers restart every (UTC) year, like tickets. ``request_id``
    (the caller's ``X-Request-Id``: the gateway's application id) is its applicationId, else the document's.

    Synchronous, so nothing can interleave between the caller's duplicate check and this insert.
    """
    now = state.clock().astimezone(UTC).replace(microsecond=0)
    sequence = state.submission_sequences.get(now.year, 0) + 1
    state.submission_sequences[now.year] = sequence
    submission = Submission(
        number=f"KAZNEB-F-{now.year:04d}-{sequence:06d}",
        bin=_token(root, "participant/bin") or "",
        participant_name=_token(root, "participant/name") or "",
        participant_kind=_token(root, "participant/kind") or "",
        head_name=_token(root, "headName") or "",
        objects=objects,
        total_pages=sum(item.pages for item in objects),
        received_at=now,
        commission_due_by=quarter_end(now.astimezone(LIBRARY_TZ).date()),
        application_id=request_id or _token(root, "applicationId"),
    )
    state.submissions[submission.number] = submission
    state.save()
    return submission


def render_receipt(submission: Submission) -> etree._Element:
    """The ``FundSubmissionReceipt`` element for a stored submission (schema element order)."""
    ns = FUND_RECEIPT_NS
    root = etree.Element(f"{{{ns}}}FundSubmissionReceipt", nsmap={None: ns})

    def add(name: str, text: str) -> None:
        etree.SubElement(root, f"{{{ns}}}{name}").text = text

    add("submissionNumber", submission.number)
    add("bin", submission.bin)
    add("participantName", submission.participant_name)
    add("objectCount", str(len(submission.objects)))
    add("totalPages", str(submission.total_pages))
    add("receivedAt", submission.received_at.isoformat())
    add("status", submission.status)
    add("commissionDueBy", submission.commission_due_by.isoformat())
    if submission.application_id is not None:
        add("applicationId", submission.application_id)
    return root


def _duplicate(state: LibraryState, bin_: str, objects: tuple[FundObject, ...]) -> str | None:
    """Detail for the first object title this BIN already submitted or repeats, else None."""
    earlier = {
        title_key(item.title): submission.number
        for submission in state.submissions.values()
        if submission.bin == bin_
        for item in submission.objects
    }
    seen: set[str] = set()
    for item in objects:
        key = title_key(item.title)
        if key in earlier:
            return f"object {item.title!r} was already submitted in {earlier[key]}"
        if key in seen:
            return f"object {item.title!r} appears more than once in this application"
        seen.add(key)
    return None


async def submit_fund_objects(request: web.Request) -> web.Response:
    """POST /api/v1/fund/submissions: validate, check pages and duplicates, register, answer a receipt."""
    state = request.app[LIBRARY_STATE]
    state.submissions_received += 1
    root = await read_business_document(request, state.submission_schema, _invalid)
    if isinstance(root, web.Response):
        return root

    ns = FUND_SUBMISSION_NS
    objects = tuple(_read_object(element) for element in root.iterfind(f"{{{ns}}}objects/{{{ns}}}object"))
    declared = int(_token(root, "totalPages") or 0)
    counted = sum(item.pages for item in objects)
    if declared != counted:
        detail = f"totalPages is {declared} but the {len(objects)} objects have {counted} pages in all"
        return problem(400, "LIB_PAGES_MISMATCH", "Total pages mismatch", detail)
    duplicate = _duplicate(state, _token(root, "participant/bin") or "", objects)
    if duplicate is not None:
        return problem(409, "LIB_DUPLICATE_OBJECT", "Duplicate fund object", duplicate)
    request_id = " ".join(request.headers.get("X-Request-Id", "").split())[:64] or None
    state.idempotency.count(request_id or _token(root, "applicationId"))
    return xml_response(state.receipt_schema, render_receipt(_register(state, root, objects, request_id)))


async def get_submission(request: web.Request) -> web.Response:
    """GET /api/v1/fund/submissions/{number}: the receipt with the current status, or 404."""
    state = request.app[LIBRARY_STATE]
    submission = state.submissions.get(request.match_info["number"])
    if submission is None:
        return problem(404, "LIB_SUBMISSION_NOT_FOUND", "Submission not found", "no fund submission with this number")
    return xml_response(state.receipt_schema, render_receipt(submission))


def add_fund_routes(app: web.Application) -> None:
    """Register the fund routes on an application built by ``create_library_app``."""
    app.router.add_post(FUND_SUBMISSIONS_PATH, submit_fund_objects)
    app.router.add_get(FUND_SUBMISSIONS_PATH + "/{number}", get_submission)
