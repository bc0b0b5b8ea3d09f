"""Running servers: Redis (embedded or external), the gateway, and the demo's whole little world."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from gateway.app import MaskingAccessLogger, create_app, load
from gateway.config import (
    LimitSettings,
    ListenSettings,
    SenderSettings,
    ServiceSettings,
    Settings,
    SignerSettings,
    TrustSettings,
)
from gateway.redis_embedded import EmbeddedRedis
from gateway.senders import hash_password
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE
from signing.policy import RevocationMode
from signing.revocation import RevocationSettings

log = logging.getLogger("egov.runtime")

DEMO_SENDER = "portal"
DEMO_PASSWORD = "portal-demo-password"


@contextlib.contextmanager
def redis_for(settings: Settings):  # type: ignore[no-untyped-def]
    """Yield a Redis URL: REDIS_URL or redis.url if set, else an embedded server under state_dir."""
    url = os.environ.get("REDIS_URL") or settings.redis.url
    if url:
        yield url
        return
    with EmbeddedRedis(settings.state_dir / "redis") as server:
        log.info("embedded redis-server on %s (data in %s)", server.url, settings.state_dir / "redis")
        yield server.url


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log_class=MaskingAccessLogger)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


@contextlib.asynccontextmanager
async def site_running(app: web.Application, host: str, port: int) -> AsyncIterator[web.AppRunner]:
    runner = await start_site(app, host, port)
    try:
        yield runner
    finally:
        await runner.cleanup()


async def wait_for_stop() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def serve(settings: Settings) -> None:
    loaded = load(settings)  # keys, trust anchors, schemas: a bad setup fails before anything starts
    with redis_for(settings) as redis_url:
        app = create_app(settings, redis_url=redis_url, loaded=loaded)
        async with site_running(app, settings.listen.host, settings.listen.port):
            log.info("gateway listening on %s", settings.base_url)
            await wait_for_stop()


def demo_settings(state_dir: Path, pki_dir: Path, *, port: int, library_url: str, revocation_url: str) -> Settings:
    """Embedded defaults for `egov-gateway demo`: test PKI trust, the demo portal sender, the library."""
    from mocks.pki import ensure_pki

    pki = ensure_pki(pki_dir)
    gateway_keys = pki.systems["gateway"]
    return Settings(
        state_dir=state_dir,
        listen=ListenSettings(port=port),
        limits=LimitSettings(),
        trust=TrustSettings(anchors=pki.trust_anchors, intermediates=pki.intermediates),
        revocation=RevocationSettings(mode=RevocationMode.HARD_FAIL, ocsp_url=f"{revocation_url}/ocsp",
                                      crl_urls=(f"{revocation_url}/crl/nca.crl",)),
        signer=SignerSettings(cert=gateway_keys.cert, key=gateway_keys.key),
        senders={DEMO_SENDER: SenderSettings(password_hash=hash_password(DEMO_PASSWORD), cabinet=True)},
        services={
            READER_TICKET_SERVICE: ServiceSettings(
                endpoint=f"{library_url}/api/v1/readers",
                document_schema="kazneb/reader-registration.xsd",
                result_schema="kazneb/reader-ticket.xsd",
                title="KazNEB: single electronic reader ticket",
            ),
            FUND_SUBMISSION_SERVICE: fund_submission_service(library_url),
        },
    )


def fund_submission_service(library_url: str) -> ServiceSettings:
    """KazNEB fund submission: an organisation applies, signed by its first head or a can-sign employee."""
    return ServiceSettings(
        endpoint=f"{library_url}/api/v1/fund/submissions",
        document_schema="kazneb/fund-submission.xsd",
        result_schema="kazneb/fund-receipt.xsd",
        applicant="organisation",
        required_roles=("first_head", "can_sign"),
        title="KazNEB: submission of objects to the national e-library fund",
    )


async def demo(state_dir: Path, *, port: int, library_port: int, revocation_port: int) -> None:
    """Embedded Redis, the test PKI with its OCSP/CRL service, the library mock and the gateway, until Ctrl-C."""
    from mocks.library import create_library_app
    from mocks.pki import ensure_pki
    from mocks.pki.revocation import create_revocation_app

    library_url = f"http://127.0.0.1:{library_port}"
    revocation_url = f"http://127.0.0.1:{revocation_port}"
    pki = ensure_pki(state_dir / "pki")
    settings = demo_settings(state_dir, pki.root, port=port, library_url=library_url, revocation_url=revocation_url)
    loaded = load(settings)
    with redis_for(settings) as redis_url:
        app = create_app(settings, redis_url=redis_url, loaded=loaded)
        async with site_running(create_revocation_app(pki), "127.0.0.1", revocation_port), \
                site_running(create_library_app(), "127.0.0.1", library_port), \
                site_running(app, settings.listen.host, settings.listen.port):
            _print_banner(settings, redis_url, library_url, revocation_url)
            await wait_for_stop()


def _print_banner(settings: Settings, redis_url: str, library_url: str, revocation_url: str) -> None:
    base = settings.base_url
    print(f"""
egov-gateway demo is running (Ctrl-C stops everything)

  SOAP SyncChannel   {base}/shep/sync        WSDL: {base}/shep/sync?wsdl
  REST intake        {base}/api/v1/requests
  Cabinet API        {base}/api/v1/cabinet/<IIN>/applications   (HTTP Basic {DEMO_SENDER}:{DEMO_PASSWORD})
  Health             {base}/health
  KazNEB library     {library_url}/api/v1/readers   {library_url}/api/v1/fund/submissions
  OCSP / CRL (PKI)   {revocation_url}/ocsp   {revocation_url}/crl/nca.crl
                     revoke a certificate: POST {revocation_url}/_control/revoke {{"serial": "<hex>"}}
  Redis              {redis_url}
  Test PKI           {settings.state_dir / 'pki'}  (people: egov-gateway pki list)

Try, in another terminal:
  .venv/bin/egov-gateway submit --as aigerim --service {READER_TICKET_SERVICE}
  .venv/bin/egov-gateway submit --as kitap-head --service {FUND_SUBMISSION_SERVICE}
""", flush=True)


def with_port(settings: Settings, port: int | None) -> Settings:
    return settings if port is None else replace(settings, listen=replace(settings.listen, port=port))
