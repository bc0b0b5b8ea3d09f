"""The KazNEB mock's records as JSON, so a demo restart keeps issued tickets, submissions and decisions.

Ticket and submission counters are kept too: a restarted library never hands out a number twice.
Decision documents are stored byte for byte (base64), so a decision fetched again after a restart is
the one first signed.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from mocks.library.records import Decision, FundObject, Submission, Ticket


def _ticket(data: dict[str, Any]) -> Ticket:
    return Ticket(data["number"], data["iin"], data["holder_name"], data["reader_category"],
                  datetime.fromisoformat(data["issued_at"]), data["application_id"])


def _decision_json(decision: Decision) -> dict[str, Any]:
    return {**asdict(decision), "decided_at": decision.decided_at.isoformat(),
            "inclusion_due_by": decision.inclusion_due_by.isoformat() if decision.inclusion_due_by else None,
            "document": base64.b64encode(decision.document).decode("ascii")}


def _decision(data: dict[str, Any]) -> Decision:
    due = data["inclusion_due_by"]
    return Decision(data["decision"], data["members"], data["votes_for"], data["votes_against"],
                    datetime.fromisoformat(data["decided_at"]), date.fromisoformat(due) if due else None,
                    data["exclusion_ground"], data["reason"], base64.b64decode(data["document"]))


def _submission_json(submission: Submission) -> dict[str, Any]:
    return {**asdict(submission), "received_at": submission.received_at.isoformat(),
            "commission_due_by": submission.commission_due_by.isoformat(),
            "decisions": [_decision_json(d) for d in submission.decisions]}


def _submission(data: dict[str, Any]) -> Submission:
    return Submission(
        number=data["number"], bin=data["bin"], participant_name=data["participant_name"],
        participant_kind=data["participant_kind"], head_name=data["head_name"],
        objects=tuple(FundObject(**item) for item in data["objects"]), total_pages=data["total_pages"],
        received_at=datetime.fromisoformat(data["received_at"]),
        commission_due_by=date.fromisoformat(data["commission_due_by"]), application_id=data["application_id"],
        status=data["status"], decisions=[_decision(d) for d in data["decisions"]],
    )


def records_json(tickets: dict[str, Ticket], sequences: dict[int, int], submissions: dict[str, Submission],
                 submission_sequences: dict[int, int]) -> dict[str, Any]:
    """The library's records as one JSON object (see :func:`read_records`)."""
    return {
        "tickets": [{**asdict(t), "issued_at": t.issued_at.isoformat()} for t in tickets.values()],
        "ticket_sequences": {str(year): n for year, n in sequences.items()},
        "submissions": [_submission_json(s) for s in submissions.values()],
        "submission_sequences": {str(year): n for year, n in submission_sequences.items()},
    }


def read_records(data: dict[str, Any]) -> tuple[dict[str, Ticket], dict[int, int], dict[str, Submission],
                                                dict[int, int]]:
    """Tickets by IIN, ticket counters by year, submissions by number, submission counters by year.

    KeyError, TypeError or ValueError for a damaged file."""
    tickets = {ticket.iin: ticket for ticket in map(_ticket, data["tickets"])}
    submissions = {item.number: item for item in map(_submission, data["submissions"])}
    return (tickets, {int(y): int(n) for y, n in data["ticket_sequences"].items()}, submissions,
            {int(y): int(n) for y, n in data["submission_sequences"].items()})
