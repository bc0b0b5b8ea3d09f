"""Speed of the hot path, measured (never asserted in tests).

    .venv/bin/python benchmarks/bench_pipeline.py [--requests 2000] [--concurrency 16] [--appendfsync always]

Prints the crypto floor first (bare RSA and GOST signatures and hashes, bench_gost.py), then operations per
second of one core for: raw signxml verification (the baseline),
the gateway's DocumentVerifier (structure + certificate path + crypto), signing a result with a
loaded key, the whole pipeline in process (sender auth → verify → schema → identity → revocation
(cached OCSP) → signed receipt → Redis → library over loopback → sign → Redis), and REST end to end
with the gateway (`egov-gateway serve`) and the library in processes of their own, reading the
gateway's CPU time from /proc. Everything runs on real parts: an embedded redis-server, the library
mock and the test PKI's OCSP responder on sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier

from benchmarks.bench_gost import crypto_floor
from gateway.access.senders import hash_password
from gateway.intake.context import INTAKE
from gateway.intake.pipeline import IntakeRequest, new_session_id
from gateway.shell.app import create_app
from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.serve import start_site
from mocks.library import create_library_app
from mocks.pki import generate_pki
from mocks.pki.revocation import run_revocation
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from signing.policy import VerificationPolicy
from signing.signer import DocumentSigner, SigningKey
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier
from tests.helpers import PORTAL, PORTAL_PASSWORD, free_port, make_settings


def per_second(label: str, action: Callable[[], object], seconds: float = 2.0) -> float:
    action()  # warm caches, as the hot path would be
    count, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        action()
        count += 1
    rate = count / (time.process_time() - start)
    print(f"{label:<58} {rate:>9,.0f} /s   {1000 / rate:6.3f} ms")
    return rate


async def main(requests: int, concurrency: int, appendfsync: str = "everysec") -> None:
    work = Path(tempfile.mkdtemp(prefix="egov-bench-"))
    pki = generate_pki(work / "pki")
    aigerim = pki.person("aigerim")
    document = signed_application(aigerim, READER_TICKET_SERVICE)
    raw = etree.tostring(document)
    print(f"signed application: {len(raw)} bytes; python {sys.version.split()[0]}; pid {os.getpid()}\n")
    crypto_floor()
    print()

    certificate = aigerim.sign.load_certificate()
    config = SignatureConfiguration(location="./")
    raw_rate = per_second("signxml verify, certificate pinned (baseline)",
                          lambda: XMLVerifier().verify(raw, x509_cert=certificate, expect_config=config))
    verifier = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(pki.trust_anchors, pki.intermediates))
    ours = per_second("DocumentVerifier.verify (structure + path + crypto)",
                      lambda: verifier.verify(etree.fromstring(raw)))
    print(f"{'  ratio to baseline':<58} {raw_rate / ours:>9.2f}x slower")
    signer = DocumentSigner(SigningKey.from_pem(pki.systems["gateway"].cert, pki.systems["gateway"].key))
    ticket = etree.fromstring(b"<ReaderTicket xmlns='urn:egov:kazneb:reader-ticket:v1'><iin>1</iin></ReaderTicket>")
    per_second("DocumentSigner.sign (key loaded once)", lambda: signer.sign(ticket))

    revocation_port = free_port()
    revocation = await run_revocation(pki, port=revocation_port)
    revocation_url = f"http://127.0.0.1:{revocation_port}"
    print(f"embedded redis-server: appendfsync {appendfsync}")
    with EmbeddedRedis(work / "redis", appendfsync=appendfsync) as redis:
        library_port, port = free_port(), free_port()
        library = await start_site(create_library_app(), "127.0.0.1", library_port)
        settings = make_settings(work, pki, port=port, library_url=f"http://127.0.0.1:{library_port}",
                                 revocation_url=revocation_url)
        runner = await start_site(create_app(settings, redis_url=redis.url), "127.0.0.1", port)
        try:
            await _in_process(runner.app[INTAKE].pipeline, raw, requests)
        finally:
            await runner.cleanup()
            await library.cleanup()
        await _separate_processes(work, pki, redis.url, revocation_url, raw, requests, concurrency)
    await revocation.cleanup()


async def _in_process(pipeline, raw: bytes, requests: int) -> None:  # type: ignore[no-untyped-def]
    def request() -> IntakeRequest:
        return IntakeRequest(channel="rest", message_id=str(uuid.uuid4()), service_id=READER_TICKET_SERVICE,
                             message_date=datetime.now(UTC), sender_id=PORTAL, password=PORTAL_PASSWORD,
                             document=etree.fromstring(raw))

    await pipeline.process(request(), new_session_id())
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        await pipeline.process(request(), new_session_id())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"\npipeline.process, sequential, {requests} requests (gateway + library mock share this process)")
    print(f"  CPU per request {1000 * cpu / requests:.3f} ms, wall per request {1000 * wall / requests:.3f} ms")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def _separate_processes(work: Path, pki, redis_url: str, revocation_url: str,  # type: ignore[no-untyped-def]
                              raw: bytes, requests: int, concurrency: int) -> None:
    """The gateway (`egov-gateway serve`) and the library each in their own process; CPU read from /proc."""
    library_port, port = free_port(), free_port()
    config = work / "gateway.toml"
    config.write_text(f"""state_dir = "{work}"
log_level = "WARNING"
[listen]
port = {port}
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
""".replace("'", '"'))
    environment = {**os.environ, "REDIS_URL": redis_url}
    library = subprocess.Popen([sys.executable, "-m", "mocks.library", "--port", str(library_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gateway = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--log-level", "WARNING", "serve",
                                "--config", str(config)], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await _wait_ready(f"http://127.0.0.1:{library_port}/health")
        await _wait_ready(f"http://127.0.0.1:{port}/health")
        await _load(f"http://127.0.0.1:{port}", raw, concurrency, concurrency)  # warm up
        cpu = _cpu_seconds(gateway.pid)
        done, elapsed, latencies = await _load(f"http://127.0.0.1:{port}", raw, requests, concurrency)
        cpu = _cpu_seconds(gateway.pid) - cpu
    finally:
        gateway.terminate()
        library.terminate()
        gateway.wait()
        library.wait()
    print(f"\nREST end to end, gateway and library in their own processes, {concurrency} concurrent clients")
    print(f"  {done / elapsed:,.0f} requests/s; latency p50 {1000 * statistics.median(latencies):.2f} ms, "
          f"p99 {1000 * latencies[int(done * 0.99) - 1]:.2f} ms")
    print(f"  gateway process CPU per request {1000 * cpu / done:.3f} ms "
          f"(= {done / cpu:,.0f} requests/s per core)")


async def _load(base_url: str, raw: bytes, requests: int, concurrency: int) -> tuple[int, float, list[float]]:
    document = raw.decode()
    latencies: list[float] = []

    async def client(session: aiohttp.ClientSession, count: int) -> None:
        for _ in range(count):
            envelope = {"requestInfo": {"messageId": str(uuid.uuid4()), "serviceId": READER_TICKET_SERVICE,
                                        "messageDate": datetime.now(UTC).isoformat(),
                                        "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
                        "requestData": {"data": document}}
            start = time.perf_counter()
            async with session.post(f"{base_url}/api/v1/requests", json=envelope) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - start)

    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session, max(1, requests // concurrency)) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return len(latencies), elapsed, latencies


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--appendfsync", choices=("everysec", "always"), default="everysec",
                        help="the embedded Redis's fsync policy (redis.appendfsync)")
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.concurrency, options.appendfsync))
