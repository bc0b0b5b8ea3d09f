"""The aiohttp application: everything slow (keys, trust store, schemas, WSDL) is loaded here, once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from redis.asyncio import Redis
from redis.exceptions import RedisError

import schemas
from connectors.backoffice import QueueConnector
from connectors.package import PackageConnector
from connectors.queue import JobQueue
from connectors.rest import RestConnector
from connectors.soap import SoapConnector
from gateway.access.quotas import QuotaCounter
from gateway.access.senders import SenderDirectory
from gateway.cabinet import access_api
from gateway.cabinet import api as cabinet
from gateway.cabinet.access_log import AccessLog
from gateway.cabinet.calendar import WorkingCalendar
from gateway.cabinet.context import CABINET, CabinetContext
from gateway.cabinet.events import EventHub
from gateway.cabinet.readable import ReadableDocuments
from gateway.config import ConfigError, ConnectorKind, Settings
from gateway.delivery import jobs_api as jobs_api
from gateway.delivery.callbacks import Notifier
from gateway.delivery.desks import DESKS, DeskContext
from gateway.delivery.engine import Delivery
from gateway.delivery.jobs_api import mark_stopped
from gateway.delivery.registry import ServiceRegistry
from gateway.intake import async_channel, discovery, usage_api
from gateway.intake import rest as rest_api
from gateway.intake import sync_channel as soap
from gateway.intake.context import INTAKE, IntakeContext
from gateway.intake.pipeline import Pipeline
from gateway.intake.ws_security import WsSecurityGate
from gateway.lifecycle.archive import FileArchive
from gateway.lifecycle.durability import DurabilityProbe
from gateway.lifecycle.receipts import ReceiptIssuer
from gateway.lifecycle.replicas import ReplicaAcks
from gateway.lifecycle.retention import RetentionSweeper
from gateway.lifecycle.store import ApplicationStore
from gateway.lifecycle.transitions import Lifecycle
from gateway.messagelog.journal import MESSAGELOG, MessageLog
from gateway.messagelog.records import BodyCipher, BodyKeyError
from gateway.messagelog.sealer import Sealer
from gateway.monitor import metrics
from gateway.monitor.context import MONITOR, MonitorContext
from gateway.monitor.messagelog import register_message_log
from gateway.packages.packages import PACKAGES, Packages
from gateway.shell import monitoring
from gateway.shell.redis_clients import events_client, redis_client
from gateway.shell.redis_supervisor import SupervisorBoard
from gateway.shell.revocation_cache import RedisSharedAnswers
from gateway.supervise import supervise
from gateway.uploads import api as uploads_api
from gateway.uploads.context import UPLOADS, PatchSlots, UploadContext
from gateway.web.problems import guarded
from gateway.web.reading import operator_sender
from signing.idnumbers import mask_url
from signing.policy import RevocationMode, VerificationPolicy
from signing.revocation import RevocationChecker
from signing.signer import DocumentSigner, SignerKeyError, SigningKey, load_pem_signing_key
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier
from signing.wssecurity import EnvelopeVerifier, WsSecurityPolicy
from signing.xmlsafe import XmlLimits

log = logging.getLogger("egov.app")
EMBEDDED_REDIS = web.AppKey("embedded_redis", SupervisorBoard)
"The embedded Redis's supervisor board (absent with an external Redis)."


class MaskingAccessLogger(AbstractAccessLogger):
    """Access log whose paths never show a full IIN/BIN (cabinet URLs carry one), percent-encoded or not."""

    @property
    def enabled(self) -> bool:
        """Off unless INFO is logged: then aiohttp does not call :meth:`log` at all (nothing per refused request)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = mask_url(request.raw_path)
        self.logger.info('%s "%s %s" %s %.1fms', request.remote, request.method, path, response.status,
                         time * 1000)


def load_signer(settings: Settings) -> DocumentSigner:
    """The gateway's own key, from PEM or PKCS#12, with the password from the environment."""
    signer = settings.signer
    password = os.environ.get(signer.password_env)
    secret = password.encode() if password else None
    if signer.p12 is not None:
        return DocumentSigner(SigningKey.from_pkcs12(signer.p12, secret), xades=signer.xades)
    if signer.cert is not None and signer.key is not None:
        # A GOST certificate makes it a GOST key (results and receipts then carry GOST signatures).
        return DocumentSigner(load_pem_signing_key(signer.cert, signer.key, secret), xades=signer.xades)
    raise SignerKeyError("signer: set either p12, or cert and key")


