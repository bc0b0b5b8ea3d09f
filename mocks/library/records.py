"""The KazNEB mock's records: reader tickets, fund submissions and the commission's decisions.

Plain data shared by the reader routes (``mocks.library.app``), the fund routes
(``mocks.library.fund``) and the commission routes (``mocks.library.commission``); it imports none
of them, so each can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class Ticket:
    """One issued reader ticket (immutable: re-registration never changes it)."""

    number: str
    iin: str
    holder_name: str
    reader_category: str
    issued_at: datetime
    application_id: str | None


@dataclass(frozen=True)
class FundObject:
    """One submitted fund object, as read from the application (token-normalised text)."""

    title: str
    category: str
    pages: int
    format: str
    access_level: str
    author_agreement: str
    author: str | None
    year: int | None


@dataclass
class Submission:
    """One registered application; ``status`` and ``decisions`` are the fields later stages change."""

    number: str
    bin: str
    participant_name: str
    participant_kind: str
    head_name: str
    objects: tuple[FundObject, ...]
    total_pages: int
    received_at: datetime
    commission_due_by: date
    application_id: str | None
    status: str = "registered"
    decisions: list[Decision] = field(default_factory=list)
    "Commission decisions and exclusions, oldest first (see mocks.library.commission)."


@dataclass(frozen=True)
class Decision:
    """One decision on a submission, as sent (``document`` is the exact answer body)."""

    decision: str
    "``include``, ``not-include`` or ``excluded``."
    members: int
    votes_for: int
    votes_against: int
    decided_at: datetime
    "Aware, Astana time."
    inclusion_due_by: date | None
    "For ``include`` only."
    exclusion_ground: str | None
    "For ``excluded`` only: a key of ``mocks.library.commission.EXCLUSION_GROUNDS``."
    reason: str | None
    document: bytes
    "The FundDecision as serialised and (when a signer is set) signed."
