"""Delivery: getting an accepted application to its back-end and its answer back, without losing it.

Every application, sync or async, is recorded with a lease in one durable schedule in Redis (the outbox,
``P:outbox``) in the same transaction as the record itself (:meth:`Delivery.lease_for`):

- async: due at once. Background loops in every gateway process take due applications (:meth:`Delivery.run`),
  do one step over the service's connector (:meth:`Delivery.process`: submit, or poll a provider that took it),
  and on a transient failure put them back with exponential backoff and jitter. After ``delivery_attempts``
  the application is STOPPED (dead-lettered) for an operator to replay (:meth:`Delivery.replay`).
- sync: delivered within the request (:meth:`Delivery.deliver_now`, a few quick retries, the breaker); the
  lease is released once it is final. It falls due only after ``lease_seconds``: if the process died mid-call,
  a delivery loop takes it then and delivers it once more like an async one (the answer goes to the cabinet;
  a repeated messageId gets it). A transient failure is not final either: the caller gets a retryable code
  with Retry-After and the application is delivered in the background, as after a crash.

At-least-once delivery, exactly-once effect: a process that dies mid-delivery leaves a lease that expires, and
another process delivers again under the same idempotency key (:attr:`~connectors.base.Submission.idempotency_key`,
the application id), so the back-end answers the repeat with its first answer; answers are stored once (a final
application is never changed). Status and history are written only
through :class:`~gateway.lifecycle.transitions.Lifecycle`; which transport is used is the registry's business
(each service resolves to one :class:`~connectors.base.Connector`), never decided here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable
from typing import NoReturn

from redis.asyncio import Redis

from connectors.base import Answer, ConnectorError, Submission
from gateway.config import DeliverySettings
from gateway.delivery.answers import AnswerCheck
from gateway.delivery.packages import PackageFinder, find_named_package
from gateway.delivery.registry import Service, ServiceRegistry
from gateway.delivery.resilience import BreakerState, CircuitBreaker, backoff_seconds
from gateway.delivery.schedule import LeaseSchedule
from gateway.errors import GatewayError
from gateway.lifecycle.application import Application
from gateway.lifecycle.store import ApplicationStore
from gateway.lifecycle.transitions import Lease, Lifecycle
from gateway.messagelog.journal import MessageLog
from gateway.messagelog.records import Entry, Kind
from gateway.monitor.metrics import BREAKER_OPEN, observe_backend
from gateway.supervise import FailureBurst, SupervisorSettings, spawn, supervise
from signing.policy import RevocationMode
from signing.revocation import RevocationChecker
from signing.signer import DocumentSigner
from signing.verifier import DocumentVerifier
from signing.xmlsafe import XmlLimits, parse_untrusted

log = logging.getLogger("egov.delivery")
_SYNC_RETRY_CAP = 1.0  # seconds: a sync caller is waiting, so retries within the request stay short
CHECK_LATER = "PROVIDER_SIGNATURE_UNCHECKED"
"An answer that cannot be checked now: the application is not failed, the answer is checked again later."


class Delivery:
    """Delivery of applications to their back-ends; one per process, sharing the outbox with every other.

    Contract: an application handed over (recorded with :meth:`lease_for`) reaches a final status or stays in
    the outbox; answers are checked (:class:`~gateway.delivery.answers.AnswerCheck`) before they are stored.
    Security: back-ends are trusted only as far as their answers pass those checks.
    """

    def __init__(self, *, redis: Redis, prefix: str, store: ApplicationStore, lifecycle: Lifecycle,
                 registry: ServiceRegistry, signer: DocumentSigner, provider_verifier: DocumentVerifier,
                 xml_limits: XmlLimits, settings: DeliverySettings | None = None,
                 revocation: RevocationChecker | None = None,
                 revocation_mode: RevocationMode = RevocationMode.OFF, messagelog: MessageLog | None = None,
                 packages: PackageFinder | None = None) -> None:
        """``revocation``/``revocation_mode``: how providers' certificates are checked (as applicants');
        ``messagelog``: where providers' answers and the results filed are logged; ``packages``: the uploads'
        storage, whose packages the package connector streams after the document."""
        self.packages = packages
        self.store, self.lifecycle, self.registry = store, lifecycle, registry
        self.answers = AnswerCheck(signer, provider_verifier, xml_limits, revocation=revocation,
                                   revocation_mode=revocation_mode)
        self.settings = settings or DeliverySettings()
        self.messagelog = messagelog
        self.outbox = LeaseSchedule(redis, f"{prefix}:outbox")
        self.breakers: dict[str, CircuitBreaker] = {}
        self._wake = asyncio.Event()

    def breaker(self, service: Service) -> CircuitBreaker:
        key = service.settings.endpoint or f"queue:{service.service_id}"
        if key not in self.breakers:
            settings = service.settings
            self.breakers[key] = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds)
        return self.breakers[key]

    def lease_for(self, app: Application) -> Lease:
        """The outbox lease a new application is recorded with: async ones are due now; sync ones only after
        ``lease_seconds``, by when the request has stored the answer unless its process died."""
        delay = 0.0 if app.mode == "async" else self.settings.lease_seconds
        return Lease(self.outbox.key, time.time() + delay)

    @staticmethod
    def _submission(app: Application, service: Service) -> Submission:
        return Submission(
            endpoint=service.settings.endpoint, service_id=service.service_id, application_id=app.id,
            document=_document_of(app), timeout=service.settings.timeout_seconds,
            metadata={"message_id": app.message_id, "applicant_iin": app.applicant_iin,
                      "applicant_bin": app.applicant_bin or "", "applicant_name": app.applicant_name,
                      "organisation": app.organisation or ""},
        )

    async def _with_package(self, app: Application, service: Service) -> Submission:
        """The submission, with the package its document names for a package service (looked up again at each
        attempt: an upload that expired since intake fails the application, it is never sent without one)."""
        submission = self._submission(app, service)
        if service.settings.package_element is None:
            return submission
        try:
            document = parse_untrusted(submission.document, self.answers.xml_limits)
            package = await find_named_package(self.packages, service, app.sender_id, document)
        except LookupError:
            raise ConnectorError("DEPOSIT_PACKAGE_MISSING", "the uploaded package is no longer stored",
                                 transient=False) from None
        return dataclasses.replace(submission, package=package)

    async def _release_package(self, app: Application, service: Service) -> None:
        """The operator answered: the stored package is deleted (kept until then, so a redelivery can send it)."""
        if service.settings.package_element is None:
            return
        try:
            document = parse_untrusted(_document_of(app), self.answers.xml_limits)
            package = await find_named_package(self.packages, service, app.sender_id, document)
        except LookupError:
            return
        if package is not None:
            await package.release()

    # ------------------------------------------------------------------------------------------ sync
    async def deliver_now(self, app: Application, service: Service) -> bytes:
        """Call a sync back-end within the request; returns the signed result or raises GatewayError.

        A final answer (the result, a refusal, a bad answer, a non-transient error) is stored and the lease
        released. A transient failure (the back-end down, timing out, its breaker open, or the provider's
        signature not checkable now) is never stored as final: the application stays open in the outbox, due
        when the breaker or the backoff allows, a delivery loop delivers it then, and the caller gets the
        retryable code with ``retry_after`` (a repeated messageId gets the stored outcome once there is one).
        """
        breaker = self.breaker(service)
        attempt = 0
        while True:
            attempt += 1
            app.attempts = attempt
            if not breaker.allow():
                await self._later(app, "PROVIDER_UNAVAILABLE", "circuit breaker open: the back-end failed repeatedly",
                                  max(breaker.retry_after(), 1.0))
            try:
                answer = await _metered(service, service.connector.submit(self._submission(app, service)))
            except ConnectorError as exc:
                if not exc.transient:
                    breaker.record_success()  # it answered: reachable
                    _show_breaker(service, breaker)
                    await self._fail_now(app, exc.code, exc.detail)
                    raise GatewayError(exc.code, exc.detail) from None
                breaker.record_failure()
                _show_breaker(service, breaker)
                wait = backoff_seconds(attempt, base=service.settings.retry_base_seconds, cap=_SYNC_RETRY_CAP)
                if attempt < service.settings.retry_attempts and breaker.state is BreakerState.CLOSED:
                    await asyncio.sleep(wait)
                    continue
                later = breaker.retry_after() if breaker.state is not BreakerState.CLOSED else backoff_seconds(
                    attempt, base=service.settings.retry_base_seconds, cap=service.settings.retry_max_seconds)
                await self._later(app, exc.code, exc.detail, max(later, 1.0))
            breaker.record_success()
            _show_breaker(service, breaker)
            if answer.document is None:  # the configuration keeps long-running connectors async
                await self._fail_now(app, "PROVIDER_BAD_RESPONSE", "a sync back-end gave no answer")
                raise GatewayError("PROVIDER_BAD_RESPONSE", "a sync back-end gave no answer")
            try:
                return await self.complete(app, service, answer.document, refused=answer.refused)
            except GatewayError as exc:
                if exc.code == CHECK_LATER:
                    await self._later(app, exc.code, exc.detail or "", max(service.settings.retry_base_seconds, 1.0))
                raise

    async def _later(self, app: Application, code: str, detail: str, delay: float) -> NoReturn:
        """A sync delivery that could not finish now: left open, due again in ``delay`` seconds; raises the
        retryable refusal with that Retry-After."""
        await self.lifecycle.retry(app, f"back-end unavailable ({code}); attempt {app.attempts} within the "
                                        f"request, next in the background in {delay:.1f}s")
        await self.outbox.schedule(app.id, delay)
        raise GatewayError(code, detail, retry_after=math.ceil(delay))

    async def _fail_now(self, app: Application, code: str, detail: str | None) -> None:
        await self.lifecycle.fail(app, code, detail)
        await self.outbox.done(app.id)

    # ----------------------------------------------------------------------------------------- async
    def wake(self) -> None:
        """New work was scheduled by this process: look at once instead of at the next idle poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, *, supervision: SupervisorSettings | None = None) -> None:
        """Deliver due applications until ``stop`` is set. Run one per process.

        At most ``concurrency`` applications are in flight; an idle loop looks again after
        ``idle_poll_seconds`` or at once on :meth:`wake`. The loop runs under :func:`supervise`: an
        unavailable outbox backs off and the loop goes on; a failed delivery step is logged once per burst
        and its lease brings the application back.
        """
        running: set[asyncio.Task[None]] = set()
        items = FailureBurst("delivery of an application", supervision)

        async def step() -> None:
            free = self.settings.concurrency - len(running)
            taken = await self.outbox.lease(lease_seconds=self.settings.lease_seconds, count=free) if free > 0 else []
            for app_id in taken:
                spawn(running, self.process(app_id), items, app_id)
            if not taken:
                self._wake.clear()
                stop_wait = asyncio.create_task(stop.wait())
                wake_wait = asyncio.create_task(self._wake.wait())
                await asyncio.wait({stop_wait, wake_wait}, timeout=self.settings.idle_poll_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                wake_wait.cancel()

        await supervise("delivery loop", step, stop, settings=supervision)
        if running:
            await asyncio.wait(running, timeout=5)

    async def process(self, app_id: str) -> None:
        """One delivery step for one application whose lease fell due: submit, or poll a provider that holds it.

        This is also the recovery of a sync application whose request died with its process: it is delivered
        here like an async one. A final or vanished application just leaves the outbox.
        """
        app = await self.store.get(app_id)
        if app is None or app.status.final:
            await self.outbox.done(app_id)
            return
        service = self.registry.get(app.service_id)
        if service is None:
            await self._finish_failed(app, "CLIENT_UNKNOWN_SERVICE", "the service was removed from the registry")
            return
        breaker = self.breaker(service)
        if not breaker.allow():  # the back-end is not called; the application waits for the trial call
            await self.outbox.schedule(app.id, max(breaker.retry_after(), 0.5))
            return
        try:
            await self._step(app, service)
            breaker.record_success()
            _show_breaker(service, breaker)
        except ConnectorError as exc:
            if not exc.transient:
                breaker.record_success()  # it answered: reachable
                _show_breaker(service, breaker)
                await self._finish_failed(app, exc.code, exc.detail)
                return
            breaker.record_failure()
            _show_breaker(service, breaker)
            await self._retry_later(app, service, exc.code, exc.detail)
        except GatewayError as exc:
            breaker.record_success()  # the back-end answered; the answer is what failed
            _show_breaker(service, breaker)
            if exc.code == CHECK_LATER:  # the back-end answered; our revocation check could not finish
                await self._retry_later(app, service, exc.code, exc.detail or "")
                return
            await self._finish_failed(app, exc.code, exc.detail)

    async def _step(self, app: Application, service: Service) -> None:
        connector, settings = service.connector, service.settings
        answer = Answer(reference=app.provider_ref, polled=app.polled)
        if app.provider_ref is None or not app.polled:
            app.attempts += 1
            answer = await _metered(service, connector.submit(await self._with_package(app, service)))
            if answer.document is None and answer.polled:
                await self.lifecycle.take(app, answer.note, reference=answer.reference, polled=True)
            elif answer.document is None:
                await self.lifecycle.route(app, answer.note, reference=answer.reference)
        if answer.document is None and answer.polled and app.provider_ref is not None:
            answer = await _metered(service, connector.poll(settings.endpoint, app.provider_ref,
                                                            timeout=settings.timeout_seconds))
        for step in answer.steps:
            if step.completed_at and step.code not in app.steps_seen:
                await self.lifecycle.progress(app, step.name, step=step.code, at=step.completed_at)
        if answer.document is not None:
            await self.complete(app, service, answer.document, refused=answer.refused)
            await self._release_package(app, service)
        elif answer.polled:
            await self.outbox.schedule(app.id, settings.poll_seconds)
        else:  # the back-end pushes its answer (desks post it through the job API): nothing to wait for here
            await self.outbox.done(app.id)

    async def _retry_later(self, app: Application, service: Service, code: str, detail: str) -> None:
        if app.attempts >= self.settings.delivery_attempts:
            await self.lifecycle.stop(app, code, detail,
                                      f"delivery stopped after {app.attempts} attempts; an operator may replay it")
            await self.outbox.done(app.id)
            return
        delay = backoff_seconds(max(app.attempts, 1), base=service.settings.retry_base_seconds,
                                cap=service.settings.retry_max_seconds)
        await self.lifecycle.retry(app, f"back-end unavailable ({code}); attempt {app.attempts}, "
                                        f"next in {delay:.1f}s")
        await self.outbox.schedule(app.id, delay)

    async def replay(self, app: Application) -> None:
        """Operator: deliver a stopped application again (attempts start over; a provider that holds it under
        its reference is polled again rather than sent a second copy). Raises IllegalTransition unless stopped."""
        await self.lifecycle.replay(app, "replayed by an operator")
        await self.outbox.schedule(app.id)
        self._wake.set()

    # ------------------------------------------------------------------------------------ completion
    async def complete(self, app: Application, service: Service, answer: bytes, *, refused: bool) -> bytes:
        """Check the back-end's answer, store it as the result (or the reasoned refusal), release the lease.

        Returns the signed result. A bad answer fails the application with its code (PROVIDER_BAD_RESPONSE,
        PROVIDER_SIGNATURE_INVALID, PROVIDER_RESULT_MISMATCH), releases the lease and raises GatewayError. One
        that cannot be checked now (:data:`CHECK_LATER`) raises without failing it or releasing the lease.
        """
        try:
            checked = await self.answers.check(service, answer, app)
        except GatewayError as exc:
            if exc.code != CHECK_LATER:
                await self._fail_now(app, exc.code, exc.detail)
            raise
        note = ("reasoned refusal signed by the provider" if refused else
                "result signed by the provider, signature checked" if checked.provider_signed else
                "result signed by the gateway and placed in the cabinet")
        finish = self.lifecycle.refuse if refused else self.lifecycle.complete
        if self.messagelog is not None:  # before it is filed: nothing reaches the cabinet unlogged
            await self.messagelog.append(
                Entry(Kind.PROVIDER_ANSWER, app.sender_id, app.service_id, app.message_id, app.id,
                      {"answer": answer}, note="refusal" if refused else ""),
                Entry(Kind.RESULT, app.sender_id, app.service_id, app.message_id, app.id, {"result": checked.signed},
                      note=note))
        # The lease goes in the round trip after the save (with the finished index); a refused save skips it.
        written = await finish(app, checked.signed.decode(), note, also=self.outbox.done_on(app.id))
        if not written:  # another process finished it first: its stored outcome stands, not this answer
            await self.outbox.done(app.id)
            stored = await self.store.get(app.id)
            if stored is None or not stored.result:
                raise GatewayError(stored.error_code if stored and stored.error_code else "CLIENT_JOB_FINISHED")
            return stored.result.encode()
        return checked.signed

    async def _finish_failed(self, app: Application, code: str, detail: str | None) -> None:
        if not app.status.final:
            await self.lifecycle.fail(app, code, detail)
        await self.outbox.done(app.id)


def _document_of(app: Application) -> bytes:
    """The signed document to send (a copy read without its parts has none: a bug, never an empty submission)."""
    if app.document is None:
        raise ConnectorError("GATEWAY_INTERNAL", f"application {app.id} was read without its document",
                             transient=True)
    return app.document


async def _metered(service: Service, call: Awaitable[Answer]) -> Answer:
    """One back-end call, counted by outcome ("ok" or the connector's error code) and timed."""
    started, outcome = time.perf_counter(), "ok"
    try:
        return await call
    except ConnectorError as exc:
        outcome = exc.code
        raise
    except BaseException:
        outcome = "error"
        raise
    finally:
        observe_backend(service.service_id, outcome, started)


def _show_breaker(service: Service, breaker: CircuitBreaker) -> None:
    BREAKER_OPEN.labels(service.service_id).set(0 if breaker.state is BreakerState.CLOSED else 1)
