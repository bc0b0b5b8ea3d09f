"""One shape for every connector: ``submit`` hands a verified business document to a back-end and returns either
its answer or its reference; ``poll`` asks a back-end that took the document for its steps and, once final, its
answer. REST answers at once, SOAP (submit/status profile) is polled, the queue's desks post their answers to the
gateway themselves.

Connectors move bytes and report what the back-end said; they never judge an answer (its signature and schema
are checked by the caller) and never import the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


class ConnectorError(Exception):
    """The back-end call failed. ``code`` is a gateway error code (PROVIDER_*), ``transient`` says
    whether trying again later can help."""

    def __init__(self, code: str, detail: str, *, transient: bool) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.transient = transient


class PackageSource(Protocol):
    """A package stored by the gateway (an upload) that a connector streams to the back-end after the document."""

    @property
    def sha256(self) -> str:
        """Its SHA-256, lowercase hex."""
        ...

    @property
    def size(self) -> int:
        """Its size in bytes."""
        ...

    def chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        """Its bytes, read from storage ``chunk_size`` at a time (never all in memory)."""
        ...


@dataclass(frozen=True)
class Submission:
    """One application for a back-end, as the gateway hands it over."""

    endpoint: str
    "The back-end's address (rest: the resource; soap: the WSDL URL; queue: unused)."
    service_id: str
    "The service, e.g. the queue a job goes to."
    application_id: str
    """The gateway's session id, also the idempotency key of every attempt: the ``Idempotency-Key`` (and request
    id) for REST, ``applicationId`` for SOAP, the job's ``session_id`` for the queue."""
    document: bytes
    "The verified business document as signed (UTF-8 XML)."
    timeout: float
    "Deadline for one call, in seconds."
    metadata: dict[str, str] = field(default_factory=dict)
    "Who applied and under which messageId (the queue passes these to the desk; REST and SOAP ignore them)."
    package: PackageSource | None = None
    "The package the document names, for the package connector (None for every other service)."


@dataclass(frozen=True)
class Step:
    """One step of the back-end's procedure, as it reports it."""

    code: str
    "Stable step code (e.g. documents-checked)."
    name: str
    "The step's name for people."
    started_at: str | None = None
    "When it started (ISO)."
    due_at: str | None = None
    "Regulated deadline (ISO)."
    completed_at: str | None = None
    "When it finished, if it has."


@dataclass(frozen=True)
class Answer:
    """What a back-end said, from ``submit`` or ``poll``."""

    document: bytes | None = None
    "The back-end's answer document, once it gave one (not yet checked: the caller verifies it)."
    refused: bool = False
    "The answer is a reasoned refusal rather than the result."
    reference: str | None = None
    "The back-end's reference (registration number, queue entry id) when it took the document to work on."
    polled: bool = False
    "No answer yet and the gateway must ``poll`` for it (SOAP); False: the answer is pushed (queue desks)."
    note: str = ""
    "What happened, for the application's history (e.g. 'registered by the provider as R-1')."
    steps: tuple[Step, ...] = ()
    "The back-end's steps so far (from ``poll``)."


class Connector(Protocol):
    """A transport to one kind of back-end; one instance per process, shared by every service using it."""

    async def submit(self, submission: Submission) -> Answer:
        """Hand the document over. Returns the answer (REST) or the back-end's reference (SOAP, queue).
        Raises ConnectorError."""
        ...

    async def poll(self, endpoint: str, reference: str, *, timeout: float) -> Answer:
        """What the back-end says now about the document it took as ``reference``. Raises ConnectorError."""
        ...
