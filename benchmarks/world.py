"""The gateway as an operator runs it, for the benchmarks: every part in a process of its own.

`egov-gateway serve` (``--workers N``), the library mock, the test PKI's OCSP/CRL responder and an embedded
redis-server, each a separate process on loopback, so the gateway's CPU read from /proc is its own and nothing
of the load generator's. On a 2-core machine they still share the cores: the figures say what shares them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from lxml import etree

from gateway.access.senders import hash_password
from gateway.shell.redis_embedded import EmbeddedRedis
from mocks.pki import TestPki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from tests.helpers import PORTAL, PORTAL_PASSWORD, free_port

REQUESTS_PATH = "/api/v1/requests"


@dataclass(frozen=True)
class World:
    """A running gateway and what it talks to."""

    base_url: str
    "The gateway's address (http://127.0.0.1:port)."
    gateway_pid: int
    "The `serve` process (the parent of its workers when ``--workers`` > 1)."
    redis_url: str
    "The embedded redis-server's URL."
    redis_pid: int
    "The redis-server's process, for its memory."
    document: bytes
    "A signed reader registration of the test PKI's applicant, as the portal sends it."

    def cpu_seconds(self) -> float:
        """The gateway's CPU (user + system) so far, its workers' included."""
        return tree_cpu_seconds(self.gateway_pid)


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (every thread's children)."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and its live descendants (the embedded Redis, if the gateway started one, excluded:
    the world starts its own)."""
    total = 0.0
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        total += cpu_seconds(pid)
    return total + sum(tree_cpu_seconds(child) for child in children(pid))


def gateway_config(work: Path, pki: TestPki, *, port: int, library_port: int, revocation_url: str,
                   limits: str = "", service: str = "") -> str:
    """The TOML of a gateway serving the reader ticket service; ``limits``/``service``: extra lines of those
    tables."""
    return f"""state_dir = "{work}"
log_level = "WARNING"
[listen]
port = {port}
[limits]
{limits}
[trust]
anchors = {[str(p) for p in pki.trust_anchors]!r}
intermediates = {[str(p) for p in pki.intermediates]!r}
[revocation]
ocsp_url = "{revocation_url}/ocsp"
crl_urls = ["{revocation_url}/crl/nca.crl", "{revocation_url}/crl/root.crl"]
[signer]
cert = "{pki.systems['gateway'].cert}"
key = "{pki.systems['gateway'].key}"
[senders.{PORTAL}]
password_hash = "{hash_password(PORTAL_PASSWORD)}"
[services."{READER_TICKET_SERVICE}"]
endpoint = "http://127.0.0.1:{library_port}/api/v1/readers"
document_schema = "kazneb/reader-registration.xsd"
result_schema = "kazneb/reader-ticket.xsd"
{service}
""".replace("'", '"')


