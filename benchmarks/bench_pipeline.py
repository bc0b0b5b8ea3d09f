"""Speed of the hot path, measured (never asserted in tests).

    .venv/bin/python benchmarks/bench_pipeline.py [--requests 2000] [--concurrency 16] [--appendfsync always]
        [--receipt-batches]

Prints the crypto floor first (bare RSA and GOST signatures and hashes, bench_gost.py), then operations per
second of one core for: raw signxml verification (the baseline),
the gateway's DocumentVerifier (structure + certificate path + crypto), signing a result with a
loaded key (the gateway's signer, and signxml's XMLSigner: with the baseline, the floor of what a request must do:
one XMLDSig verification and one XMLDSig signature; every CPU per request is also printed as a multiple of it),
the whole pipeline in process (sender auth → verify → schema → identity → revocation (cached OCSP) → signed
receipt → Redis → library over loopback → sign → Redis), and REST end to end
with the gateway (`egov-gateway serve`) and the library in processes of their own, reading the
gateway's CPU time from /proc. Everything runs on real parts: an embedded redis-server, the library
mock and the test PKI's OCSP responder on sockets. The metrics one request records are timed alone too, in memory
(one `serve`) and in prometheus_client's multi-process mode (`serve --workers N`), to compare with the CPU per
request.

The message log's cost (``--messagelog-only`` runs just that): the same in-process pipeline with the log off and
on in one run (each request's five records: request, receipt, provider answer, result, answer), plus the CPU of
sealing what was appended (signing once per 10,000-record segment, the mock TSA's token checked, the file
written), and the log's bytes per request in Redis before sealing and in the archive after. For the AsyncChannel,
the record of a result delivered (``result-delivery``) is timed on its own: a getMessages answer of 10 results
(one append of ten records) and a callback push (one append each), with their bytes.
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

from dataclasses import replace

import aiohttp
from lxml import etree
from redis.asyncio import Redis
from signxml import SignatureConfiguration, XMLVerifier

from benchmarks.bench_gost import crypto_floor
from gateway.access.senders import hash_password
from gateway.config import MessageLogSettings, RedisSettings
from gateway.intake.context import INTAKE
from gateway.intake.pipeline import IntakeRequest, new_session_id
from gateway.messagelog import deliveries
from gateway.messagelog.journal import LogKeys
from gateway.messagelog.sealer import Sealer
from gateway.monitor import metrics
from gateway.shell.app import create_app
from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.serve import start_site
from gateway.shep.messages import async_message
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


async def main(requests: int, concurrency: int, appendfsync: str = "everysec", messagelog_only: bool = False,
               receipt_batches: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="egov-bench-"))
    pki = generate_pki(work / "pki")
    aigerim = pki.person("aigerim")
    document = signed_application(aigerim, READER_TICKET_SERVICE)
    raw = etree.tostring(document)
    print(f"signed application: {len(raw)} bytes; python {sys.version.split()[0]}; pid {os.getpid()}\n")
    if messagelog_only:
        await _message_log_cost(work, pki, raw, requests)
        return
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
    signxml_signer = DocumentSigner(SigningKey.from_pem(pki.systems["gateway"].cert, pki.systems["gateway"].key),
                                    lean=False)
    signxml_rate = per_second("signxml XMLSigner.sign (key loaded once)", lambda: signxml_signer.sign(ticket))
    floor = 1 / raw_rate + 1 / signxml_rate
    print(f"{'floor: signxml verify + signxml sign':<58} {'':>9}     {1000 * floor:6.3f} ms")
    metrics_cost()
    with tempfile.TemporaryDirectory(prefix="egov-bench-metrics-") as files:  # chosen at import: a process of its own
        subprocess.run([sys.executable, __file__, "--metrics-cost"], check=True,
                       env={**os.environ, metrics.MULTIPROC_ENV: files})

    revocation_port = free_port()
    revocation = await run_revocation(pki, port=revocation_port)
    revocation_url = f"http://127.0.0.1:{revocation_port}"
    print(f"embedded redis-server: appendfsync {appendfsync}")
    with EmbeddedRedis(work / "redis", appendfsync=appendfsync) as redis:
        library_port, port = free_port(), free_port()
        library = await start_site(create_library_app(), "127.0.0.1", library_port)
        settings = make_settings(work, pki, port=port, library_url=f"http://127.0.0.1:{library_port}",
                                 revocation_url=revocation_url)
        settings = replace(settings, signer=replace(settings.signer, receipt_batches=receipt_batches))
        runner = await start_site(create_app(settings, redis_url=redis.url), "127.0.0.1", port)
        try:
            await _in_process(runner.app[INTAKE].pipeline, raw, requests, floor)
        finally:
            await runner.cleanup()
            await library.cleanup()
        await _separate_processes(work, pki, redis.url, revocation_url, raw, requests, concurrency, floor,
                                  receipt_batches)
    await revocation.cleanup()
    await _message_log_cost(work, pki, raw, requests)


async def _message_log_cost(work: Path, pki, raw: bytes, requests: int) -> None:  # type: ignore[no-untyped-def]
    """CPU per request with the message log off and on (appends and sealing), and its bytes per request.

    Both gateways run side by side in this process and take turns in slices of 48 requests, so a machine whose
    load changes during the run (other work on the cores) weighs on both alike."""
    tsa_port, library_port = free_port(), free_port()
    # The TSA in a process of its own, as it is remote in production: its signing is not the gateway's CPU.
    tsa = subprocess.Popen([sys.executable, "-m", "mocks.pki.tsa", "--pki", str(pki.root), "--port", str(tsa_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    library = await start_site(create_library_app(), "127.0.0.1", library_port)
    cpu = {key: 0.0 for key in ("off", "on", "off-16", "on-16")}
    await _wait_ready(f"http://127.0.0.1:{tsa_port}/_control/tsa")
    with EmbeddedRedis(work / "redis-messagelog") as redis:
        runners, settings = {}, {}
        for mode in ("off", "on"):
            # Never sealed during the run (the sealing is timed on its own below, as one sealer process does it).
            log_settings = MessageLogSettings(enabled=mode == "on", tsa_url=f"http://127.0.0.1:{tsa_port}/tsa",
                                              segment_records=1_000_000, segment_seconds=3600)
            settings[mode] = replace(make_settings(work, pki, port=free_port(),
                                                   library_url=f"http://127.0.0.1:{library_port}"),
                                     messagelog=log_settings, redis=RedisSettings(key_prefix=f"bench-{mode}"))
            runners[mode] = await start_site(create_app(settings[mode], redis_url=redis.url), "127.0.0.1",
                                             settings[mode].listen.port)
        try:
            for clients, suffix in ((1, ""), (16, "-16")):
                for _ in range(max(1, requests // 48)):
                    for mode in ("off", "on"):
                        cpu[mode + suffix] += await _pipeline_cpu(runners[mode].app[INTAKE].pipeline, raw, 48,
                                                                  clients)
                if clients == 1:  # what the sequential turns appended: 5 records per request (and the warm-ups)
                    sealed, sizes = await _seal_all(settings["on"], runners["on"], work, redis.url)
            delivered = await _delivery_cost(runners["on"].app[INTAKE].pipeline, raw)
        finally:
            for runner in runners.values():
                await runner.cleanup()
    await library.cleanup()
    tsa.terminate()
    tsa.wait()
    done = 48 * max(1, requests // 48)
    appended = sizes[3]
    per_request = sealed / appended * 5  # sealing CPU per request's five records
    print(f"\nmessage log, in-process pipeline, {done} requests per mode, the two gateways taking turns")
    for label, suffix in (("sequential", ""), ("16 concurrent callers", "-16")):
        off, on = cpu[f"off{suffix}"] / done, cpu[f"on{suffix}"] / done + per_request
        print(f"  {label}: CPU per request off {1000 * off:.3f} ms, on {1000 * on:.3f} ms "
              f"(sealing {1000 * per_request:.3f} of it): {100 * (on - off) / off:+.1f}%")
    print(f"  bytes per request: Redis before sealing {5 * sizes[0] / appended:,.0f} (record values; "
          f"{5 * sizes[1] / appended:,.0f} by MEMORY USAGE), archive after {5 * sizes[2] / appended:,.0f}")
    off = cpu["off"] / done
    for label, (spent, size) in delivered.items():
        spent += sealed / appended  # its share of sealing: the record's hash (the signature is per segment)
        print(f"  AsyncChannel, a result delivered ({label}): +{1000 * spent:.3f} ms CPU "
              f"({100 * spent / off:+.1f}% of a request with the log off), +{size:,.0f} bytes (record value)")


async def _pipeline_cpu(pipeline, raw: bytes, requests: int, clients: int) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds of ``requests`` requests through the pipeline from ``clients`` concurrent callers, each answer
    logged as an intake logs it."""
    def request() -> IntakeRequest:
        return IntakeRequest(channel="rest", message_id=str(uuid.uuid4()), service_id=READER_TICKET_SERVICE,
                             message_date=datetime.now(UTC), sender_id=PORTAL, password=PORTAL_PASSWORD,
                             document=etree.fromstring(raw))

    async def caller(count: int) -> None:
        for _ in range(count):
            intake = request()
            outcome = await pipeline.process(intake, new_session_id(), raw=raw)
            answer = (outcome.result or b"") + (outcome.application.receipt or "").encode()  # about the REST answer
            await pipeline.log_answer(intake, outcome, answer)

    await caller(1)
    start = time.process_time()
    await asyncio.gather(*(caller(requests // clients) for _ in range(clients)))
    return time.process_time() - start


async def _seal_all(settings, runner, work: Path,  # type: ignore[no-untyped-def]
                    redis_url: str) -> tuple[float, tuple[int, int, int, int]]:
    """Seal everything appended in 10,000-record segments; its CPU seconds and the bytes before and after."""
    keys = LogKeys.under(settings.redis.key_prefix)
    client = Redis.from_url(redis_url)
    fields = await client.hkeys(keys.records)
    appended = len(fields)
    values = sum([int(await client.hstrlen(keys.records, field)) for field in fields])
    memory = int(await client.memory_usage(keys.records) or 0)
    pipeline = runner.app[INTAKE].pipeline
    archive = work / f"archive-{uuid.uuid4().hex[:6]}"
    sealer = Sealer(client, settings.redis.key_prefix, replace(settings.messagelog, segment_records=10_000),
                    key=pipeline.signer.key, trust=pipeline.verifier.trust, session=aiohttp.ClientSession(),
                    archive_dir=archive)
    start = time.process_time()
    async with sealer.session:
        while (state := await sealer.state()).seq < int(await client.get(keys.seq) or 0):
            await sealer.seal(state, min(state.seq + 10_000, int(await client.get(keys.seq))))
    spent = time.process_time() - start
    await client.aclose()
    written = sum(path.stat().st_size for path in archive.iterdir())
    return spent, (values, memory, written, appended)


async def _delivery_cost(pipeline, raw: bytes, rounds: int = 100) -> dict[str, tuple[float, float]]:  # type: ignore[no-untyped-def]
    """CPU seconds and record bytes per result delivered: in getMessages answers of 10 (one append of ten records,
    as the AsyncChannel makes it before sending the answer) and in callback pushes (one append each)."""
    apps = [(await pipeline.process(IntakeRequest(
        channel="soap-async", message_id=str(uuid.uuid4()), service_id=READER_TICKET_SERVICE,
        message_date=datetime.now(UTC), sender_id=PORTAL, password=PORTAL_PASSWORD, document=etree.fromstring(raw)),
        new_session_id(), raw=raw)).application for _ in range(10)]
    root = etree.Element("getMessagesResponse")
    response = etree.SubElement(root, "response")
    for app in apps:
        async_message(response, "messages", app)
    answer = etree.tostring(root)
    pushes = [etree.tostring(async_message(etree.Element("sendMessage"), "request", app)) for app in apps]
    log, results = pipeline.messagelog, {}

    async def handed_over() -> None:
        await log.append(*deliveries.handed_over(apps, answer))

    async def pushed() -> None:
        for app, body in zip(apps, pushes, strict=True):
            await log.append(deliveries.pushed(app, body, 1))

    for label, append in (("getMessages of 10", handed_over), ("callback pushes, one by one", pushed)):
        first = int(await log.redis.get(log.keys.seq) or 0) + 1
        start = time.process_time()
        for _ in range(rounds):
            await append()
        spent = time.process_time() - start
        last = int(await log.redis.get(log.keys.seq))
        sizes = [int(await log.redis.hstrlen(log.keys.records, str(seq))) for seq in range(first, last + 1)]
        results[label] = (spent / (rounds * len(apps)), sum(sizes) / len(sizes))
    return results


def record_request_metrics() -> None:
    """What one sync request records: the request, its signature, two revocation answers, a back-end call."""
    started = time.perf_counter()
    metrics.observe_signature("TOTAL_PASSED", None)
    metrics.observe_revocation("cache", "good")
    metrics.observe_revocation("ocsp", "good")
    metrics.observe_backend(READER_TICKET_SERVICE, "ok", started)
    metrics.BREAKER_OPEN.labels(READER_TICKET_SERVICE).set(0)
    metrics.observe_request("rest", READER_TICKET_SERVICE, "SCSS001", started)


def metrics_cost() -> None:
    mode = "multi-process files" if metrics.multiprocess() else "in memory"
    per_second(f"metrics of one request ({mode})", record_request_metrics)


async def _in_process(pipeline, raw: bytes, requests: int, floor: float) -> None:  # type: ignore[no-untyped-def]
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
    print(f"  CPU per request {1000 * cpu / requests:.3f} ms ({cpu / requests / floor:.2f}x the floor), "
          f"wall per request {1000 * wall / requests:.3f} ms")


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
                              raw: bytes, requests: int, concurrency: int, floor: float,
                              receipt_batches: bool) -> None:
    """The gateway (`egov-gateway serve`) and the library each in their own process; CPU read from /proc."""
    library_port, port, monitor_port = free_port(), free_port(), free_port()
    config = work / "gateway.toml"
    config.write_text(f"""state_dir = "{work}"
log_level = "WARNING"
[listen]
port = {port}
[monitor]
listen = "127.0.0.1:{monitor_port}"
[trust]
anchors = {[str(p) for p in pki.trust_anchors]!r}
intermediates = {[str(p) for p in pki.intermediates]!r}
[revocation]
ocsp_url = "{revocation_url}/ocsp"
crl_urls = ["{revocation_url}/crl/nca.crl", "{revocation_url}/crl/root.crl"]
[signer]
cert = "{pki.systems['gateway'].cert}"
key = "{pki.systems['gateway'].key}"
receipt_batches = {str(receipt_batches).lower()}
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
        cpu, batches = _cpu_seconds(gateway.pid), await _receipt_batches(monitor_port)
        done, elapsed, latencies = await _load(f"http://127.0.0.1:{port}", raw, requests, concurrency)
        cpu = _cpu_seconds(gateway.pid) - cpu
        batches = tuple(after - before for after, before in
                        zip(await _receipt_batches(monitor_port), batches, strict=True))
    finally:
        gateway.terminate()
        library.terminate()
        gateway.wait()
        library.wait()
    print(f"\nREST end to end, gateway and library in their own processes, {concurrency} concurrent clients")
    print(f"  {done / elapsed:,.0f} requests/s; latency p50 {1000 * statistics.median(latencies):.2f} ms, "
          f"p99 {1000 * latencies[int(done * 0.99) - 1]:.2f} ms")
    print(f"  gateway process CPU per request {1000 * cpu / done:.3f} ms "
          f"(= {done / cpu:,.0f} requests/s per core; {cpu / done / floor:.2f}x the floor of {1000 * floor:.3f} ms)")
    if receipt_batches:
        print(f"  receipts signed in batches: {batches[1]:,.0f} receipts in {batches[0]:,.0f} batches "
              f"(mean {batches[1] / max(batches[0], 1):.2f} per signature)")


async def _receipt_batches(monitor_port: int) -> tuple[float, float]:
    """The gateway's egov_receipt_batches and egov_receipts_batched counters, from its monitor listener."""
    values = {"egov_receipt_batches_total": 0.0, "egov_receipts_batched_total": 0.0}
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{monitor_port}/metrics") as answer:
        for line in (await answer.text()).splitlines():
            name, _, value = line.partition(" ")
            if name in values:
                values[name] = float(value)
    return values["egov_receipt_batches_total"], values["egov_receipts_batched_total"]


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
    parser.add_argument("--metrics-cost", action="store_true", help="only time the metrics of one request")
    parser.add_argument("--messagelog-only", action="store_true", help="only the message log's cost")
    parser.add_argument("--receipt-batches", action="store_true",
                        help="the gateway signs receipts in batches ([signer] receipt_batches = true)")
    options = parser.parse_args()
    if options.metrics_cost:
        metrics_cost()
    else:
        asyncio.run(main(options.requests, options.concurrency, options.appendfsync, options.messagelog_only,
                         options.receipt_batches))
