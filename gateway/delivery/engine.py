"""Delivery: getting an accepted application to its back-end and its answer back, without losing it.

Sync services are called within the request, with a few quick retries and the back-end's circuit
breaker. Async applications go to a durable lease schedule in Redis (the outbox) before the sender
is answered; background loops in every gateway process take due applications, deliver them over the
service's connector, and on a transient failure put them back with exponential backoff and jitter.
After ``delivery_attempts`` the application is STOPPED (dead-lettered) for an operator to replay.
At-least-once: a process that dies mid-delivery leaves a lease that expires, and another process
delivers again; answers are stored once (a final application is never changed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from lxml import etree
from redis.asyncio import Redis

from connectors.base import ConnectorError
from connectors.queue import JobQueue
from connectors.soap import ProviderStatus, SoapConnector
from gateway.config import DeliverySettings
from gateway.delivery.registry import Service, ServiceRegistry
from gateway.delivery.resilience import CircuitBreaker, backoff_seconds
from gateway.delivery.schedule import LeaseSchedule
from gateway.errors import GatewayError
from gateway.lifecycle.store import Application, ApplicationStore, Status
from gateway.supervise import FailureBurst, SupervisorSettings, spawn, supervise
from signing.signer import DocumentSigner
from signing.verifier import DocumentVerifier, SignatureRejected
from signing.xmlsafe import UnsafeXmlError, XmlLimits, parse_untrusted

log = logging.getLogger("egov.delivery")
DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"
_SYNC_RETRY_CAP = 1.0  # seconds: a sync caller is waiting, so retries within the request stay short


Notify = Callable[[Application], Awaitable[None]]


class Delivery:
    def __init__(self, *, redis: Redis, prefix: str, store: ApplicationStore, registry: ServiceRegistry,
                 signer: DocumentSigner, provider_verifier: DocumentVerifier, jobs: JobQueue, soap: SoapConnector,
                 xml_limits: XmlLimits, settings: DeliverySettings | None = None) -> None:
        self.store, self.registry, self.signer = store, registry, signer
        self.provider_verifier, self.jobs, self.soap = provider_verifier, jobs, soap
        self.settings, self.xml_limits = settings or DeliverySettings(), xml_limits
        self.outbox = LeaseSchedule(redis, f"{prefix}:outbox")
        self.breakers: dict[str, CircuitBreaker] = {}
        self.listeners: list[Notify] = []
        self._wake = asyncio.Event()

    def breaker(self, service: Service) -> CircuitBreaker:
        key = service.settings.endpoint or f"queue:{service.service_id}"
        if key not in self.breakers:
            settings = service.settings
            self.breakers[key] = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds)
        return self.breakers[key]

    # ------------------------------------------------------------------------------------------ sync
    async def deliver_now(self, app: Application, service: Service, document: etree._Element) -> bytes:
        """Call a sync back-end within the request; returns the signed result or raises GatewayError."""
        payload = etree.tostring(document, xml_declaration=True, encoding="UTF-8")
        breaker = self.breaker(service)
        attempt = 0
        while True:
            attempt += 1
            app.attempts = attempt
            if not breaker.allow():
                await self._fail(app, "PROVIDER_UNAVAILABLE", "the back-end's circuit breaker is open")
                raise GatewayError("PROVIDER_UNAVAILABLE", "circuit breaker open: the back-end failed repeatedly")
            try:
                answer = await service.connector.call(service.settings.endpoint, payload,
                                                      timeout=service.settings.timeout_seconds, request_id=app.id)
            except ConnectorError as exc:
                if exc.transient:
                    breaker.record_failure()
                if exc.transient and attempt < service.settings.retry_attempts and breaker.allow():
                    await asyncio.sleep(backoff_seconds(attempt, base=service.settings.retry_base_seconds,
                                                        cap=_SYNC_RETRY_CAP))
                    continue
                await self._fail(app, exc.code, exc.detail)
                raise GatewayError(exc.code, exc.detail) from None
            breaker.record_success()
            return await self.complete(app, service, answer, refused=False)

    # ----------------------------------------------------------------------------------------- async
    def wake(self) -> None:
        """New work was scheduled by this process: look at once instead of at the next idle poll."""
        self._wake.set()

    async def enqueue(self, app: Application) -> None:
        """Durably schedule an accepted async application (before the sender is answered)."""
        await self.outbox.schedule(app.id)
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
        """One delivery step for one application (submit, poll, or hand to the queue)."""
        app = await self.store.get(app_id)
        if app is None or app.status.final:
            await self.outbox.done(app_id)
            return
        service = self.registry.get(app.service_id)
        if service is None:
            await self._finish_failed(app, "CLIENT_UNKNOWN_SERVICE", "the service was removed from the registry")
            return
        breaker = self.breaker(service)
        if not breaker.allow():
            await self.outbox.schedule(app.id, max(breaker.retry_after(), 0.5))
            return
        try:
            await self._deliver(app, service)
            breaker.record_success()
        except ConnectorError as exc:
            if not exc.transient:
                await self._finish_failed(app, exc.code, exc.detail)
                return
            breaker.record_failure()
            await self._retry_later(app, service, exc)
        except GatewayError as exc:
            await self._finish_failed(app, exc.code, exc.detail)

    async def _deliver(self, app: Application, service: Service) -> None:
        document = parse_untrusted(app.document.encode(), self.xml_limits)
        kind = service.settings.connector
        if kind == "rest":
            payload = etree.tostring(document, xml_declaration=True, encoding="UTF-8")
            app.attempts += 1
            answer = await service.connector.call(service.settings.endpoint, payload,
                                                  timeout=service.settings.timeout_seconds, request_id=app.id)
            await self.complete(app, service, answer, refused=False)
            await self.outbox.done(app.id)
        elif kind == "queue":
            app.attempts += 1
            entry = await self.jobs.enqueue(service.service_id, {
                "session_id": app.id, "message_id": app.message_id, "service_id": app.service_id,
                "document": app.document, "applicant_iin": app.applicant_iin,
                "applicant_bin": app.applicant_bin or "", "applicant_name": app.applicant_name,
                "organisation": app.organisation or "", "enqueued_at": app.updated_at,
            })
            app.provider_ref = entry
            app.status = Status.ROUTED
            await self.store.save(app, "queued for the back-office desk")
            await self.outbox.done(app.id)
        else:
            await self._soap_step(app, service, document)

    async def _soap_step(self, app: Application, service: Service, document: etree._Element) -> None:
        settings = service.settings
        if app.provider_ref is None:
            app.attempts += 1
            app.provider_ref = await self.soap.submit(settings.endpoint, document, application_id=app.id,
                                                      timeout=settings.timeout_seconds)
            app.status = Status.IN_PROGRESS
            await self.store.save(app, f"registered by the provider as {app.provider_ref}")
            await self._notify(app)
        status = await self.soap.status(settings.endpoint, app.provider_ref, timeout=settings.timeout_seconds)
        await self._record_steps(app, status)
        if status.state in ("issued", "refused") and status.result is not None:
            await self.complete(app, service, status.result, refused=status.state == "refused")
            await self.outbox.done(app.id)
        else:
            await self.outbox.schedule(app.id, settings.poll_seconds)

    async def _record_steps(self, app: Application, status: ProviderStatus) -> None:
        for step in status.steps:
            if step.completed_at and step.code not in app.steps_seen:
                app.steps_seen.append(step.code)
                await self.store.save(app, step.name, step=step.code, at=step.completed_at)

    async def _retry_later(self, app: Application, service: Service, exc: ConnectorError) -> None:
        if app.attempts >= self.settings.delivery_attempts:
            app.status, app.error_code, app.error_detail = Status.STOPPED, exc.code, exc.detail
            await self.store.save(app, f"delivery stopped after {app.attempts} attempts; an operator may replay it")
            await self.outbox.done(app.id)
            await self._notify(app)
            return
        delay = backoff_seconds(max(app.attempts, 1), base=service.settings.retry_base_seconds,
                                cap=service.settings.retry_max_seconds)
        app.status = Status.ROUTED
        await self.store.save(app, f"back-end unavailable ({exc.code}); attempt {app.attempts}, next in {delay:.1f}s")
        await self.outbox.schedule(app.id, delay)

    async def replay(self, app: Application) -> None:
        """Operator: deliver a stopped application again, from the start."""
        app.status, app.attempts, app.error_code, app.error_detail = Status.ROUTED, 0, None, None
        await self.store.save(app, "replayed by an operator", reopen=True)
        await self.enqueue(app)

    # ------------------------------------------------------------------------------------ completion
    async def complete(self, app: Application, service: Service, answer: bytes, *, refused: bool) -> bytes:
        """Check the back-end's answer, sign it (unless the provider signed it), store it, notify."""
        try:
            root = parse_untrusted(answer, self.xml_limits)
        except UnsafeXmlError as exc:
            raise GatewayError("PROVIDER_BAD_RESPONSE", exc.detail) from None
        provider_signed = root.find(DS_SIGNATURE) is not None
        if provider_signed:
            try:
                verified = self.provider_verifier.verify(root)
            except SignatureRejected as rejected:
                await self._fail(app, "PROVIDER_SIGNATURE_INVALID", "; ".join(rejected.report.errors))
                raise GatewayError("PROVIDER_SIGNATURE_INVALID", "; ".join(rejected.report.errors)) from None
            expected = service.settings.provider_bin
            if expected and verified.identity.bin != expected:
                signer = verified.identity.organisation or verified.identity.common_name
                detail = f"signed by {signer}, not by the provider"
                await self._fail(app, "PROVIDER_SIGNATURE_INVALID", detail)
                raise GatewayError("PROVIDER_SIGNATURE_INVALID", detail)
            content = verified.signed
        elif service.settings.provider_signature == "required":
            await self._fail(app, "PROVIDER_SIGNATURE_INVALID", "the provider's answer is not signed")
            raise GatewayError("PROVIDER_SIGNATURE_INVALID", "the provider's answer is not signed")
        else:
            content = root
        if service.result_schema is not None and not service.result_schema.validate(content):
            error = service.result_schema.error_log.last_error
            detail = error.message if error else "schema"
            await self._fail(app, "PROVIDER_BAD_RESPONSE", detail)
            raise GatewayError("PROVIDER_BAD_RESPONSE", detail)
        signed = answer if provider_signed else self.signer.sign_bytes(root)
        app.status = Status.REFUSED if refused else Status.COMPLETED
        app.result = signed.decode()
        note = ("reasoned refusal signed by the provider" if refused else
                "result signed by the provider, signature checked" if provider_signed else
                "result signed by the gateway and placed in the cabinet")
        await self.store.save(app, note)
        await self._notify(app)
        return signed

    async def _fail(self, app: Application, code: str, detail: str | None) -> None:
        app.status, app.error_code, app.error_detail = Status.FAILED, code, detail
        await self.store.save(app, "the back-end did not complete the application")
        log.warning("application %s failed: %s", app.id, code)
        await self._notify(app)

    async def _finish_failed(self, app: Application, code: str, detail: str | None) -> None:
        if not app.status.final:
            await self._fail(app, code, detail)
        await self.outbox.done(app.id)

    async def _notify(self, app: Application) -> None:
        for listener in self.listeners:
            try:
                await listener(app)
            except Exception:  # a listener (callbacks) must never break delivery
                log.exception("status listener failed for %s", app.id)
