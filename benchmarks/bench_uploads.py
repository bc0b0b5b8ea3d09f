"""Big packages through the gateway (issue 17): measured, never asserted in tests.

    .venv/bin/python benchmarks/bench_uploads.py [--size-mb 1024] [--chunk-mb 8] [--work /tmp]

A generated package (random bytes, streamed from disk, deleted afterwards) is uploaded over tus through a real
`egov-gateway serve` process on loopback, then read back through ``StoredPackage.chunks()`` into a loopback
receiver by ``connectors.streaming.send_stream``. Prints MB/s for each leg and the gateway's resident memory
(/proc/<pid>/status VmRSS, and VmHWM, its peak, reset after the warm-up) above its idle baseline; then an upload
cut at 50% and resumed, with the bytes sent in total. Targets: >= 200 MB/s, <= 64 MB above idle, ~1.0x bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from connectors.streaming import StreamedBody, send_stream
from gateway.access.senders import hash_password
from gateway.config import Settings, UploadSettings
from gateway.packages.packages import Packages
from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.serve import start_site
from gateway.uploads.client import create_upload, file_chunks, upload_offset, upload_package
from gateway.uploads.headers import OFFSET_TYPE, TUS_VERSION
from mocks.pki import generate_pki
from tests.helpers import PORTAL, PORTAL_PASSWORD, free_port

MB = 1024 * 1024
AUTH = aiohttp.encode_basic_auth(PORTAL, PORTAL_PASSWORD)


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its finished threads), from /proc/<pid>/stat."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def main_thread_cpu(pid: int) -> float:
    """utime + stime of a process's main thread (the gateway's event loop)."""
    return cpu_seconds_of(Path(f"/proc/{pid}/task/{pid}/stat"))


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def generate(path: Path, size: int) -> str:
    hasher = hashlib.sha256()
    block = 8 * MB
    with open(path, "wb", buffering=0) as stream:
        left = size
        while left:
            data = os.urandom(min(block, left))
            hasher.update(data)
            stream.write(data)
            left -= len(data)
    return hasher.hexdigest()


def write_config(work: Path, pki, port: int, uploads: str) -> Path:  # type: ignore[no-untyped-def]
    config = work / "gateway.toml"
    config.write_text(f"""state_dir = "{work / 'state'}"
log_level = "WARNING"
[listen]
port = {port}
[trust]
anchors = ["{pki.trust_anchors[0]}"]
intermediates = ["{pki.intermediates[0]}"]
[revocation]
mode = "off"
[signer]
cert = "{pki.systems['gateway'].cert}"
key = "{pki.systems['gateway'].key}"
[senders.{PORTAL}]
password_hash = "{hash_password(PORTAL_PASSWORD)}"
[uploads]
max_package_bytes = {8 * 1024 * MB}
{uploads}
""")
    return config


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


class RssWatch:
    """Samples the gateway's VmRSS every 20 ms while running (VmHWM gives the true peak afterwards)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._task = pid, 0, None  # type: ignore[var-annotated]

    async def _run(self) -> None:
        while True:
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
            await asyncio.sleep(0.02)

    def __enter__(self) -> RssWatch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        self._task.cancel()  # type: ignore[attr-defined]


async def upload_leg(url: str, path: Path, digest: str, pid: int, chunk: int) -> str:
    idle = status_kb(pid, "VmRSS")
    reset_peak(pid)
    async with aiohttp.ClientSession() as session:
        start, cpu, own = time.perf_counter(), cpu_seconds(pid), cpu_seconds(os.getpid())
        loop_cpu, load = main_thread_cpu(pid), os.getloadavg()[0]
        with RssWatch(pid) as watch:
            location = await upload_package(session, url, AUTH, path, sha256=digest, chunk_size=chunk)
        elapsed, cpu, own = time.perf_counter() - start, cpu_seconds(pid) - cpu, cpu_seconds(os.getpid()) - own
        loop_cpu = main_thread_cpu(pid) - loop_cpu
    size = path.stat().st_size
    peak = max(status_kb(pid, "VmHWM"), watch.peak_kb)
    print(f"upload   {size / MB:,.0f} MB in {elapsed:.2f} s: {size / MB / elapsed:,.0f} MB/s "
          f"(client and gateway sharing {os.cpu_count()} cores)")
    print(f"         CPU: gateway {cpu:.2f} s ({size / MB / cpu:,.0f} MB per CPU second; event loop {loop_cpu:.2f} s, "
          f"worker threads {cpu - loop_cpu:.2f} s), client {own:.2f} s")
    print(f"         load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"         gateway RSS idle {idle / 1024:.1f} MB, peak {peak / 1024:.1f} MB: "
          f"+{(peak - idle) / 1024:.1f} MB above idle (target <= 64)")
    return location


