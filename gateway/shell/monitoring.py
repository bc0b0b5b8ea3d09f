"""Monitoring wired into the application: the readiness checks and gauges of the gateway itself, and the routes
``/metrics``, ``/health/live`` and ``/health/ready`` (docs/monitoring.md).

``/metrics`` and the checks' details are for operators (HTTP Basic as a sender with ``operator = true``), unless
they are asked on the separate ``[monitor] listen`` address, which needs no credentials (bind it privately).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis
from redis.exceptions import RedisError

from connectors.queue import JobQueue
from gateway.config import ConnectorKind, Settings
from gateway.delivery.registry import ServiceRegistry
from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.monitor import metrics
from gateway.monitor.certificates import CertificateWatch, Watched
from gateway.monitor.context import MONITOR, MonitorContext
from gateway.monitor.health import CheckResult, ReadinessCheck, WarnOnce
from gateway.monitor.sources import RevocationProbe
from gateway.web.problems import guarded
from gateway.web.reading import operator_sender
from signing.revocation_fields import crl_urls, extension, ocsp_url
from signing.signer import DocumentSigner
from signing.trust import TrustStore

log = logging.getLogger("egov.monitor")
OPEN = web.AppKey("monitor_open", bool)
"True on the separate monitor listener: no credentials are asked there."
GATEWAY = web.AppKey("monitor_gateway", web.Application)
"On the monitor listener's application: the gateway application it reports on."


def register_gateway(monitor: MonitorContext, settings: Settings, *, redis: Redis, session: aiohttp.ClientSession,
                     signer: DocumentSigner, trust: TrustStore, outbox_key: str, jobs: JobQueue,
                     registry: ServiceRegistry) -> None:
    """The gateway's own readiness checks and scrape-time gauges."""
    warn = WarnOnce()
    certificates = [Watched("anchor", c) for c in trust.anchors] + [
        Watched("intermediate", c) for c in trust.intermediates] + [Watched("signer", signer.certificate)]
    watch = CertificateWatch(certificates, min_days=settings.monitor.anchor_min_days,
                             warning_days=settings.monitor.expiry_warning_days, warn=warn)
    probe = revocation_probe(settings, session, signer, trust, warn)
    readiness = monitor.readiness
    readiness.register("redis", redis_writable(redis, f"{settings.redis.key_prefix}:health:{os.getpid()}"))
    readiness.register("keys", _signer_check(signer, watch))
    readiness.register("trust_anchors", _certificates_check(watch))
    readiness.register("revocation", probe.check)

    async def expiry() -> Mapping[tuple[str, ...], float]:
        seconds = watch.seconds_left()
        now = time.time()
        for state in probe.last_states():
            if state.next_update is not None:
                seconds[("crl", state.url)] = state.next_update.timestamp() - now
        return seconds

    async def outbox_due() -> float:
        return float(await redis.zcount(outbox_key, "-inf", time.time()))

    queued = sorted(s.service_id for s in registry if s.settings.connector is ConnectorKind.QUEUE)

    async def queue_pending() -> Mapping[tuple[str, ...], float]:
        return {(service,): float(await jobs.backlog(service)) for service in queued}

    async def dead_letters() -> Mapping[tuple[str, ...], float]:
        return {(service,): float((await jobs.stats(service))["dead"]) for service in queued}

    gauges = monitor.gauges
    gauges.register("egov_certificate_expiry_seconds", "Seconds until a certificate's notAfter or a CRL's "
                    "nextUpdate.", expiry, labels=("kind", "subject"))
    gauges.register("egov_outbox_due", "Applications due for delivery now (leases expired or never taken).",
                    outbox_due)
    gauges.register("egov_queue_pending", "Back-office jobs not yet acknowledged (waiting or claimed).",
                    queue_pending, labels=("service",))
    gauges.register("egov_dead_letters", "Back-office jobs in the dead-letter stream.", dead_letters,
                    labels=("service",))


def revocation_probe(settings: Settings, session: aiohttp.ClientSession, signer: DocumentSigner, trust: TrustStore,
                     warn: WarnOnce) -> RevocationProbe:
    """The probe of the configured sources, or (none configured) of those the CA certificates name."""
    revocation, cas = settings.revocation, [*trust.intermediates, signer.certificate]
    ocsp_urls = [revocation.ocsp_url] if revocation.ocsp_url else [u for c in cas if (u := ocsp_url(c))]
    crls = list(revocation.crl_urls) or [
        u for c in cas for u in crl_urls(extension(c.extensions, x509.CRLDistributionPoints))]
    return RevocationProbe(session, mode=revocation.mode, ocsp_urls=ocsp_urls, crl_urls=crls,
                           subject=_probe_subject(signer, trust),
                           interval_seconds=settings.monitor.probe_interval_seconds,
                           timeout_seconds=settings.monitor.probe_timeout_seconds, warn=warn)