def build_verifier(settings: Settings) -> DocumentVerifier:
    if not settings.trust.anchors:
        raise ConfigError("trust.anchors: at least one trust anchor is required")
    trust = TrustStore.from_files(settings.trust.anchors, settings.trust.intermediates)
    policy = VerificationPolicy(clock_skew=timedelta(seconds=settings.trust.clock_skew_seconds),
                                revocation=settings.revocation.mode)
    return DocumentVerifier(policy, trust, gost_paths=trust)  # the trust store validates GOST paths too


@dataclass(frozen=True)
class Loaded:
    """The slow, fallible part of start-up: done before any server or child process starts."""

    signer: DocumentSigner
    "The gateway's signing key."
    verifier: DocumentVerifier
    "Trust anchors and policy."
    wsdl: bytes
    "The served WSDL."
    calendar: WorkingCalendar
    "Kazakhstan working days (public holidays and the day-swaps file), for cabinet deadlines."
    readable: ReadableDocuments
    "Each service's schemas compiled for decoding documents and results into the cabinet's JSON fields."
    body_cipher: BodyCipher | None = None
    "The message log's body key (``[messagelog] store_bodies``), read from its environment variable."


def load(settings: Settings) -> Loaded:
    """Load keys, trust anchors, schemas, the WSDL and the working-day calendar; raises on a bad setup."""
    signer = load_signer(settings)
    verifier = build_verifier(settings)
    soap.preload_schemas()
    async_channel.preload_schemas()
    ServiceRegistry.check_schemas(settings.services)
    calendar = WorkingCalendar.load(settings.calendar.swaps_file)
    messagelog = settings.messagelog
    cipher = None
    if messagelog.enabled and messagelog.store_bodies:
        try:
            cipher = BodyCipher.from_base64(os.environ.get(messagelog.body_key_env))
        except BodyKeyError as exc:
            raise ConfigError(f"messagelog.store_bodies: {exc} (${messagelog.body_key_env})") from None
    return Loaded(signer, verifier, schemas.sync_channel_wsdl(f"{settings.base_url}/shep/sync"), calendar,
                  ReadableDocuments.build(settings.services), cipher)


def create_app(settings: Settings, *, redis_url: str, loaded: Loaded | None = None,
               supervisor: SupervisorBoard | None = None) -> web.Application:
    """Build the application (calling :func:`load` unless given its result); ``supervisor`` is the embedded
    Redis's restart board, shown on ``/health/details``."""
    loaded = loaded or load(settings)
    # aiohttp refuses a request.read()/post() body *larger* than client_max_size; read_body enforces the same
    # limit while streaming, and the job API its own (it reads request.content, which this does not bound).
    app = web.Application(client_max_size=settings.limits.max_body_bytes)
    app[MONITOR] = MonitorContext.build(settings.monitor)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        clients = _Clients.open(redis_url, settings)
        running = _add_contexts(app, settings, loaded, clients, redis_url)
        stop = asyncio.Event()
        loops = {asyncio.create_task(running.delivery.run(stop)), asyncio.create_task(running.notifier.run(stop)),
                 asyncio.create_task(running.hub.run(stop)), asyncio.create_task(running.messagelog.watch(stop)),
                 asyncio.create_task(supervise("packages-sweep", _sweeper(app[PACKAGES], settings, stop), stop)),
                 asyncio.create_task(app[INTAKE].pipeline.admit().watch(stop))}  # the event loop's lateness
        if running.sealer is not None:
            loops.add(asyncio.create_task(running.sealer.run(stop)))
        if settings.retention.enabled:
            loops.add(asyncio.create_task(supervise("retention", running.retention.step(stop), stop)))
        yield
        stop.set()
        await asyncio.wait(loops, timeout=10)
        await running.hub.aclose()
        running.senders.close()
        if running.ws_security is not None:
            running.ws_security.close()
        await clients.aclose()

    if supervisor is not None:
        app[EMBEDDED_REDIS] = supervisor
    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(_end_streams)
    _add_routes(app)
    return app


