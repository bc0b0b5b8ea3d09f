"""The KazNEB mock's state, kept on the aiohttp application under ``LIBRARY_STATE`` (and, with a
:class:`~mocks.statefile.StateFile`, on disk between runs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from lxml import etree

from mocks.faults import FaultPlan
from mocks.idempotency import IdempotencyMemory
from mocks.library.persist import read_records, records_json
from mocks.library.records import Submission, Ticket
from mocks.statefile import StateFile, StateFileError


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
    store: StateFile | None = None
    "Where tickets, submissions and counters are kept between runs; None keeps them in memory only."
    api_requests: int = 0
    "API requests received, injected failures included (tests count the calls that reach the library)."
    idempotency: IdempotencyMemory = field(default_factory=IdempotencyMemory)
    "First answers by Idempotency-Key (kept with the records), and what was processed how often."

    def save(self) -> None:
        """Write the records to :attr:`store` (call after every change; nothing without a store)."""
        if self.store is not None:
            self.store.save({**records_json(self.tickets, self.sequences, self.submissions, self.submission_sequences),
                             "idempotency": self.idempotency.as_json()})

    def restore(self) -> None:
        """Read the records :meth:`save` wrote, if any (:class:`StateFileError` for a damaged file)."""
        data = self.store.load() if self.store is not None else None
        if data is None or self.store is None:
            return
        try:
            self.tickets, self.sequences, self.submissions, self.submission_sequences = read_records(data)
            self.idempotency.load(data.get("idempotency", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"{self.store.path} is damaged ({exc!r}); start with --fresh") from None

    def issue(self, *, iin: str, holder_name: str, reader_category: str, application_id: str | None) -> Ticket:
        """Create and store the ticket for an IIN that has none; numbers restart every year.

        No await between the caller's lookup and this insert: two registrations cannot interleave."""
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        sequence = self.sequences.get(now.year, 0) + 1
        self.sequences[now.year] = sequence
        number = f"KAZNEB-{now.year:04d}-{sequence:08d}"
        ticket = Ticket(number, iin, holder_name, reader_category, now, application_id)
        self.tickets[iin] = ticket
        self.save()
        return ticket


LIBRARY_STATE = web.AppKey("kazneb_library_state", LibraryState)