def _probe_subject(signer: DocumentSigner, trust: TrustStore) -> tuple[x509.Certificate, x509.Certificate] | None:
    """A certificate and its issuer to ask the responders about: an intermediate CA, or the gateway's own."""
    cas = [*trust.anchors, *trust.intermediates]
    for certificate in [*trust.intermediates, signer.certificate]:
        issuer = next((ca for ca in cas if ca.subject == certificate.issuer and ca is not certificate), None)
        if issuer is not None:
            return certificate, issuer
    return None


def redis_writable(redis: Redis, key: str) -> ReadinessCheck:
    async def check() -> CheckResult:
        try:
            await redis.set(key, str(time.time()), ex=60)
        except RedisError as exc:
            return CheckResult(False, f"a write was refused ({type(exc).__name__})")
        return CheckResult(True, "a write with expiry succeeded")

    return check


def _signer_check(signer: DocumentSigner, watch: CertificateWatch) -> ReadinessCheck:
    async def check() -> CheckResult:  # the key was loaded and matched to its certificate at start-up
        result = watch.check("signer")
        return CheckResult(result.ok, f"signing key loaded; {result.detail}", result.warnings)

    return check


def _certificates_check(watch: CertificateWatch) -> ReadinessCheck:
    async def check() -> CheckResult:
        anchors = watch.check("anchor")
        intermediates = watch.check("intermediate")  # never fails readiness: only its warnings count
        return CheckResult(anchors.ok, anchors.detail, anchors.warnings + intermediates.warnings)

    return check


# ------------------------------------------------------------------------------------------------- routes
def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)


def monitor_app(gateway: web.Application) -> web.Application:
    """The separate listener's application: the same endpoints, for whoever can reach its address."""
    app = web.Application()
    app[OPEN] = True
    app[GATEWAY] = gateway
    add_routes(app)
    return app


async def start_monitor_site(gateway: web.Application, settings: Settings, *,
                             reuse_port: bool = False) -> web.AppRunner | None:
    """Serve the monitoring endpoints on ``[monitor] listen`` too, if set (after the gateway's site started)."""
    if settings.monitor.listen is None:
        return None
    host, _, port = settings.monitor.listen.rpartition(":")
    runner = web.AppRunner(monitor_app(gateway), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]"), int(port), reuse_address=True, reuse_port=reuse_port).start()
    log.info("metrics and health checks on http://%s/metrics", settings.monitor.listen)
    return runner


def _gateway(request: web.Request) -> web.Application:
    return request.app.get(GATEWAY, request.app)


async def _is_operator(request: web.Request, *, required: bool) -> bool:
    """On the open listener always; else an operator's credentials (required, or optional when absent)."""
    if request.app.get(OPEN, False):
        return True
    if not required and "Authorization" not in request.headers:
        return False
    await operator_sender(request, _gateway(request)[INTAKE].senders)  # raises for anyone else
    return True


@guarded
async def metrics_endpoint(request: web.Request) -> web.Response:
    """The Prometheus text exposition: operators only (or the open monitor listener)."""
    await _is_operator(request, required=True)
    families = await _gateway(request)[MONITOR].gauges.collect()
    return web.Response(body=metrics.exposition(families), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def live(request: web.Request) -> web.Response:
    """The process answers: nothing else is looked at (public, for liveness probes)."""
    return web.json_response({"status": "ok"})


@guarded
async def ready(request: web.Request) -> web.Response:
    """200 when every readiness check passes, else 503 naming the failing checks; each check's detail and
    warnings only to operators (anyone may see which checks failed, not why)."""
    try:
        operator = await _is_operator(request, required=False)
    except GatewayError as error:  # sign-ins need storage: with it down, show what anyone may see
        if error.code != "GATEWAY_STORAGE_UNAVAILABLE":
            raise
        operator = False
    results = await _gateway(request)[MONITOR].readiness.run()
    failing = sorted(name for name, result in results.items() if not result.ok)
    body: dict[str, Any] = {"status": "unavailable" if failing else "ok", "failing": failing}
    if operator:
        body["checks"] = {name: {"ok": r.ok, "detail": r.detail, "warnings": list(r.warnings)}
                          for name, r in results.items()}
        body["process"] = os.getpid()
    return web.json_response(body, status=503 if failing else 200)
