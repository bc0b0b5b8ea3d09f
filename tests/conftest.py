"""Shared fixtures: one test PKI, one real embedded redis-server, the library mock and the gateway on
real sockets, all per test session. Redis is flushed before each test that uses the gateway.
Shared helper functions and constants are in tests/helpers.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from redis.asyncio import Redis, RedisCluster

from gateway.shell.app import create_app
from gateway.shell.redis_cluster import LocalRedisCluster
from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.serve import start_site
from mocks.elicense import create_elicense_app
from mocks.elicense.clock import SimulatedClock
from mocks.library import create_library_app
from mocks.pki import TestPki, generate_pki
from mocks.pki.revocation import run_revocation
from mocks.pki.tsa import create_tsa_app
from mocks.portal.callback_server import create_callback_app
from mocks.portal.shep_client import SyncChannelClient
from tests.helpers import ARTIFACTS, GatewayUnderTest, free_port, make_settings, system_signer


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


@pytest.fixture(scope="session")
def redis_cluster(state_dir: Path) -> Iterator[LocalRedisCluster]:
    """A local Redis Cluster (3 primaries, one replica each) from the bundled redis-server, started on first use."""
    with LocalRedisCluster(state_dir / "redis-cluster") as cluster:
        yield cluster


@pytest_asyncio.fixture
async def cluster_client(redis_cluster: LocalRedisCluster) -> AsyncIterator[RedisCluster]:
    """A cluster client of the session's local cluster, every primary flushed first (a healthy cluster: a test
    that killed a node waits for :meth:`LocalRedisCluster.wait_healthy` before it ends)."""
    await asyncio.to_thread(redis_cluster.wait_healthy, 30.0)
    client = RedisCluster.from_url(redis_cluster.url)
    try:
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)
        yield client
    finally:
        await client.aclose()


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


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's embedded redis-server (not flushed: use ``prefix`` for your keys)."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the redis-server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:8]}"


CHROMIUM = Path("/usr/bin/chromium")


@pytest_asyncio.fixture(scope="module")
async def tsa_url(system: GatewayUnderTest) -> AsyncIterator[str]:
    """The mock PKI's time-stamping authority on a real socket (one per test module)."""
    port = free_port()
    runner = await start_site(create_tsa_app(system.pki), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def tsa(tsa_url: str, http: aiohttp.ClientSession) -> AsyncIterator[str]:
    """The TSA answering normally, and again so after the test."""
    await http.post(f"{tsa_url}/_control/tsa", json={})
    yield tsa_url
    await http.post(f"{tsa_url}/_control/tsa", json={})


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