def envelope(document: str, message_id: str | None = None) -> dict[str, object]:
    """A REST request of the portal for the reader ticket service."""
    return {"requestInfo": {"messageId": message_id or str(uuid.uuid4()), "serviceId": READER_TICKET_SERVICE,
                            "messageDate": datetime.now(UTC).isoformat(),
                            "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
            "requestData": {"data": document}}


async def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")


def _spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def gateway_world(work: Path, pki: TestPki, *, workers: int = 1, limits: str = "", service: str = "",
                        document: bytes | None = None) -> AsyncIterator[World]:
    """Start redis-server, the OCSP responder, the library and `egov-gateway serve --workers N`; stop them all."""
    work.mkdir(parents=True, exist_ok=True)
    port, library_port, revocation_port = free_port(), free_port(), free_port()
    revocation_url = f"http://127.0.0.1:{revocation_port}"
    config = work / "gateway.toml"
    config.write_text(gateway_config(work, pki, port=port, library_port=library_port, revocation_url=revocation_url,
                                     limits=limits, service=service))
    if document is None:
        document = etree.tostring(signed_application(pki.person("aigerim"), READER_TICKET_SERVICE))
    with EmbeddedRedis(work / "redis") as redis:
        helpers = [_spawn("mocks.pki.revocation", "--pki", str(pki.root), "--port", str(revocation_port)),
                   _spawn("mocks.library", "--port", str(library_port))]
        gateway = _spawn("gateway.shell.cli", "--log-level", "WARNING", "serve", "--config", str(config),
                         "--workers", str(workers), env={**os.environ, "REDIS_URL": redis.url})
        try:
            await wait_ready(f"{revocation_url}/crl/nca.crl")
            await wait_ready(f"http://127.0.0.1:{library_port}/health")
            await wait_ready(f"http://127.0.0.1:{port}/health")
            assert redis.pid is not None
            yield World(f"http://127.0.0.1:{port}", gateway.pid, redis.url, redis.pid, document)
        finally:
            _stop(gateway, *helpers)


@dataclass(frozen=True)
class LoadResult:
    """What a load run saw from outside, and what it cost the gateway."""

    ok: int
    "Requests answered 200."
    refused: int
    "Requests answered 503 GATEWAY_OVERLOADED."
    failed: int
    "Every other answer or error."
    seconds: float
    "Wall time of the run."
    latencies: tuple[float, ...]
    "Seconds of each OK request, sorted."
    cpu_seconds: float
    "The gateway's CPU over the run (workers included)."
    client_seconds: float
    "The load generator's CPU over the run (this process)."
    machine_seconds: float
    "CPU of the whole machine over the run, every process (from /proc/stat)."

    def cores(self) -> str:
        """What shared the machine's cores during the run, in cores busy on average."""
        rest = self.machine_seconds - self.cpu_seconds - self.client_seconds
        return (f"cores busy: gateway {self.cpu_seconds / self.seconds:.2f}, load generator "
                f"{self.client_seconds / self.seconds:.2f}, the rest (Redis, library, OCSP, system) "
                f"{rest / self.seconds:.2f}, of {os.cpu_count()}")

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds

    def percentile(self, fraction: float) -> float:
        """A latency percentile of the OK requests, in seconds (nan when there were none)."""
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(len(self.latencies) * fraction))]

    @property
    def cpu_per_ok(self) -> float:
        return self.cpu_seconds / self.ok if self.ok else float("nan")


class _Tally:
    def __init__(self) -> None:
        self.ok = self.refused = self.failed = 0
        self.latencies: list[float] = []

    async def send(self, session: aiohttp.ClientSession, url: str, document: str) -> None:
        start = time.perf_counter()
        try:
            async with session.post(url, json=envelope(document)) as response:
                body = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            self.failed += 1
            return
        if response.status == 200:
            self.ok += 1
            self.latencies.append(time.perf_counter() - start)
        elif response.status == 503 and b"GATEWAY_OVERLOADED" in body:
            self.refused += 1
        else:
            self.failed += 1

    def result(self, seconds: float, cpu: float, client: float, machine: float) -> LoadResult:
        return LoadResult(self.ok, self.refused, self.failed, seconds, tuple(sorted(self.latencies)), cpu, client,
                          machine)


def machine_cpu_seconds() -> float:
    """CPU time every core of the machine has spent busy so far (not idle, not waiting on I/O), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=30))


async def closed_loop(world: World, requests: int, concurrency: int) -> LoadResult:
    """``concurrency`` clients, each sending its next request when its last is answered."""
    tally, url, document = _Tally(), world.base_url + REQUESTS_PATH, world.document.decode()

    async def client(count: int) -> None:
        for _ in range(count):
            await tally.send(session, url, document)

    async with _session() as session:
        await asyncio.gather(*(client(2) for _ in range(concurrency)))  # warm: connections, caches
        tally = _Tally()
        cpu, own, machine, start = world.cpu_seconds(), time.process_time(), machine_cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(client(requests // concurrency) for _ in range(concurrency)))
        return tally.result(time.perf_counter() - start, world.cpu_seconds() - cpu, time.process_time() - own,
                            machine_cpu_seconds() - machine)
