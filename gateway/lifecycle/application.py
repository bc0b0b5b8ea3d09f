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
    document: str
    "The verified business document as signed (XML)."
    report: dict[str, Any]
    "The signature validation report."
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

    @property
    def owners(self) -> tuple[str, ...]:
        """Cabinets the application appears in: the signer's IIN, and the organisation's BIN."""
        return (self.applicant_iin, self.applicant_bin) if self.applicant_bin else (self.applicant_iin,)

    def to_json(self) -> str:
        # Shallow on purpose: dataclasses.asdict deep-copies the report and costs more than the rest.
        return json.dumps({name: getattr(self, name) for name in _FIELDS}, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Application:
        data = json.loads(raw)
        app = cls(**{k: v for k, v in data.items() if k in _FIELDS})
        app.status = Status(app.status)
        return app


_FIELDS = tuple(f.name for f in fields(Application))