async def read_back_leg(settings: Settings, redis_url: str, digest: str) -> None:
    """StoredPackage.chunks() -> send_stream -> a loopback receiver that hashes what arrives."""
    received = {"bytes": 0, "sha256": ""}

    async def receive(request: web.Request) -> web.Response:
        hasher = hashlib.sha256()
        async for block in request.content.iter_chunked(1 << 20):
            hasher.update(block)
            received["bytes"] += len(block)
        received["sha256"] = hasher.hexdigest()
        return web.Response(status=201)

    app = web.Application()
    app.router.add_put("/deposit", receive)
    port = free_port()
    runner = await start_site(app, "127.0.0.1", port)
    redis = Redis.from_url(redis_url)
    try:
        packages = Packages.build(redis, settings)
        stored = await packages.find_package(PORTAL, digest)
        assert stored is not None, "the uploaded package is not findable"
        own = os.getpid()
        idle = status_kb(own, "VmRSS")
        reset_peak(own)
        async with aiohttp.ClientSession() as session:
            start = time.perf_counter()
            await send_stream(session, f"http://127.0.0.1:{port}/deposit",
                              StreamedBody(stored.chunks(4 * MB), stored.size, stored.sha256))
            elapsed = time.perf_counter() - start
        assert received == {"bytes": stored.size, "sha256": digest}, received
        peak = status_kb(own, "VmHWM")
        print(f"forward  {stored.size / MB:,.0f} MB in {elapsed:.2f} s: {stored.size / MB / elapsed:,.0f} MB/s "
              f"(chunks() -> send_stream -> loopback receiver, digest checked)")
        print(f"         forwarding process (bench, also the receiver) +{(peak - idle) / 1024:.1f} MB above idle")
        await stored.release()
    finally:
        await redis.aclose()
        await runner.cleanup()


async def resume_leg(url: str, path: Path, digest: str, chunk: int) -> None:
    size = path.stat().st_size
    half = size // 2
    sent = {"first": 0}

    async def first_half() -> AsyncIterator[bytes]:
        async for block in file_chunks(path, 0, chunk):
            block = block[: half - sent["first"]]
            sent["first"] += len(block)
            yield block
            if sent["first"] >= half:
                raise ConnectionAbortedError("the connection is cut at 50%")

    async with aiohttp.ClientSession() as session:
        location = await create_upload(session, url, AUTH, length=size, sha256=digest, filename=path.name)
        headers = {"Tus-Resumable": TUS_VERSION, "Authorization": AUTH, "Content-Type": OFFSET_TYPE,
                   "Upload-Offset": "0", "Content-Length": str(size)}
        with contextlib.suppress(aiohttp.ClientError, ConnectionAbortedError):
            async with session.patch(location, headers=headers, data=first_half()) as response:
                await response.read()
    async with aiohttp.ClientSession() as session:  # a new connection, as after a real cut
        offset, _ = await upload_offset(session, location, AUTH)
        marks: list[int] = []
        start = time.perf_counter()
        await upload_package(session, url, AUTH, path, resume_url=location, chunk_size=chunk,
                             on_progress=lambda done, _total: marks.append(done))
        elapsed = time.perf_counter() - start
        final, length = await upload_offset(session, location, AUTH)
    second = (marks[-1] - offset) if marks else 0
    total = sent["first"] + second
    print(f"resume   cut after {sent['first'] / MB:,.0f} MB; HEAD said {offset / MB:,.0f} MB; resumed with "
          f"{second / MB:,.0f} MB in {elapsed:.2f} s; complete {final == length}")
    print(f"         bytes sent in total {total / MB:,.0f} MB = {total / size:.3f}x the package (target ~1.0x)")


async def run(work: Path, size: int, chunk: int, uploads: str) -> None:
    print(f"generating a {size / MB:,.0f} MB package in {work}")
    path = work / "package.bin"
    digest = generate(path, size)
    pki = generate_pki(work / "pki")
    port = free_port()
    config = write_config(work, pki, port, uploads)
    with EmbeddedRedis(work / "redis") as redis_server:
        environment = {**os.environ, "REDIS_URL": redis_server.url,
                       "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        gateway = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--log-level", "WARNING", "serve",
                                    "--config", str(config)], env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            await wait_ready(f"{url}/health")
            print(f"gateway pid {gateway.pid}: RSS after start {status_kb(gateway.pid, 'VmRSS') / 1024:.1f} MB")
            warm = work / "warm.bin"
            async with aiohttp.ClientSession() as session:  # warm-up: threads, buffers, lazy imports
                await upload_package(session, url, AUTH, warm, sha256=generate(warm, 16 * MB))
            await asyncio.sleep(0.5)
            await upload_leg(url, path, digest, gateway.pid, chunk)
            settings = Settings(state_dir=work / "state", uploads=UploadSettings())
            await read_back_leg(settings, redis_server.url, digest)
            await resume_leg(url, path, digest, chunk)
        finally:
            gateway.terminate()
            gateway.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--chunk-mb", type=int, default=8, help="the client's read and send chunk")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--write-buffer-kb", type=int, default=None, help="[uploads] write_buffer_bytes / 1024")
    parser.add_argument("--no-fsync", action="store_true", help="[uploads] fsync = false")
    args = parser.parse_args()
    uploads = "\n".join(([f"write_buffer_bytes = {args.write_buffer_kb * 1024}"] if args.write_buffer_kb else [])
                         + (["fsync = false"] if args.no_fsync else []))
    print(f"[uploads] {uploads or 'defaults'}; client chunk {args.chunk_mb} MB")
    work = Path(tempfile.mkdtemp(prefix="bench-uploads-", dir=args.work))
    try:
        asyncio.run(run(work, args.size_mb * MB, args.chunk_mb * MB, uploads))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
