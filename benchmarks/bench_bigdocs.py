"""Big documents and Redis bytes per application, measured (never asserted in tests).

    .venv/bin/python benchmarks/bench_bigdocs.py [--sizes 1,10] [--small 200] [--channel soap|rest]
                                                 [--padding signed|comment] [--source DIR]

The gateway runs in a process of its own (``egov-gateway serve``, as bench_pipeline.py runs it) against an
embedded redis-server started here, and a minimal back-end (in this process) that reads whatever it is sent and
answers a small XML document. For each size (MB) one signed application is sent over the SyncChannel (or REST):
the sample reader registration with ``padding`` elements (64 KB of text each) inside the signed content, signed
with the test PKI (``--padding comment``: 64 KB comments added after signing, which the signature leaves out).
Measured:

- the gateway's peak RSS during the request above its idle RSS (``VmHWM`` of /proc/<pid>/status, reset by
  writing 5 to /proc/<pid>/clear_refs before the request);
- Redis: ``used_memory`` after minus before, ``used_memory_peak`` minus ``used_memory`` before (the peak is reset
  with CONFIG RESETSTAT before each request), and the append-only file's growth (``aof_current_size``);
- for N normal small applications: Redis ``used_memory`` and AOF bytes per application.

``measure()`` returns all of it as a dict (for a bench that gathers several into one table); ``main()`` prints it.
``--source DIR`` runs the gateway from another checkout (say, main's worktree) to compare before and after; this
benchmark's own helpers stay the ones of this checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web
from lxml import etree
from redis.asyncio import Redis

from benchmarks.world import wait_ready
from gateway.access.senders import hash_password
from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.serve import start_site
from mocks.pki import generate_pki
from mocks.portal.applicant import reader_registration, signer_for
from tests.helpers import PORTAL, PORTAL_PASSWORD, SOAP_ENV, free_port

REPO = Path(__file__).resolve().parents[1]
BIG_SERVICE = "bench.big-document"
"A service without a document schema (the padding is not in the reader registration's) and a trivial back-end."
TYPES = "http://bip.bee.kz/SyncChannel/v10/Types"
MB = 1024 * 1024


def padded_application(person: Any, size: int, padding: str = "signed") -> bytes:
    """The reader registration of ``person`` with about ``size`` bytes of padding: ``signed``, elements inside
    what the signature covers; ``comment``, comments added after signing (a C14N without comments leaves them out,
    so the signature still holds and the signed document stays small)."""
    document = reader_registration(person)
    chunk = 64 * 1024  # libxml2 refuses a text node over 10 MB: many elements, as a real attachment list would be
    if padding == "comment":
        signed = signer_for(person).sign(document)
        for start in range(0, size, chunk):
            signed.insert(0, etree.Comment("x" * min(chunk, size - start)))
        return etree.tostring(signed)
    for start in range(0, size, chunk):
        element = etree.SubElement(document, f"{{{etree.QName(document).namespace}}}padding")
        element.text = "x" * min(chunk, size - start)
    return etree.tostring(signer_for(person).sign(document))


def soap_request(document: bytes, service: str) -> bytes:
    head = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:t="{TYPES}"><soap:Body><t:SendMessage><request>'
            f"<requestInfo><messageId>{uuid.uuid4()}</messageId><serviceId>{service}</serviceId>"
            f"<messageDate>{datetime.now(UTC).isoformat()}</messageDate>"
            f"<sender><senderId>{PORTAL}</senderId><password>{PORTAL_PASSWORD}</password></sender></requestInfo>"
            "<requestData><data>").encode()
    return head + document + b"</data></requestData></request></t:SendMessage></soap:Body></soap:Envelope>"


def rest_request(document: bytes, service: str) -> dict[str, Any]:
    return {"requestInfo": {"messageId": str(uuid.uuid4()), "serviceId": service,
                            "messageDate": datetime.now(UTC).isoformat(),
                            "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
            "requestData": {"data": document.decode()}}


async def _backend(port: int) -> web.AppRunner:
    """Reads the whole submission and answers a small document (bind_results is off for the bench service)."""
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"<Answer xmlns='urn:bench'><ok>1</ok></Answer>", content_type="application/xml")

    app = web.Application(client_max_size=64 * MB)
    app.router.add_post("/answer", answer)
    return await start_site(app, "127.0.0.1", port)


def _config(work: Path, pki: Any, port: int, backend_port: int, max_body: int) -> Path:
    config = work / "gateway.toml"
    config.write_text(f"""state_dir = "{work}"
