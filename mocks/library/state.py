"""The KazNEB mock's in-memory state, kept on the aiohttp application under ``LIBRARY_STATE``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from lxml import etree

from mocks.faults import FaultPlan
from mocks.library.records import Submission, Ticket


@dataclass
class LibraryState:
    """Everything the mock knows, stored on the application under ``LIBRARY_STATE``."""

    registration_schema: etree.XMLSchema
    ticket_schema: etree.XMLSchema
    submission_schema: etree.XMLSchema
    receipt_schema: etree.XMLSchema
    clock: Callable[[], datetime]
    tickets: dict[str, Ticket] = field(default_factory=dict)
    sequences: dict[int, int] = field(default_factory=dict)
    submissions: dict[str, Submission] = field(default_factory=dict)
    "Fund submissions by submission number (see mocks.library.fund)."
    submission_sequences: dict[int, int] = field(default_factory=dict)
    fault: FaultPlan = field(default_factory=FaultPlan)
    registrations_received: int = 0
    "How many registration requests reached the handler (tests check the gateway called once)."
    submissions_received: int = 0
    "How many fund submission requests reached the handler."

    def issue(self, *, iin: str, holder_name: str, reader_category: str, application_id: str | None) -> Ticket:
        """Create and store the ticket for an IIN that has none; numbers restart every year.

        No await between the caller's lookup and this insert: two registrations cannot interleave."""
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        sequence = self.sequences.get(now.year, 0) + 1
        self.sequences[now.year] = sequence
        number = f"KAZNEB-{now.year:04d}-{sequence:08d}"
        ticket = Ticket(number, iin, holder_name, reader_category, now, application_id)
        self.tickets[iin] = ticket
        return ticket


LIBRARY_STATE = web.AppKey("kazneb_library_state", LibraryState)
