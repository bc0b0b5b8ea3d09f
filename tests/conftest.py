"""Shared fixtures: one test PKI, one real embedded redis-server, the library mock and the gateway on
real sockets, all per test session. Redis is flushed before each test that uses the gateway."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from redis.asyncio import Redis

from connectors.queue import QueueSettings
from gateway.access.senders import hash_password
from gateway.config import (
    LimitSettings,
    ListenSettings,
    SenderSettings,
    ServiceSettings,
    Settings,
    SignerSettings,
    TrustSettings,
)
from gateway.shell.app import create_app
from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.serve import start_site
from mocks.elicense import create_elicense_app
from mocks.elicense.clock import SimulatedClock
from mocks.library import LIBRARY_STATE, create_library_app
from mocks.pki import TestPki, generate_pki
from mocks.pki.revocation import run_revocation
from mocks.portal.applicant import ELICENSE_SERVICE, FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE
from mocks.portal.callback_server import create_callback_app
from mocks.portal.shep_client import SyncChannelClient
from mocks.world.demo import elicense_service, fund_submission_service
from signing.policy import RevocationMode
from signing.revocation import RevocationSettings
from signing.signer import DocumentSigner, SigningKey

PORTAL, PORTAL_PASSWORD = "portal", "portal-test-password"
OFFICE, OFFICE_PASSWORD = "registry-office", "office-test-password"
DOWN_SERVICE = "kazneb.reader-ticket.down"
FLAKY_SERVICE = "kazneb.reader-ticket.flaky"
DESK, DESK_PASSWORD = "desk", "desk-test-password"
OPERATOR, OPERATOR_PASSWORD = "operator", "operator-test-password"
PULL, PULL_PASSWORD = "portal-pull", "pull-test-password"  # a portal without callbacks: it uses getMessages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def pki(state_dir: Path) -> TestPki:
    return generate_pki(state_dir / "pki")


@pytest.fixture(scope="session")
def redis_url(state_dir: Path) -> Iterator[str]:
    with EmbeddedRedis(state_dir / "redis") as server:
        yield server.url


@dataclass
class GatewayUnderTest:
    """Handles on the running system for tests to drive and inspect."""

    url: str
    settings: Settings
    pki: TestPki
    library: web.Application
    redis: Redis
    redis_url: str
    revocation_url: str
    library_url: str
    elicense_url: str
    elicense: web.Application
    callbacks: web.Application

    @property
    def library_calls(self) -> int:
        return self.library[LIBRARY_STATE].registrations_received

    def auth(self, sender: str = PORTAL, password: str = PORTAL_PASSWORD) -> dict[str, str]:
        """HTTP Basic headers for the cabinet API."""
        return {"Authorization": aiohttp.encode_basic_auth(sender, password)}


def make_settings(state_dir: Path, pki: TestPki, *, port: int, library_url: str, revocation_url: str | None = None,
                  elicense_url: str | None = None, callback_url: str | None = None) -> Settings:
    """The test system's configuration; revocation is hard-fail (the default) against ``revocation_url``."""
    gateway_keys = pki.systems["gateway"]
    revocation = (RevocationSettings(ocsp_url=f"{revocation_url}/ocsp", crl_urls=(f"{revocation_url}/crl/nca.crl",))
                  if revocation_url else RevocationSettings(mode=RevocationMode.OFF))
    return Settings(
        revocation=revocation,
        state_dir=state_dir,
        listen=ListenSettings(port=port),
        limits=LimitSettings(max_body_bytes=256 * 1024),
        trust=TrustSettings(anchors=pki.trust_anchors, intermediates=pki.intermediates),
        signer=SignerSettings(cert=gateway_keys.cert, key=gateway_keys.key),
        senders={
            PORTAL: SenderSettings(password_hash=hash_password(PORTAL_PASSWORD), cabinet=True,
                                   callback_url=callback_url),
            OFFICE: SenderSettings(password_hash=hash_password(OFFICE_PASSWORD), services=("other.service",)),
            PULL: SenderSettings(password_hash=hash_password(PULL_PASSWORD)),
            DESK: SenderSettings(password_hash=hash_password(DESK_PASSWORD), services=(),
                                 jobs=(FUND_SUBMISSION_SERVICE,)),
            OPERATOR: SenderSettings(password_hash=hash_password(OPERATOR_PASSWORD), services=(), operator=True),
        },
        queue=QueueSettings(visibility_timeout_ms=400, max_attempts=3),
        services={
            READER_TICKET_SERVICE: ServiceSettings(
                endpoint=f"{library_url}/api/v1/readers",
                document_schema="kazneb/reader-registration.xsd",
                result_schema="kazneb/reader-ticket.xsd",
                timeout_seconds=5,
                retry_attempts=3,
                retry_base_seconds=0.05,
                breaker_failures=20,  # tests inject failures into this shared back-end; the breaker has its own test
            ),
            FUND_SUBMISSION_SERVICE: fund_submission_service(pki.system_bins["library"]),
            ELICENSE_SERVICE: elicense_service(elicense_url or f"http://127.0.0.1:{free_port()}", poll_seconds=0.2,
                                               provider_bin=pki.system_bins["elicense"]),
            FLAKY_SERVICE: ServiceSettings(
                endpoint=f"{library_url}/api/v1/readers?breaker-test",  # its own breaker (keyed by endpoint)
                document_schema="kazneb/reader-registration.xsd",
                retry_attempts=1, breaker_failures=2, breaker_reset_seconds=0.3,
            ),
            DOWN_SERVICE: ServiceSettings(
                endpoint=f"http://127.0.0.1:{free_port()}/api/v1/readers",
                document_schema="kazneb/reader-registration.xsd",
                timeout_seconds=2,
            ),
        },
    )


