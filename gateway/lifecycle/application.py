"""An application and its states: the record the gateway keeps from acceptance to the final answer.

Only :mod:`gateway.lifecycle.transitions` changes ``status`` (and writes history); everything else reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    ACCEPTED = "accepted"
    "Signature and identity verified, recorded; not yet sent to the back-end."
    ROUTED = "routed"
    "Being delivered to the back-end (or waiting for it to come back)."
    IN_PROGRESS = "in_progress"
    "The back-end has it and is working through its regulated steps."
    COMPLETED = "completed"
    "The back-end answered; the signed result is in the cabinet."
    REFUSED = "refused"
    "The back-end refused with a reasoned, signed refusal (in the cabinet as the result)."
    FAILED = "failed"
    "The back-end could not take it or answered wrongly; error_code says why."
    STOPPED = "stopped"
    "Delivery was given up (dead-lettered); an operator may replay it."

    @property
    def final(self) -> bool:
        return self in (Status.COMPLETED, Status.REFUSED, Status.FAILED, Status.STOPPED)


@dataclass
class Application:
    """One accepted application and what became of it."""

    id: str
    "Gateway session id, `{guid}`."
    sender_id: str
    "The system that sent it (the portal)."
    message_id: str
    "The sender's messageId."
    service_id: str
    "Requested service."
    channel: str
    "Where it came in: soap (SyncChannel), soap-async (AsyncChannel) or rest."
    applicant_iin: str
    "IIN of the applicant (from the verified certificate)."
    applicant_name: str
    "Signer's name from the certificate."
    status: Status
    "Current state."
    created_at: str
    "ISO time it was accepted."
    updated_at: str
    "ISO time of the last change."
    document: bytes | None
    """The verified business document: the canonical XML (UTF-8) its signature covers. Bytes, not text: a str of a
    document with one Cyrillic letter takes two bytes a character, and the store and the connectors send bytes.
    Stored under a key of its own (``P:app:{id}:document``); None in a copy read without its parts
    (:meth:`ApplicationStore.get` with ``parts=False``)."""
    report: dict[str, Any]
    """The signature validation report. Stored under a key of its own (``P:app:{id}:report``, JSON); empty in a
    copy read without its parts."""
    mode: str = "sync"
    "sync: answered within the request; async: delivered in the background."
    attempts: int = 0
    "Delivery attempts so far."
    provider_ref: str | None = None
    "The back-end's reference (registration number, queue entry id) once it took the application."
    polled: bool = False
    "The back-end holds it under provider_ref and is asked for its steps (soap); a replay resumes polling."
    steps_seen: list[str] = field(default_factory=list)
    "Codes of the back-end's steps already recorded in the history."
    gateway_correlation_id: str | None = None
    "AsyncChannel: the correlationId the gateway generated for this conversation."
    applicant_bin: str | None = None
    "The organisation's BIN, for organisation applications (indexed in its cabinet too)."
    organisation: str | None = None
    "The organisation's name from the certificate."
    correlation_id: str | None = None
    "The sender's correlationId, if any."
    receipt: str | None = None
    "The gateway-signed receipt binding to the request (XML), made when accepted."
    result: str | None = None
    "The gateway-signed result document (XML), once completed."
    error_code: str | None = None
    "Why it failed, once failed."
    error_detail: str | None = None
    "Extra English detail for a failure."
    properties: dict[str, str] = field(default_factory=dict)
    "requestInfo/properties from the sender."
    stored_parts: list[str] = field(default_factory=list)
    """Which of :data:`PARTS` are stored under keys of their own (written once, never again); empty for a record
    of an older version, which holds them inline. Kept in Redis's record only (never in :meth:`to_json`)."""

    @property
    def owners(self) -> tuple[str, ...]:
        """Cabinets the application appears in: the signer's IIN, and the organisation's BIN."""
        return (self.applicant_iin, self.applicant_bin) if self.applicant_bin else (self.applicant_iin,)

    @property
    def has_result(self) -> bool:
        """Whether there is a result, also in a copy read without its parts."""
        return self.result is not None or "result" in self.stored_parts

    @property
    def document_text(self) -> str | None:
        """The document as text (for JSON: the cabinet, the archive)."""
        return None if self.document is None else self.document.decode()

    def to_json(self) -> str:
        """The whole application, its parts inline (the archive's form, and what older versions stored)."""
        # Shallow on purpose: dataclasses.asdict deep-copies the report and costs more than the rest.
        data = {name: getattr(self, name) for name in _FIELDS}
        data["document"] = self.document_text
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def record_json(self) -> str:
        """The small record Redis keeps under ``P:app:{id}``: everything but the parts, and which parts are
        stored under their own keys (every part this copy holds is, once the write that carries it is done)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _RECORD_FIELDS}
        data["stored_parts"] = sorted(set(self.stored_parts) | {name for name in PARTS if self._holds(name)})
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def unstored_parts(self) -> dict[str, bytes | str]:
        """The parts this copy holds that are not stored under their own keys yet (what the next write adds), as
        they are stored: the XML as it is, the report as JSON."""
        return {name: self.part_value(name) for name in PARTS if name not in self.stored_parts and self._holds(name)}

    def _holds(self, name: str) -> bool:
        return bool(self.report) if name == "report" else getattr(self, name) is not None

    def part_value(self, name: str) -> bytes | str:
        """One part as stored under its key."""
        if name == "report":
            return json.dumps(self.report, ensure_ascii=False, separators=(",", ":"))
        value = getattr(self, name)
        return "" if value is None else value

    def set_part(self, name: str, value: bytes | str) -> None:
        """One part read from its key (bytes from Redis; text from an older record)."""
        if name == "document":
            self.document = value.encode() if isinstance(value, str) else value
        elif name == "report":
            self.report = json.loads(value)
        else:
            setattr(self, name, value.decode() if isinstance(value, bytes) else value)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Application:
        """A record (Redis's, without the parts, or an older version's with them inline) or an archived copy."""
        data = json.loads(raw)
        data.setdefault("report", {})
        document = data.pop("document", None)  # JSON holds it as text
        app = cls(document=None if document is None else document.encode(),
                  **{k: v for k, v in data.items() if k in _ALL_FIELDS})
        app.status = Status(app.status)
        return app


PARTS = ("document", "report", "receipt", "result")
"""The big parts written once under keys of their own (``P:app:{id}:<part>``), not rewritten with the record:
the signed document, its validation report and the receipt at acceptance, the result once it exists."""
_ALL_FIELDS = tuple(f.name for f in fields(Application))
_FIELDS = tuple(name for name in _ALL_FIELDS if name != "stored_parts")
_RECORD_FIELDS = tuple(name for name in _FIELDS if name not in PARTS)
