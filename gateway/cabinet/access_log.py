"""The register of cabinet reads: who read which applicant's data, when, and which applications.

The Law on Informatization (art. 41-43) asks that facts of access to personal data be registered. Every
cabinet read (list, one application, its signed result or receipt, a live stream) appends one record to an
append-only Redis stream ``P:access-records``, bounded by ``MAXLEN ~ cabinet.access_records_max`` (Redis trims
the oldest whole blocks, so it keeps about that many; export it elsewhere if the law's retention is longer).
The record holds the full owner (IIN or BIN); log lines about it mask the owner. A read whose record cannot be
written is not answered (the handler fails with storage unavailable).
Operators list them (:mod:`gateway.cabinet.access_api`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gateway.lifecycle.store import utc_now
from gateway.messagelog.journal import MessageLog
from gateway.messagelog.records import Entry, Kind
from signing.idnumbers import mask_id

log = logging.getLogger("egov.cabinet.access")
_BATCH = 500
_SCAN_BUDGET = 20_000
"Most records one listing request examines: a rare filter pages through ``next`` instead of scanning all."


@dataclass(frozen=True)
class AccessRecord:
    """One registered cabinet read."""

    entry_id: str
    "The stream entry's id (time-ordered; the ``before`` cursor of the listing)."
    at: str
    "When (ISO 8601, UTC)."
    sender: str
    "Who read: the authenticated sender."
    owner: str
    "Whose data: the applicant's IIN or the organisation's BIN, in full."
    action: str
    "list, application, result, receipt or events."
    applications: tuple[str, ...]
    "Session ids of the applications shown (empty when none was)."
    found: bool
    "False when the read asked for something it was not shown (not found, or not this sender's)."
    remote: str
    "The client address the read came from."

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.entry_id, "at": self.at, "sender": self.sender, "owner": self.owner,
                "action": self.action, "applications": list(self.applications), "found": self.found,
                "remote": self.remote}


class AccessLog:
    """Appends and lists access records (one instance per process, sharing the Redis pool)."""

    def __init__(self, redis: Redis, prefix: str = "egov", *, max_len: int = 1_000_000,
                 messagelog: MessageLog | None = None) -> None:
        self.redis = redis
        self.messagelog = messagelog
        "The same events go into the message log, the owner masked (the stream keeps it whole, for queries)."
        self.key = f"{prefix}:access-records"
        self.max_len = max_len

    async def record(self, *, sender: str, owner: str, action: str, applications: Sequence[str] = (),
                     found: bool = True, remote: str = "") -> None:
        """Register one read; raises RedisError when it cannot (the read must then not be answered)."""
        await self.redis.xadd(self.key, {
            "at": utc_now(), "sender": sender, "owner": owner, "action": action,
            "applications": " ".join(applications), "found": "1" if found else "0", "remote": remote,
        }, maxlen=self.max_len, approximate=True)
        if self.messagelog is not None:
            await self.messagelog.append(Entry(
                Kind.CABINET_READ, sender, "", "", " ".join(applications), {},
                note=f"{action} of {mask_id(owner)} from {remote or '-'}{'' if found else ', not shown'}"))
        log.debug("cabinet %s of %s by %s: %d application(s)", action, mask_id(owner), sender, len(applications))

    async def page(self, *, owner: str | None = None, sender: str | None = None, before: str | None = None,
                   limit: int = 50) -> tuple[list[AccessRecord], str | None]:
        """Records newest first matching ``owner`` and ``sender`` (None: any), older than entry ``before``.

        Returns the records and the cursor for the next page (None when the stream is exhausted). At most
        ``_SCAN_BUDGET`` records are examined per call, so a page may hold fewer than ``limit`` and still a cursor.
        """
        found: list[AccessRecord] = []
        upper, examined = f"({before}" if before else "+", 0
        while examined < _SCAN_BUDGET:
            batch: list[tuple[Any, Any]] = list(await self.redis.xrevrange(self.key, max=upper, min="-",
                                                                           count=_BATCH) or [])
            for raw_id, fields in batch:
                examined += 1
                record = _record(raw_id, fields)
                if (owner is None or record.owner == owner) and (sender is None or record.sender == sender):
                    found.append(record)
                    if len(found) == limit:
                        return found, record.entry_id
            if len(batch) < _BATCH:
                return found, None
            upper = f"({_text(batch[-1][0])}"
        return found, upper[1:]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _record(raw_id: str | bytes, raw: dict[Any, Any]) -> AccessRecord:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return AccessRecord(entry_id=_text(raw_id), at=fields.get("at", ""), sender=fields.get("sender", ""),
                        owner=fields.get("owner", ""), action=fields.get("action", ""),
                        applications=tuple(fields.get("applications", "").split()),
                        found=fields.get("found") == "1", remote=fields.get("remote", ""))