@dataclass(frozen=True)
class _Clients:
    """The process's connections: Redis for commands, Redis for desks' long polls, HTTP out (back-ends, OCSP, CRLs)."""

    redis: Redis
    "Ordinary commands."
    blocking: Redis
    "Desks' long polls (blocking XREADGROUP up to 25 s), with a longer socket timeout."
    session: aiohttp.ClientSession
    "Back-ends, callbacks, OCSP responders and CRLs."

    @classmethod
    def open(cls, redis_url: str, settings: Settings) -> _Clients:
        redis = redis_client(redis_url, settings, socket_timeout=5, health_check_interval=30)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=30))
        # Desks long-poll: their own client, so ordinary commands keep failing fast when Redis is in trouble.
        blocking = redis_client(redis_url, settings, socket_timeout=jobs_api.MAX_WAIT_SECONDS + 10)
        return cls(redis, blocking, session)

    async def aclose(self) -> None:
        await self.session.close()
        await self.blocking.aclose()
        await self.redis.aclose()


@dataclass(frozen=True)
class _Running:
    """What the application's lifetime must run and close."""

    delivery: Delivery
    "Its loop delivers async applications."
    notifier: Notifier
    "Its loop pushes results and status changes to senders' callbacks."
    hub: EventHub
    "Its loop feeds the cabinet's live streams."
    senders: SenderDirectory
    "Closed at the end (its password-check threads)."
    ws_security: WsSecurityGate | None
    "Closed at the end (its signature-check threads)."
    messagelog: MessageLog
    "Its loop refreshes the cached seal status intake checks."
    sealer: Sealer | None
    "Its loop seals the message log (while it holds the lease); None when the log is off."
    retention: RetentionSweeper
    "Its loop archives applications final for longer than the retention (while it holds the lease)."


