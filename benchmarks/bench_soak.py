"""Redis memory under a steady load longer than the retention window (issue 15, item 5): flat, or growing?

    .venv/bin/python benchmarks/bench_soak.py [--rate 20] [--seconds 60] [--retention-seconds 20]
                                              [--burst 1000] [--sample-seconds 2]

Real parts: an embedded redis-server (AOF on, ``appendfsync everysec``) owned by this script, the library mock and
`egov-gateway serve` in processes of their own; the load is REST reader registrations (sync), each a fresh
messageId, signed once (the same document is accepted under every messageId).

Two phases, each on a fresh Redis:

1. **Bytes per application** (``--burst``, no retention): that many applications as fast as 8 clients go; then
   ``used_memory`` delta / applications stored and AOF bytes per application (``aof_current_size`` delta; the
   AOF is not rewritten during the burst).
2. **The soak** (``--rate`` per second for ``--seconds``, finished applications retained
   ``--retention-seconds``): ``used_memory``, the AOF and the applications alive sampled every
   ``--sample-seconds``, printed as a curve; flat means the last third's mean is within 10 % of the middle
   third's once the window has passed. Retention is written as ``[retention]`` when the gateway knows that
   section (``RetentionSettings`` in ``gateway.config``); otherwise the soak shows the growth without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from lxml import etree
from redis.asyncio import Redis

from gateway.access.senders import hash_password
from gateway.shell.redis_embedded import EmbeddedRedis
from mocks.pki import TestPki, generate_pki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from tests.helpers import PORTAL, PORTAL_PASSWORD, free_port

PREFIX = "soak"


@dataclass(frozen=True)
class Sample:
    """One reading of Redis during the soak."""

    seconds: float
    "Since the load started."
    sent: int
    "Applications answered 200 so far."
    alive: int
    "Applications whose records are in Redis now."
    used_memory: int
    "INFO memory used_memory, bytes."
    aof: int
    "INFO persistence aof_current_size, bytes."


def retention_table(seconds: float) -> str:
    """The ``[retention]`` table for a window of ``seconds``, or "" when this gateway has no retention."""
    import gateway.config as config

    if seconds <= 0 or not hasattr(config, "RetentionSettings"):
        return ""
    return f"[retention]\nfinished_seconds = {seconds}\nsweep_interval_seconds = {max(0.5, seconds / 10)}\n"


def write_config(work: Path, pki: TestPki, port: int, library_port: int, retention: str) -> Path:
    config = work / "gateway.toml"
    keys = pki.systems["gateway"]
    config.write_text(f"""state_dir = "{work / 'state'}"
log_level = "WARNING"
[listen]
port = {port}
[redis]
key_prefix = "{PREFIX}"
[trust]
anchors = ["{pki.trust_anchors[0]}"]
intermediates = ["{pki.intermediates[0]}"]
[revocation]
mode = "off"
[signer]
cert = "{keys.cert}"
key = "{keys.key}"
[senders.{PORTAL}]
password_hash = "{hash_password(PORTAL_PASSWORD)}"
[services."{READER_TICKET_SERVICE}"]
endpoint = "http://127.0.0.1:{library_port}/api/v1/readers"
document_schema = "kazneb/reader-registration.xsd"
{retention}""")
    return config


@contextlib.contextmanager
def world(work: Path, pki: TestPki, redis_url: str, retention: str) -> Iterator[str]:
    """The library and one gateway in processes of their own; yields the gateway's URL."""
    library_port, port = free_port(), free_port()
    config = write_config(work, pki, port, library_port, retention)
    log = (work / "processes.log").open("ab")
    library = subprocess.Popen([sys.executable, "-m", "mocks.library", "--port", str(library_port)],
                               stdout=log, stderr=subprocess.STDOUT)
    gateway = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "serve", "--config", str(config)],
                               env={**os.environ, "REDIS_URL": redis_url}, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in (gateway, library):
            process.terminate()
            process.wait(20)
        log.close()


