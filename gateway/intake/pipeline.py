"""The request pipeline shared by the SOAP and REST intakes.

sender auth ▸ service and access ▸ quota ▸ freshness ▸ signature ▸ business schema ▸ identity
▸ messageId claim ▸ record (before any acknowledgement) ▸ route ▸ sign the answer ▸ store ▸ reply.
Every refusal is a :class:`GatewayError`; nothing is written for a refused request.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lxml import etree
from redis.asyncio.client import Pipeline as RedisPipeline
from redis.exceptions import RedisError

from gateway.access.admission import Admission
from gateway.access.quotas import QuotaCounter
from gateway.access.senders import SenderDirectory
from gateway.config import DeliveryMode, LimitSettings
from gateway.delivery.engine import Delivery
from gateway.delivery.packages import PackageFinder, find_named_package
from gateway.delivery.registry import Service, ServiceRegistry
from gateway.errors import GatewayError, storage_refusal
from gateway.lifecycle.application import Application, Status
from gateway.lifecycle.archive import ArchiveStore, unreadable_refused
from gateway.lifecycle.durability import DurabilityProbe
from gateway.lifecycle.receipts import ReceiptIssuer, receipt_request_digest, request_digest
from gateway.lifecycle.replicas import ReplicaAcks
from gateway.lifecycle.store import ApplicationStore, utc_now
from gateway.lifecycle.transitions import Lifecycle
from gateway.messagelog.journal import MessageLog
from gateway.messagelog.records import Entry, Kind
from gateway.monitor.metrics import observe_signature
from gateway.supervise import describe
from signing.applicant import Applicant, IdentityRejected, check_applicant
from signing.idnumbers import mask_id
from signing.policy import RevocationMode
from signing.revocation import RevocationChecker, apply_revocation
from signing.signer import DocumentSigner
from signing.verifier import DocumentVerifier, SignatureRejected, VerifiedDocument
from signing.xmlsafe import XmlLimits, canonical_bytes

log = logging.getLogger("egov.pipeline")

SUCCESS_CODE = "SCSS001"
SUCCESS_MESSAGE = "Message has been processed successfully"


@dataclass(frozen=True)
class IntakeRequest:
    """One request as both intakes hand it over, already schema-checked."""

    channel: str
    "Where it came in: soap (SyncChannel), soap-async (AsyncChannel) or rest."
    message_id: str
    "Sender's messageId."
    service_id: str
    "Requested service."
    message_date: datetime
    "Sender's messageDate (UTC aware)."
    sender_id: str
    "Claimed sender."
    password: str | None
    "Sender's password."
    document: etree._Element | None
    """The signed business document, detached into its own tree. Handed over: :meth:`Pipeline.process` empties
    the tree once the signature is checked and the digest taken, so a big document is not held twice."""
    correlation_id: str | None = None
    "Sender's correlationId."
    properties: dict[str, str] = field(default_factory=dict)
    "requestInfo/properties."


@dataclass(frozen=True)
class Outcome:
    """What the sender is answered with."""

    application: Application
    "The stored application: final (completed or refused) when answered within the request, else as accepted."
    result: bytes | None
    "The signed result document; None when the application was accepted for background delivery."
    replayed: bool
    "True when this is the stored answer to a repeated messageId."


def new_session_id() -> str:
    return "{" + str(uuid.uuid4()) + "}"


class Pipeline:
    """Turns one intake request into a recorded application and, for sync services, its signed answer.

    Contract: every check runs before anything is written; a refused request leaves no trace but the log.
    An accepted one is recorded (with its delivery lease) before any acknowledgement, so an acknowledged
    application is never lost. A repeated messageId from the same sender gets the first answer, and the
    back-end is not called again. Security: the sender's password is checked first, and only a verified
    signature by a trusted, unrevoked certificate whose identity matches the document gets past the checks;
    the applicant's IIN is masked in every log line.
    """

    def __init__(
        self,
        *,
        senders: SenderDirectory,
        registry: ServiceRegistry,
        verifier: DocumentVerifier,
        signer: DocumentSigner,
        store: ApplicationStore,
        lifecycle: Lifecycle,
        limits: LimitSettings,
        delivery: Delivery,
        revocation: RevocationChecker | None = None,
        revocation_mode: RevocationMode = RevocationMode.OFF,
        quotas: QuotaCounter | None = None,
        messagelog: MessageLog | None = None,
        durability: DurabilityProbe | None = None,
        packages: PackageFinder | None = None,
        archive: ArchiveStore | None = None,
        replicas: ReplicaAcks | None = None,
        receipts: ReceiptIssuer | None = None,
    ) -> None:
        """``packages``: the uploads' storage, for services whose document names a package (``package_element``).
        ``archive``: where finished applications go after the retention; a repeat of theirs is answered from it.
        ``replicas``: the wait for replicas (``[redis] min_replica_acks``) before every answer, a repeat's too.
        ``receipts``: how receipts are signed (one signature each by ``signer`` when absent, or in batches)."""
        self.senders = senders
        self.registry = registry
        self.verifier = verifier
        self.signer = signer
        self.store = store
        self.lifecycle = lifecycle
        self.limits = limits
        self.delivery = delivery
        self.revocation = revocation
        self.revocation_mode = revocation_mode
        self.durability = durability
        self.quotas = quotas
        self.packages = packages
        self.messagelog = messagelog
        self.archive = archive
        self.replicas = replicas
        self.receipts = receipts or ReceiptIssuer(signer)
        self.limiter = Admission.from_limits(limits)
        self.xml_limits = XmlLimits(limits.max_body_bytes, limits.max_xml_depth, limits.max_xml_elements)

    @property
    def logs_requests(self) -> bool:
        """Whether requests go into the message log as received: only then does an intake keep a request's body
        past parsing it (a big document's bytes are freed before its signature is checked otherwise)."""
        return self.messagelog is not None and self.messagelog.enabled

    def admit(self) -> Admission:
        """The admission gate (``limits.max_in_flight``, and the queueing delay beyond ``limits.min_in_flight``:
        :mod:`gateway.access.admission`): an intake holds it around the whole request.

        Entered first, before the body is read, parsed or its signature verified, so excess work is refused
        with GATEWAY_OVERLOADED (503, Retry-After) at almost no cost, and the bound also caps the memory of
        bodies being read (``max_in_flight × max_body_bytes``). Caveat: a slow sender holds its slot while
        its body trickles in.
        """
        return self.limiter

    async def process(self, request: IntakeRequest, session_id: str, *, asynchronous: bool = False,
                      client: str | None = None, signed_by: str | None = None,
                      raw: bytes | None = None) -> Outcome:
        """Run the whole pipeline; storage trouble anywhere is one clear, retryable error.

        The caller holds a slot of :meth:`admit`. ``asynchronous`` (the AsyncChannel) accepts every service
        for background delivery; otherwise a service's own mode decides whether the answer comes within the
        request. ``client`` is the caller's network address: failed sign-ins are throttled by it. ``signed_by`` is the
        BIN of a verified WS-Security signature over the request (:mod:`gateway.intake.ws_security`). ``raw`` is
        the request's body as received, for the message log (the document's bytes stand in when absent).
        """
        try:
            if self.messagelog is not None:  # a cached status, no round trip: refused before any work
                self.messagelog.check_open()
            outcome = await self._process(request, session_id, asynchronous, client, signed_by, raw)
            if self.durability is not None:  # acknowledge only what reached the append-only file
                await self.durability.confirm()
            if self.replicas is not None:  # ... and, when asked for, the replicas (a repeat's answer waits too)
                await self.replicas.confirm(self._created_keys(outcome.application))
            return outcome
        except RedisError as exc:
            log.warning("storage unavailable in %s: %s", session_id, describe(exc))
            raise storage_refusal(exc, type(exc).__name__) from None

    async def _process(self, request: IntakeRequest, session_id: str, asynchronous: bool,
                       client: str | None, signed_by: str | None, raw: bytes | None) -> Outcome:
        sender = await self.senders.authenticate(request.sender_id, request.password, client=client,
                                                 signed_by=signed_by)
        service = self.registry.get(request.service_id)
        if service is None:
            raise GatewayError("CLIENT_UNKNOWN_SERVICE", f"serviceId {request.service_id!r} is not registered")
        if not (sender.may_call(service.service_id) and service.admits(request.sender_id)):
            raise GatewayError("CLIENT_ACCESS_DENIED")
        if self.quotas is not None:  # before the costly checks: a sender over its quota costs one Redis call
            await self.quotas.count(request.sender_id, service.service_id)
        self._check_freshness(request.message_date)
        if request.document is None:
            raise GatewayError("CLIENT_DOCUMENT_MISSING")

        received_digest, raw = self._keep_of_received(request.document, raw)
        verified = self._verify(request.document)
        request.document.clear()  # from here on the pipeline works on the verified copy only
        # The size check, the record and the submission to the back-end all start from these bytes.
        document = verified.canonical if verified.canonical is not None else canonical_bytes(
            verified.signed, exclusive=False)  # inclusive: a namespace used only in a value (xsi:type) stays
        self._check_size(service, document)  # before any other work on it, and before anything is stored
        self._check_document(service, verified.signed)
        applicant = self._check_identity(service, verified)
        # Last of the checks: on a cache miss it is the only one that waits on the network.
        verified = await self._check_revocation(verified)

        earlier = await self._earlier(request)  # a repeat skips the receipt
        if earlier is not None:
            return await self._replay(earlier, request, raw, received_digest)
        await self._check_package(service, request.sender_id, verified.signed)  # a repeat above needs none
        now = utc_now()
        mode = DeliveryMode.ASYNC if asynchronous or service.settings.mode is DeliveryMode.ASYNC else DeliveryMode.SYNC
        app = Application(
            id=session_id, sender_id=request.sender_id, message_id=request.message_id,
            service_id=service.service_id, channel=request.channel, applicant_iin=applicant.iin,
            applicant_bin=applicant.bin, applicant_name=applicant.name, organisation=applicant.organisation,
            status=Status.ACCEPTED, created_at=now, updated_at=now,
            document=document, report=verified.report.to_dict(),
            correlation_id=request.correlation_id, properties=dict(request.properties), mode=str(mode),
            gateway_correlation_id=str(uuid.uuid4()) if asynchronous else None,
        )
        app.receipt = await self.receipts.issue(app, received_digest, str(verified.report.indication))
        summary = verified.report.log_summary()
        del verified  # its tree is no longer needed: freed before the back-end is called (big documents)
        synchronous = mode is DeliveryMode.SYNC
        # The record, the messageId claim, the delivery lease, the cabinet indexes and the message log's request
        # and receipt records are written in ordered steps before any ack (ApplicationStore.create, and
        # Delivery.lease_for): a crash between them is finished by a repeat of the messageId (_replay).
        earlier = await self.lifecycle.accept(app, lease=self.delivery.lease_for(app), route_note=(
            f"sent to the back-end over {service.settings.connector}" if synchronous else None),
            also=self._log_received(request, app, raw))
        if earlier is not None:  # the same messageId came in at the same time: the first one's answer
            return await self._replay(earlier, request, raw, received_digest)
        log.info("accepted %s service=%s sender=%s mode=%s %s", session_id, service.service_id,
                 request.sender_id, mode, summary)
        if not synchronous:
            self.delivery.wake()
            return Outcome(application=app, result=None, replayed=False)
        signed = await self.delivery.deliver_now(app, service)
        return Outcome(application=app, result=signed, replayed=False)

    def _keep_of_received(self, received: etree._Element, raw: bytes | None) -> tuple[str, bytes | None]:
        """What is kept of the document as received, taken before the verifier consumes the tree: its digest (for
        the receipt and a repeat's comparison) and, when the message log logs requests and the intake kept no
        body, its bytes."""
        digest = request_digest(received)
        if raw is None and self.logs_requests:
            raw = etree.tostring(received)
        return digest, raw

    def _log_received(self, request: IntakeRequest, app: Application, raw: bytes | None, *,
                      repair: bool = False) -> Callable[[RedisPipeline], None] | None:
        """The request as received and its receipt for the message log: step 5 of ApplicationStore.create, before
        anything is acknowledged. Before Redis Cluster they were in the application's own transaction (exactly
        once); now the log has its own slot, so they are a step of their own: never missing for an acknowledged
        application, and after a crash during the create steps the repair logs them again (``repair``: marked
        so; at least once), from the repeat's body."""
        messagelog = self.messagelog
        if messagelog is None or not self.logs_requests:
            return None
        body = raw or b""
        mark = " repair" if repair else ""
        entries = (Entry(Kind.REQUEST, request.sender_id, request.service_id, request.message_id, app.id,
                         {"request": body}, note=request.channel + mark),
                   Entry(Kind.RECEIPT, request.sender_id, request.service_id, request.message_id, app.id,
                         {"receipt": (app.receipt or "").encode()}, note=mark.strip()))
        return lambda pipe: messagelog.append_in(pipe, *entries)

    def _created_keys(self, app: Application) -> list[str]:
        """A key of each slot the create steps of ``app`` wrote (the message log's records too)."""
        keys = self.store.created_keys(app, self.delivery.outbox.key)
        if self.messagelog is not None and self.logs_requests:
            keys.append(self.messagelog.keys.records)
        return keys

    async def log_answer(self, request: IntakeRequest, outcome: Outcome, body: bytes) -> None:
        """The answer about to be sent (the HTTP body), in the message log; GatewayError when it cannot be
        logged (GATEWAY_STORAGE_UNAVAILABLE instead; a repeat of the messageId gets the same answer)."""
        if self.messagelog is None or not self.messagelog.enabled:
            return
        try:
            await self.messagelog.append(Entry(Kind.ANSWER, request.sender_id, request.service_id,
                                               request.message_id, outcome.application.id, {"answer": body},
                                               note="replayed" if outcome.replayed else ""))
        except RedisError as exc:
            log.warning("answer of %s not logged: %s", outcome.application.id, type(exc).__name__)
            raise GatewayError("GATEWAY_STORAGE_UNAVAILABLE", type(exc).__name__) from None

    def _check_freshness(self, message_date: datetime) -> None:
        now = datetime.now(UTC)
        if message_date < now - timedelta(seconds=self.limits.message_max_age_seconds):
            raise GatewayError("CLIENT_STALE_MESSAGE", "messageDate is older than the replay window")
        if message_date > now + timedelta(seconds=self.limits.message_max_future_seconds):
            raise GatewayError("CLIENT_STALE_MESSAGE", "messageDate is in the future")

    def _verify(self, document: etree._Element) -> VerifiedDocument:
        try:
            return self.verifier.verify(document, consume=True)  # a big document is held twice, not three times
        except SignatureRejected as rejected:
            observe_signature(rejected.report.indication, rejected.report.sub_indication)
            raise _refusal(rejected) from None

    async def _check_revocation(self, verified: VerifiedDocument) -> VerifiedDocument:
        try:
            checked = await apply_revocation(verified, self.revocation, self.revocation_mode)
        except SignatureRejected as rejected:
            observe_signature(rejected.report.indication, rejected.report.sub_indication)
            raise _refusal(rejected) from None
        observe_signature(checked.report.indication, checked.report.sub_indication)  # the final word on it
        return checked

    @staticmethod
    def _check_size(service: Service, document: bytes) -> None:
        """The verified document (UTF-8 bytes, as stored and sent) within the service's ``max_document_bytes``."""
        limit = service.settings.max_document_bytes
        if limit is None:
            return
        size = len(document)
        if size > limit:
            raise GatewayError("CLIENT_DOCUMENT_TOO_LARGE", f"the document is {size} bytes; "
                               f"{service.service_id} accepts at most {limit}")

    @staticmethod
    def _check_document(service: Service, signed: etree._Element) -> None:
        schema = service.document_schema
        if schema is not None and not schema.validate(signed):
            error = schema.error_log.last_error
            raise GatewayError("CLIENT_DOCUMENT_INVALID", f"line {error.line}: {error.message}" if error else None)

    async def _check_package(self, service: Service, sender_id: str, signed: etree._Element) -> None:
        """The package the document names must be a complete upload of the same sender, before anything is
        recorded or reaches the back-end."""
        try:
            await find_named_package(self.packages, service, sender_id, signed)
        except LookupError as missing:
            raise GatewayError("DEPOSIT_PACKAGE_MISSING",
                               f"no complete upload with SHA-256 {missing.args[0] or '(none given)'}") from None

    @staticmethod
    def _check_identity(service: Service, verified: VerifiedDocument) -> Applicant:
        try:
            return check_applicant(service.applicant, verified.signed, verified.identity)
        except IdentityRejected as exc:
            log.info("identity refused: %s (signer %s)", exc.code, mask_id(verified.identity.iin or ""))
            raise GatewayError(exc.code, exc.detail) from None

    async def _earlier(self, request: IntakeRequest) -> str | None:
        """The id of the application that already holds this messageId, live or archived; None if it is new."""
        earlier = await self.store.holder(request.sender_id, request.message_id)
        if earlier is not None and await self.store.get(earlier) is None and await self._archived(earlier) is None:
            # A claim without its record, left by a crash of a version that claimed in a separate write: released,
            # so the messageId is never blocked (today's claim and record are one write, so none is made now).
            log.warning("released the orphaned messageId claim of %s", earlier)
            await self.store.release_message(request.sender_id, request.message_id, earlier)
            earlier = None
        if earlier is None and self.archive is not None:  # archived after the retention: its claim left with it
            with unreadable_refused():
                found = await self.archive.find(request.sender_id, request.message_id)
            earlier = found.application.id if found is not None else None
        return earlier

    async def _archived(self, app_id: str) -> Application | None:
        with unreadable_refused():
            found = await self.archive.get(app_id) if self.archive is not None else None
        return found.application if found is not None else None

    async def _replay(self, app_id: str, request: IntakeRequest, raw: bytes | None, received_digest: str) -> Outcome:
        """A repeated messageId gets the first answer, and the back-end is not called again.

        Only for the same document: its digest (as in the receipt: exc-C14N, SHA-256) must be the first one's,
        or the repeat is refused with CLIENT_DUPLICATE_MISMATCH, never answered with another applicant's result.
        A first record without a receipt digest cannot be compared, so it is refused too. A first one whose
        create steps a crash left unfinished is finished first (:meth:`ApplicationStore.finish`).
        """
        app = await self.store.get(app_id) or await self._archived(app_id)
        if app is None:  # a claim of an older version, whose record was never written
            raise GatewayError("CLIENT_DUPLICATE_IN_PROGRESS", retry_after=1)
        if app.receipt is None or receipt_request_digest(app.receipt) != received_digest:
            log.info("messageId of %s repeated with a different document", app.id)
            raise GatewayError("CLIENT_DUPLICATE_MISMATCH", "this messageId was used for a different document; "
                                                            "send a new document under a new messageId")
        if not await self.store.finish(app, also=self._log_received(request, app, raw, repair=True)):
            raise GatewayError("CLIENT_DUPLICATE_IN_PROGRESS", "the first request with this messageId is still "
                               "being recorded", retry_after=1)
        if app.status in (Status.FAILED, Status.STOPPED):
            raise GatewayError(app.error_code or "GATEWAY_INTERNAL", app.error_detail)
        if app.mode == DeliveryMode.ASYNC:  # the same acknowledgement; the result follows as for the first
            return Outcome(application=app, result=None, replayed=True)
        if not app.status.final:  # delivered now (its request) or soon (its lease): ask again then
            raise GatewayError("CLIENT_DUPLICATE_IN_PROGRESS", "the first request with this messageId is still "
                               "being delivered", retry_after=await self._due_in(app))
        return Outcome(application=app, result=(app.result or "").encode(), replayed=True)


    async def _due_in(self, app: Application) -> int:
        """Retry-After for a repeat of an open application: until its lease falls due, 1..10 seconds."""
        due = await self.delivery.outbox.due_in(app.id)
        return 1 if due is None else max(1, min(10, math.ceil(due)))


def _refusal(rejected: SignatureRejected) -> GatewayError:
    """A signature refusal as the caller sees it: code, sub-indication and the whole report."""
    report = rejected.report
    log.info("signature refused: %s", report.log_summary())
    return GatewayError(report.error_code or "SIG_FORMAT_FAILURE", "; ".join(report.errors),
                        sub_indication=report.sub_indication, report=report.to_dict())