def _add_contexts(app: web.Application, settings: Settings, loaded: Loaded, clients: _Clients,
                  redis_url: str) -> _Running:
    """Build the components and give each room its context (INTAKE, CABINET, DESKS)."""
    redis, session, prefix, revocation = clients.redis, clients.session, settings.redis.key_prefix, settings.revocation
    limits = settings.limits
    xml_limits = XmlLimits(limits.max_body_bytes, limits.max_xml_depth, limits.max_xml_elements)
    senders = SenderDirectory(settings.senders, redis=redis, prefix=prefix, settings=settings.auth)
    store = ApplicationStore(redis, prefix)
    lifecycle = Lifecycle(store)
    archive = FileArchive(settings.retention.path_under(settings.state_dir), fsync=settings.retention.fsync)
    retention = RetentionSweeper(redis, store, archive, settings.retention)
    lifecycle.stagers.append(retention.index.stage)  # final applications join the finished index
    checker = None if revocation.mode is RevocationMode.OFF else RevocationChecker(
        revocation, session, on_lookup=metrics.observe_revocation,
        shared=RedisSharedAnswers(redis, prefix) if revocation.shared_cache else None)
    messagelog, sealer = _message_log(settings, loaded, clients)
    jobs = JobQueue(clients.blocking, prefix=prefix, settings=settings.queue,
                    on_dead_letter=lambda _service, fields, reason: mark_stopped(lifecycle, fields, reason))
    if not isinstance(loaded.signer.key, SigningKey) and any(s.ws_security for s in settings.services.values()):
        raise ConfigError("signer: WS-Security needs an RSA/ECDSA key; a GOST signer cannot sign ws_security services")
    registry = ServiceRegistry.build(settings.services, {
        ConnectorKind.REST: RestConnector(session), ConnectorKind.SOAP: SoapConnector(
            ws_security_key=loaded.signer.key if isinstance(loaded.signer.key, SigningKey) else None,  # RSA only
            signed_endpoints=frozenset(s.endpoint for s in settings.services.values() if s.ws_security)),
        ConnectorKind.QUEUE: QueueConnector(jobs), ConnectorKind.PACKAGE: PackageConnector(session)})
    packages = Packages.build(redis, settings)  # uploads; a package service's document names one by SHA-256
    delivery = Delivery(redis=redis, prefix=prefix, store=store, lifecycle=lifecycle, packages=packages,
                        registry=registry, signer=loaded.signer, provider_verifier=loaded.verifier,
                        xml_limits=xml_limits, settings=settings.delivery, revocation=checker,
                        revocation_mode=revocation.mode, messagelog=messagelog)
    pipeline = Pipeline(senders=senders, registry=registry, verifier=loaded.verifier, signer=loaded.signer,
                        packages=packages, store=store, lifecycle=lifecycle, limits=settings.limits, delivery=delivery,
                        revocation=checker, revocation_mode=revocation.mode,
                        quotas=QuotaCounter(redis, prefix, settings.senders),
                        durability=DurabilityProbe(redis, require_aof=settings.redis.require_aof),
                        messagelog=messagelog, archive=archive, replicas=_replica_acks(redis, settings),
                        receipts=ReceiptIssuer(loaded.signer, batched=settings.signer.receipt_batches))
    notifier = Notifier(redis, prefix, store, settings.senders, session, lifecycle=lifecycle, messagelog=messagelog)
    lifecycle.listeners.append(notifier.on_change)
    gate = ws_security_gate(settings, loaded.verifier, redis, checker)
    app[INTAKE] = IntakeContext(settings=settings, pipeline=pipeline, registry=registry, senders=senders,
                                store=store, lifecycle=lifecycle, notifier=notifier, sync_wsdl=loaded.wsdl,
                                ws_security=gate)
    hub = EventHub(events_client(redis_url, settings), store.events_channel(""), settings.cabinet)
    app[CABINET] = CabinetContext(store=store, registry=registry, senders=senders, calendar=loaded.calendar,
                                  events=hub, readable=loaded.readable,
                                  access_log=AccessLog(redis, prefix, max_len=settings.cabinet.access_records_max,
                                                       messagelog=messagelog), archive=archive)
    app[MESSAGELOG] = messagelog  # its status feeds /health/details (and the metrics and readiness checks)
    app[DESKS] = DeskContext(jobs=jobs, store=store, lifecycle=lifecycle, senders=senders, registry=registry,
                             delivery=delivery)
    app[PACKAGES] = packages
    app[UPLOADS] = UploadContext(settings=settings.uploads, senders=senders, packages=packages,
                                 slots=PatchSlots(settings.uploads.max_concurrent_patches))
    monitoring.register_gateway(app[MONITOR], settings, redis=redis, session=session, signer=loaded.signer,
                                trust=loaded.verifier.trust, outbox_key=delivery.outbox.key, jobs=jobs,
                                registry=registry)
    if settings.messagelog.enabled:  # not ready at half the allowance after which intake refuses
        config = settings.messagelog
        register_message_log(app[MONITOR], messagelog,
                             max_seal_age_seconds=config.segment_seconds + config.max_seal_failure_seconds / 2,
                             tsa_url=config.tsa_url)
    return _Running(delivery, notifier, hub, senders, gate, messagelog, sealer, retention)


def _sweeper(packages: Packages, settings: Settings, stop: asyncio.Event) -> Callable[[], Awaitable[None]]:
    """One round of the sweep of expired uploads' files, then the wait until the next."""

    async def step() -> None:
        await packages.sweep()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.uploads.sweep_interval_seconds)

    return step


def ws_security_gate(settings: Settings, verifier: DocumentVerifier, redis: Redis,
                     checker: RevocationChecker | None) -> WsSecurityGate | None:
    """WS-Security for the SOAP intakes, with the documents' verifier (trust, algorithms, skew) and revocation."""
    wss = settings.ws_security
    if not wss.endpoints:
        return None
    policy = WsSecurityPolicy(max_lifetime=timedelta(seconds=wss.max_lifetime_seconds),
                              clock_skew=timedelta(seconds=settings.trust.clock_skew_seconds), actor=wss.actor)
    return WsSecurityGate(EnvelopeVerifier(verifier, policy), wss, redis=redis, prefix=settings.redis.key_prefix,
                          revocation=checker, revocation_mode=settings.revocation.mode)