@pytest_asyncio.fixture(scope="session")
async def revocation_url(pki: TestPki) -> AsyncIterator[str]:
    """The mock PKI's OCSP responder and CRL distribution point, on a real socket."""
    port = free_port()
    runner = await run_revocation(pki, port=port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="session")
async def system(state_dir: Path, pki: TestPki, redis_url: str, revocation_url: str) -> AsyncIterator[GatewayUnderTest]:
    """The gateway with the outside world on real sockets: library, E-licensing (its clock runs a million times
    faster than real time, so a regulated week passes in about a second), and the portal's callback endpoint."""
    library_app = create_library_app(signer=system_signer(pki, "library"))
    elicense_app = create_elicense_app(signer=system_signer(pki, "elicense"),
                                       clock=SimulatedClock(datetime.now(UTC), scale=1_000_000))
    callback_app = create_callback_app()
    ports = {name: free_port() for name in ("library", "elicense", "callback", "gateway")}
    runners = [await start_site(app, "127.0.0.1", ports[name]) for name, app in
               (("library", library_app), ("elicense", elicense_app), ("callback", callback_app))]
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    settings = make_settings(state_dir, pki, port=ports["gateway"], library_url=urls["library"],
                             revocation_url=revocation_url, elicense_url=urls["elicense"],
                             callback_url=f"{urls['callback']}/shep/client")
    gateway = await start_site(create_app(settings, redis_url=redis_url), "127.0.0.1", ports["gateway"])
    redis = Redis.from_url(redis_url)
    try:
        yield GatewayUnderTest(settings.base_url, settings, pki, library_app, redis, redis_url, revocation_url,
                               urls["library"], urls["elicense"], elicense_app, callback_app)
    finally:
        await redis.aclose()
        await gateway.cleanup()
        for runner in runners:
            await runner.cleanup()


def system_signer(pki: TestPki, name: str) -> DocumentSigner:
    files = pki.systems[name]
    return DocumentSigner(SigningKey.from_pem(files.cert, files.key))


@pytest_asyncio.fixture
async def gw(system: GatewayUnderTest) -> GatewayUnderTest:
    """The running system with empty storage."""
    await system.redis.flushdb()
    return system


@pytest_asyncio.fixture(scope="session")
async def shep(system: GatewayUnderTest) -> SyncChannelClient:
    """A zeep client built from the gateway's served WSDL (blocking: call it via asyncio.to_thread)."""
    return await asyncio.to_thread(SyncChannelClient, f"{system.url}/shep/sync?wsdl")


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def message_id() -> str:
    return str(uuid.uuid4())


CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest_asyncio.fixture(scope="session")
async def browser():  # type: ignore[no-untyped-def]
    """Headless Debian chromium driven by Playwright (``make test`` installs chromium when it is missing)."""
    from playwright.async_api import async_playwright

    assert CHROMIUM.exists(), "chromium is missing: `make test` installs Debian's chromium package"
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            # This machine has no network: keep chromium from trying to reach its services.
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"],
        )
        yield instance
        await instance.close()