async def wait_ready(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with http.get(f"{url}/health") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def envelope(document: str) -> dict[str, object]:
    return {"requestInfo": {"messageId": str(uuid.uuid4()), "serviceId": READER_TICKET_SERVICE,
                            "messageDate": datetime.now(UTC).isoformat(),
                            "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
            "requestData": {"data": document}}


async def send(http: aiohttp.ClientSession, url: str, document: str) -> None:
    async with http.post(f"{url}/api/v1/requests", json=envelope(document)) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {body[:300]!r}")


async def reading(redis: Redis) -> tuple[int, int, int]:
    """(used_memory, aof_current_size, applications alive): an application is alive while its status key is."""
    memory, persistence = await redis.info("memory"), await redis.info("persistence")
    alive = 0
    async for _key in redis.scan_iter(match=f"{PREFIX}:app:*:status", count=1000):
        alive += 1
    return int(memory["used_memory"]), int(persistence.get("aof_current_size", 0)), alive


async def burst(work: Path, pki: TestPki, document: str, count: int) -> None:
    """Phase 1: bytes per application with nothing ever leaving Redis."""
    with EmbeddedRedis(work / "redis-burst") as server, world(work, pki, server.url, "") as url:
        redis = Redis.from_url(server.url)
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, url)
            await send(http, url, document)  # warm: connections, caches, the first keys of every kind
            memory0, aof0, alive0 = await reading(redis)
            queue = iter(range(count))

            async def client() -> None:
                for _ in queue:
                    await send(http, url, document)

            started = time.monotonic()
            await asyncio.gather(*(client() for _ in range(8)))
            elapsed = time.monotonic() - started
            memory, aof, alive = await reading(redis)
        await redis.aclose()
    stored = alive - alive0
    print(f"phase 1, {count} applications in {elapsed:.1f} s ({count / elapsed:.0f}/s), no retention:")
    print(f"  Redis used_memory {memory0 / 2**20:.1f} -> {memory / 2**20:.1f} MiB: "
          f"{(memory - memory0) / max(1, stored):,.0f} bytes per application ({stored} stored)")
    print(f"  AOF {aof0 / 2**20:.1f} -> {aof / 2**20:.1f} MiB: {(aof - aof0) / max(1, count):,.0f} bytes "
          "per application")
    print(f"  at a million applications a day: {(memory - memory0) / max(1, stored) * 1e6 / 2**30:.1f} GiB "
          "of RAM a day without retention\n")


async def soak(work: Path, pki: TestPki, document: str, rate: float, seconds: float, retention_seconds: float,
               sample_seconds: float) -> list[Sample]:
    """Phase 2: a steady ``rate`` for ``seconds``, Redis sampled every ``sample_seconds``."""
    table = retention_table(retention_seconds)
    print(f"phase 2, soak: {rate:g}/s for {seconds:g} s; retention "
          + (f"{retention_seconds:g} s after the final state" if table else "none (this gateway has no [retention])"))
    samples: list[Sample] = []
    with EmbeddedRedis(work / "redis-soak") as server, world(work, pki, server.url, table) as url:
        redis = Redis.from_url(server.url)
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, url)
            sent = 0
            started = time.monotonic()

            async def one(n: int) -> None:
                nonlocal sent
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))  # the offered rate
                await send(http, url, document)
                sent += 1

            async def sampler() -> None:
                while True:
                    memory, aof, alive = await reading(redis)
                    samples.append(Sample(time.monotonic() - started, sent, alive, memory, aof))
                    await asyncio.sleep(sample_seconds)

            sampling = asyncio.ensure_future(sampler())
            await asyncio.gather(*(one(n) for n in range(int(rate * seconds))))
            sampling.cancel()
            memory, aof, alive = await reading(redis)
            samples.append(Sample(time.monotonic() - started, sent, alive, memory, aof))
        await redis.aclose()
    return samples


def report(samples: list[Sample], retention_seconds: float) -> None:
    top = max(s.used_memory for s in samples)
    print(f"  {'t (s)':>6} {'sent':>6} {'alive':>6} {'used_memory':>12} {'AOF':>9}")
    for s in samples:
        bar = "#" * round(40 * s.used_memory / top)
        print(f"  {s.seconds:6.1f} {s.sent:6d} {s.alive:6d} {s.used_memory / 2**20:9.2f} MiB "
              f"{s.aof / 2**20:6.2f} MiB {bar}")
    third = max(1, len(samples) // 3)
    middle = statistics.mean(s.used_memory for s in samples[third:2 * third])
    last = statistics.mean(s.used_memory for s in samples[2 * third:])
    flat = abs(last - middle) <= 0.1 * middle
    steady = samples[-1]
    first = samples[0]
    per_app = (steady.used_memory - first.used_memory) / max(1, steady.alive - first.alive)
    print(f"  middle third {middle / 2**20:.2f} MiB, last third {last / 2**20:.2f} MiB: "
          + ("flat" if flat else f"growing ({100 * (last - middle) / middle:+.0f} %)"))
    print(f"  at the end: {steady.alive} of {steady.sent} applications alive, "
          f"{per_app:,.0f} bytes per alive application above the start, "
          f"AOF {(steady.aof - first.aof) / max(1, steady.sent):,.0f} bytes per application sent")
    if retention_seconds > 0:
        print(f"  the window is {retention_seconds:g} s: about rate x window applications stay alive")


async def main(options: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="egov-soak-"))
    pki = generate_pki(work / "pki")
    document = etree.tostring(signed_application(pki.person("aigerim"), READER_TICKET_SERVICE)).decode()
    print(f"signed application: {len(document)} bytes; python {sys.version.split()[0]}; work {work}\n")
    if options.burst:
        await burst(work, pki, document, options.burst)
    samples = await soak(work, pki, document, options.rate, options.seconds, options.retention_seconds,
                         options.sample_seconds)
    report(samples, options.retention_seconds if retention_table(options.retention_seconds) else 0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="applications per second in the soak")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the soak")
    parser.add_argument("--retention-seconds", type=float, default=20.0,
                        help="finished applications leave Redis this long after their final state (0: never)")
    parser.add_argument("--burst", type=int, default=1000, help="applications in the bytes-per-application phase")
    parser.add_argument("--sample-seconds", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))