def _replica_acks(redis: Redis, settings: Settings) -> ReplicaAcks | None:
    """The wait for replicas before every acknowledgement (``[redis] min_replica_acks``), or None: no wait."""
    config = settings.redis
    if config.min_replica_acks <= 0:
        return None
    return ReplicaAcks(redis, config.key_prefix, replicas=config.min_replica_acks,
                       timeout_ms=config.replica_ack_timeout_ms)


def _message_log(settings: Settings, loaded: Loaded, clients: _Clients) -> tuple[MessageLog, Sealer | None]:
    """The message log every room appends to, and its sealer (signing with the gateway's key, trusting the TSA
    as the applicants' certificates are trusted)."""
    prefix, config = settings.redis.key_prefix, settings.messagelog
    messagelog = MessageLog(clients.redis, prefix, config, loaded.body_cipher)
    if not config.enabled:
        return messagelog, None
    return messagelog, Sealer(clients.redis, prefix, config, key=loaded.signer.key, trust=loaded.verifier.trust,
                              session=clients.session, archive_dir=config.archive(settings.state_dir))


def _add_routes(app: web.Application) -> None:
    app.router.add_get("/shep/sync", soap.handle_wsdl)
    app.router.add_post("/shep/sync", soap.handle_send_message)
    app.router.add_get("/shep/async", async_channel.handle_wsdl)
    app.router.add_post("/shep/async", async_channel.handle)
    app.router.add_post("/api/v1/requests", rest_api.handle_request)
    app.router.add_get("/api/v1/cabinet/{iin}/applications", cabinet.list_applications)
    # {message_id} may be a sessionId "{uuid}": aiohttp's default segment pattern excludes braces.
    app.router.add_get("/api/v1/cabinet/{iin}/applications/{message_id:[^/]+}", cabinet.get_application)
    app.router.add_get("/api/v1/cabinet/{iin}/applications/{message_id:[^/]+}/result", cabinet.get_result)
    app.router.add_get("/api/v1/cabinet/{iin}/applications/{message_id:[^/]+}/receipt", cabinet.get_receipt)
    app.router.add_get("/api/v1/cabinet/{iin}/events", cabinet.events)
    jobs_api.add_routes(app)
    access_api.add_routes(app)
    discovery.add_routes(app)
    usage_api.add_routes(app)
    uploads_api.add_routes(app)
    app.router.add_get("/health", health)
    app.router.add_get("/health/details", health_details)
    monitoring.add_routes(app)  # /metrics, /health/live, /health/ready


async def _end_streams(app: web.Application) -> None:
    """On shutdown, before the server waits for open requests: end the live streams, so it need not."""
    if CABINET in app:
        app[CABINET].events.shutdown()


async def health(request: web.Request) -> web.Response:
    """Public, for load balancers: ``{"status": "ok"}`` (200) or ``{"status": "unavailable"}`` (503), nothing
    more: the signer's name, processes and services are for operators (:func:`health_details`)."""
    up = await _storage_ok(request)
    return web.json_response({"status": "ok" if up else "unavailable"}, status=200 if up else 503)


@guarded
async def health_details(request: web.Request) -> web.Response:
    """Operators only (HTTP Basic as a sender with ``operator = true``): storage, signing certificate and its
    expiry, trust anchors, services, and which process answered; 503 when storage is down."""
    components = request.app[INTAKE]
    await operator_sender(request, components.senders)
    pipeline = components.pipeline
    storage_ok = await _storage_ok(request)
    certificate = pipeline.signer.certificate
    body: dict[str, object] = {
        "status": "ok" if storage_ok else "degraded",
        "storage": "ok" if storage_ok else "unreachable",
        "signer": {"subject": certificate.subject.rfc4514_string(),
                   "notAfter": certificate.not_valid_after_utc.isoformat()},
        "trustAnchors": len(pipeline.verifier.trust.anchors),
        "services": sorted(s.service_id for s in pipeline.registry),
        "process": os.getpid(),
        "messagelog": pipeline.messagelog.status.to_dict() if pipeline.messagelog else None,
    }
    if EMBEDDED_REDIS in request.app:
        body["embeddedRedis"] = request.app[EMBEDDED_REDIS].report()
    return web.json_response(body, status=200 if storage_ok else 503)


async def _storage_ok(request: web.Request) -> bool:
    try:
        return bool(await request.app[INTAKE].store.ping())
    except RedisError:
        return False