log_level = "WARNING"
[listen]
port = {port}
[limits]
max_body_bytes = {max_body}
max_xml_elements = 100000
[trust]
anchors = {[str(p) for p in pki.trust_anchors]!r}
intermediates = {[str(p) for p in pki.intermediates]!r}
[revocation]
mode = "off"
[retention]
enabled = false
[signer]
cert = "{pki.systems['gateway'].cert}"
key = "{pki.systems['gateway'].key}"
[senders.{PORTAL}]
password_hash = "{hash_password(PORTAL_PASSWORD)}"
[services."{BIG_SERVICE}"]
endpoint = "http://127.0.0.1:{backend_port}/answer"
bind_results = false
timeout_seconds = 60
""".replace("'", '"'))
    return config


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def _redis_numbers(redis: Redis) -> dict[str, int]:
    memory, persistence = await redis.info("memory"), await redis.info("persistence")
    return {"used": int(memory["used_memory"]), "peak": int(memory["used_memory_peak"]),
            "aof": int(persistence.get("aof_current_size", 0)),
            "rewrites": int(persistence.get("aof_rewrite_in_progress", 0))}


async def _send(http: aiohttp.ClientSession, base: str, channel: str, document: bytes, service: str) -> int:
    if channel == "soap":
        body = soap_request(document, service)
        async with http.post(f"{base}/shep/sync", data=body, headers={"Content-Type": "text/xml"}) as response:
            answer = await response.read()
    else:
        async with http.post(f"{base}/api/v1/requests", json=rest_request(document, service)) as response:
            answer = await response.read()
    if response.status != 200:
        raise RuntimeError(f"{channel} request refused: HTTP {response.status}: {answer[:600]!r}")
    return response.status


async def _settle(pid: int, seconds: float = 1.0) -> int:
    """The RSS once the gateway has been idle for a moment (kB)."""
    await asyncio.sleep(seconds)
    return _status_kb(pid, "VmRSS")


async def measure(sizes_mb: tuple[float, ...] = (1, 10), small: int = 200, channel: str = "soap",
                  source: Path = REPO, padding: str = "signed") -> dict[str, Any]:
    """Run the gateway from ``source`` and measure; returns {"bigDocuments": [...], "smallApplications": {...}}."""
    work = Path(tempfile.mkdtemp(prefix="egov-bench-bigdocs-"))
    pki = generate_pki(work / "pki")
    person = pki.person("aigerim")
    port, backend_port = free_port(), free_port()
    biggest = int(max(sizes_mb, default=0) * MB)
    config = _config(work, pki, port, backend_port, max(4 * biggest, 1 * MB))
    backend = await _backend(backend_port)
    results: dict[str, Any] = {"channel": channel, "padding": padding, "source": str(source), "bigDocuments": []}
    with EmbeddedRedis(work / "redis") as embedded:
        redis = Redis.from_url(embedded.url)
        environment = {**os.environ, "REDIS_URL": embedded.url, "PYTHONPATH": str(source)}
        gateway = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--log-level", "WARNING", "serve",
                                    "--config", str(config)], env=environment, cwd=source,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(f"{base}/health")
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
                small_doc = padded_application(person, 0)
                for _ in range(5):  # warm up: imports, caches, connection pools
                    await _send(http, base, channel, small_doc, BIG_SERVICE)
                # Redis bytes per small application
                before = await _redis_numbers(redis)
                for _ in range(small):
                    await _send(http, base, channel, small_doc, BIG_SERVICE)
                await asyncio.sleep(1.5)  # appendfsync everysec: let the AOF catch up
                after = await _redis_numbers(redis)
                results["smallApplications"] = {
                    "count": small, "documentBytes": len(small_doc),
                    "redisBytesPerApplication": (after["used"] - before["used"]) / small,
                    "aofBytesPerApplication": (after["aof"] - before["aof"]) / small,
                }
                for size_mb in sizes_mb:
                    document = padded_application(person, int(size_mb * MB), padding)
                    idle = await _settle(gateway.pid)
                    reset = _reset_peak(gateway.pid)
                    hwm_before = _status_kb(gateway.pid, "VmHWM")
                    await redis.config_resetstat()
                    before = await _redis_numbers(redis)
                    started = time.perf_counter()
                    await _send(http, base, channel, document, BIG_SERVICE)
                    elapsed = time.perf_counter() - started
                    hwm = _status_kb(gateway.pid, "VmHWM")
                    await asyncio.sleep(1.5)
                    after = await _redis_numbers(redis)
                    after_rss = await _settle(gateway.pid, 0.5)
                    peak_above = (hwm - idle) * 1024
                    results["bigDocuments"].append({
                        "sizeMB": size_mb, "documentBytes": len(document), "seconds": round(elapsed, 3),
                        "idleRssMB": idle / 1024, "peakRssAboveIdleMB": peak_above / MB,
                        "peakRssAboveIdleTimesPayload": peak_above / len(document),
                        "peakReset": reset, "hwmBeforeMB": hwm_before / 1024, "rssAfterMB": after_rss / 1024,
                        "redisUsedDeltaMB": (after["used"] - before["used"]) / MB,
                        "redisPeakAboveBeforeMB": (after["peak"] - before["used"]) / MB,
                        "aofDeltaMB": (after["aof"] - before["aof"]) / MB,
                    })
        finally:
            gateway.terminate()
            gateway.wait()
            await redis.aclose()
            await backend.cleanup()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10", help="document sizes in MB, comma-separated")
    parser.add_argument("--small", type=int, default=200, help="small applications for the bytes per application")
    parser.add_argument("--channel", choices=("soap", "rest"), default="soap")
    parser.add_argument("--source", type=Path, default=REPO, help="the checkout the gateway runs from")
    parser.add_argument("--padding", choices=("signed", "comment"), default="signed",
                        help="padding inside the signed content, or comments the signature leaves out")
    options = parser.parse_args(argv)
    sizes = tuple(float(s) for s in options.sizes.split(",") if s)
    results = asyncio.run(measure(sizes, options.small, options.channel, options.source.resolve(), options.padding))
    small = results["smallApplications"]
    print(f"gateway from {results['source']}, channel {results['channel']}, {results['padding']} padding")
    print(f"small applications ({small['count']}, document {small['documentBytes']:,} bytes): "
          f"Redis {small['redisBytesPerApplication']:,.0f} bytes/application in memory, "
          f"{small['aofBytesPerApplication']:,.0f} bytes/application of AOF")
    for big in results["bigDocuments"]:
        print(f"{big['sizeMB']:g} MB document ({big['documentBytes']:,} bytes, {big['seconds']:.2f} s): gateway peak "
              f"RSS {big['peakRssAboveIdleMB']:.1f} MB above idle {big['idleRssMB']:.1f} MB "
              f"(= {big['peakRssAboveIdleTimesPayload']:.1f}x the payload"
              f"{'' if big['peakReset'] else ', HWM not reset'}),"
              f" RSS after {big['rssAfterMB']:.1f} MB; Redis +{big['redisUsedDeltaMB']:.1f} MB kept, peak "
              f"+{big['redisPeakAboveBeforeMB']:.1f} MB, AOF +{big['aofDeltaMB']:.1f} MB")


if __name__ == "__main__":
    main()
