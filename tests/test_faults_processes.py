"""Faults of processes, storage and connections, against real gateway processes (issue 10, part B).

Each test starts `egov-gateway serve` as a process of its own (an embedded redis-server under its state
directory, or the session's Redis), drives it over real sockets and breaks something for real: SIGKILLs
the embedded redis-server, a worker or the parent of `serve --workers 2`, fills a tmpfs mounted as the
Redis directory, holds idle connections above a low RLIMIT_NOFILE, or trickles request heads (slowloris).
The process helpers are in tests/processes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import free_port
from tests.processes import (
    OPS,
    GatewayProcess,
    alive,
    application,
    assert_none_lost,
    cmdline,
    descendants,
    library,
    port_open,
    submit,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.faults

# --- the tests --------------------------------------------------------------------------------------------


async def test_embedded_redis_killed_under_traffic_is_restarted_and_nothing_is_lost(pki, tmp_path: Path) -> None:
    async with library(pki) as library_url:
        gateway = GatewayProcess(write_config(tmp_path, pki, free_port(), library_url))
        try:
            await gateway.up()
            redis_pids = [pid for pid in descendants(gateway.process.pid) if "redis-server" in cmdline(pid)]
            assert len(redis_pids) == 1
            acked: list[tuple[str, str]] = []
            refused: list[tuple[int, str]] = []
            killed = asyncio.Event()
            bodies = [application(pki, n) for n in range(120)]

            async def sender(http: aiohttp.ClientSession) -> None:
                while bodies:
                    owner, mid, body = bodies.pop()
                    status, answer, _ = await submit(http, gateway.url, body)
                    if status == 200:
                        acked.append((owner, mid))
                        if len(acked) == 30:
                            os.kill(redis_pids[0], signal.SIGKILL)
                            killed.set()
                    else:
                        refused.append((status, answer.get("code", "")))
                        await asyncio.sleep(0.05)

            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
                await asyncio.wait_for(asyncio.gather(*(sender(http) for _ in range(6))), 90)
                assert killed.is_set()
                assert len(acked) >= 80, f"only {len(acked)} acknowledged; refusals: {refused[:5]}"
                assert {code for _status, code in refused} <= {"GATEWAY_STORAGE_UNAVAILABLE"}, refused
                async with http.get(f"{gateway.url}/health/details", headers=OPS) as response:
                    details = await response.json()
                assert details["embeddedRedis"]["restarts"] == 1, details
                assert details["embeddedRedis"]["running"] is True
                assert details["embeddedRedis"]["lastRestart"]
                await assert_none_lost(http, gateway.url, acked)
            new = [pid for pid in descendants(gateway.process.pid) if "redis-server" in cmdline(pid)]
            assert len(new) == 1 and new != redis_pids
            assert "restarting it on the same data" in gateway.output()
        finally:
            gateway.stop()
    assert "Traceback" not in gateway.output()


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int = 12):  # type: ignore[no-untyped-def]
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte."""
    filler = directory / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 65536)
    with contextlib.suppress(OSError), filler.open("ab") as out:
        while True:
            out.write(b"\0")
            out.flush()
    assert shutil.disk_usage(directory).free < 4096
    return filler


async def test_full_disk_refuses_until_freed_and_nothing_acknowledged_is_lost(pki, tmp_path: Path) -> None:
    with small_disk(tmp_path / "state" / "redis") as redis_dir:
        async with library(pki) as library_url, aiohttp.ClientSession() as http:
            config = write_config(tmp_path, pki, free_port(), library_url)
            acked: list[tuple[str, str]] = []

            async def send(count: int, expect: int) -> None:
                for n in range(count):
                    owner, mid, body = application(pki, n)
                    status, answer, headers = await submit(http, gateway.url, body)
                    assert status == expect, answer
                    if status == 200:
                        acked.append((owner, mid))
                    else:
                        assert answer["code"] == "GATEWAY_STORAGE_NOT_DURABLE", (answer, gateway.output()[-1500:])
                        assert headers.get("Retry-After")

            gateway = GatewayProcess(config)
            try:
                await gateway.up()
                await send(5, 200)
                filler = fill(redis_dir)
                await send(4, 503)  # while full: refused, with the new code
            finally:
                gateway.crash()
            gateway = GatewayProcess(config)  # restarted on the full disk: it must refuse, not acknowledge
            try:
                await gateway.up()
                await send(4, 503)
            finally:
                gateway.crash()  # a crash before space returns
            filler.unlink()
            gateway = GatewayProcess(config)
            try:
                await gateway.up()
                await send(3, 200)  # acceptance recovers once space is freed
                await assert_none_lost(http, gateway.url, acked)
                assert len(acked) == 8
            finally:
                gateway.stop()


async def test_workers_die_with_their_parent(pki, tmp_path: Path) -> None:
    async with library(pki) as library_url:
        gateway = GatewayProcess(write_config(tmp_path, pki, free_port(), library_url), "--workers", "2")
        try:
            await gateway.up()
            await wait_until(lambda: sum("spawn_main" in cmdline(p) for p in descendants(gateway.process.pid)) >= 2,
                             20, "two workers")
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{gateway.url}/health/details", headers=OPS) as response:
                # the supervisor's board is shared memory: a worker reports the parent's embedded server
                assert (await response.json())["embeddedRedis"] == {"running": True, "restarts": 0,
                                                                    "lastRestart": None}
            kinds = {pid: cmdline(pid) for pid in descendants(gateway.process.pid)}
            family = gateway.crash(settle=False)
            assert sum("spawn_main" in line for line in kinds.values()) == 2, kinds
            assert any("resource_tracker" in line for line in kinds.values()), kinds
            assert any("redis-server" in line for line in kinds.values()), kinds
            await wait_until(lambda: not port_open(gateway.port), 5, "a process still serves the port")
            await wait_until(lambda: not any(alive(pid) for pid in family), 5,
                             f"orphans: {[cmdline(pid) for pid in family if alive(pid)]}")
        finally:
            gateway.stop()
        assert "Traceback" not in gateway.output()


def low_descriptor_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


async def test_idle_connections_above_the_descriptor_limit_are_refused_cleanly(pki, redis_url: str,
                                                                               tmp_path: Path) -> None:
    """600 idle connections against a process allowed 512 descriptors: the cap (512 less the reserve) keeps
    accept() working; the excess gets a quick 503; a normal client is served or cleanly refused, never left
    hanging; the idle ones are closed after the header timeout and service is normal again."""
    config = write_config(tmp_path, pki, free_port(), f"http://127.0.0.1:{free_port()}",
                          listen="header_timeout_seconds = 3\nerror_log_seconds = 60", redis="max_connections = 20")
    gateway = GatewayProcess(config, env={"REDIS_URL": redis_url}, preexec=low_descriptor_limit(512))
    idle: list[socket.socket] = []
    try:
        await gateway.up()
        idle = open_idle(gateway.port, 600)
        statuses = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            for _ in range(5):
                async with http.get(f"{gateway.url}/health") as response:  # a timeout would raise here
                    statuses.append(response.status)
                    if response.status == 503:
                        assert (await response.json(content_type=None))["code"] == "GATEWAY_OVERLOADED"
                        assert response.headers["Retry-After"] == "1"
            assert set(statuses) <= {200, 503}

            async def served() -> bool:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{gateway.url}/health") as response:
                        return response.status == 200
                return False

            await wait_until(served, 15, "normal service did not come back after the idle connections were closed")
        output = gateway.output()
        assert "WARNING egov.connections the open-files limit is 512: " in output  # the start-up check
        assert output.count("out of system resource") == 0, "asyncio's traceback per failed accept()"
        assert output.count("accept() failed") <= 3
        assert output.count("refused a connection") <= 3
        assert "Traceback" not in output
    finally:
        for sock in idle:
            sock.close()
        gateway.stop()


def open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never send a byte."""
    idle = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        idle.append(sock)
    return idle


async def test_failed_accepts_are_logged_once_per_interval(pki, redis_url: str, tmp_path: Path) -> None:
    """A cap set above the descriptor limit: accept() does fail (EMFILE), and says so once, not per attempt."""
    config = write_config(tmp_path, pki, free_port(), f"http://127.0.0.1:{free_port()}",
                          listen="header_timeout_seconds = 3\nmax_connections = 5000", redis="max_connections = 20")
    gateway = GatewayProcess(config, env={"REDIS_URL": redis_url}, preexec=low_descriptor_limit(256))
    idle: list[socket.socket] = []
    try:
        await gateway.up()
        idle = open_idle(gateway.port, 400)
        await wait_until(lambda: "accept() failed" in gateway.output(), 15, "accept() never failed", process=gateway)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def served() -> bool:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{gateway.url}/health") as response:
                        return response.status == 200
                return False

            await wait_until(served, 20, "normal service did not come back after the idle connections were closed")
        output = gateway.output()
        assert output.count("accept() failed") == 1, output[-2000:]
        assert "out of system resource" not in output, "asyncio's traceback per failed accept()"
        assert "Traceback" not in output
    finally:
        for sock in idle:
            sock.close()
        gateway.stop()


async def test_slowloris_connections_are_closed_after_the_header_timeout(pki, redis_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, pki, free_port(), f"http://127.0.0.1:{free_port()}",
                          listen="header_timeout_seconds = 1.5")
    gateway = GatewayProcess(config, env={"REDIS_URL": redis_url})
    try:
        await gateway.up()
        slow = []
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append((reader, writer))
        started = time.monotonic()

        async def trickle_until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
            with contextlib.suppress(ConnectionError):
                while time.monotonic() - started < 10:
                    writer.write(b"X-Slow: 1\r\n")  # a header line now and then: never a complete head
                    with contextlib.suppress(TimeoutError):
                        if await asyncio.wait_for(reader.read(1024), 0.3) == b"":
                            break
            writer.close()
            return time.monotonic() - started

        trickling = asyncio.gather(*(trickle_until_closed(r, w) for r, w in slow))
        async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/health") as response:
            assert response.status == 200  # normal traffic is served meanwhile
        closed_after = await trickling
        assert max(closed_after) < 5, f"slowloris connections still open after {max(closed_after):.1f} s"
        assert min(closed_after) >= 1.0
    finally:
        gateway.stop()


async def test_a_worker_that_keeps_dying_is_restarted_then_the_parent_gives_up(pki, redis_url: str,
                                                                              tmp_path: Path) -> None:
    config = write_config(tmp_path, pki, free_port(), f"http://127.0.0.1:{free_port()}")
    gateway = GatewayProcess(config, "--workers", "2", env={"REDIS_URL": redis_url})

    def workers() -> set[int]:
        return {pid for pid in descendants(gateway.process.pid) if "spawn_main" in cmdline(pid) and alive(pid)}

    try:
        await gateway.up()
        killed: set[int] = set()
        for _ in range(4):  # three restarts are allowed within the window; the fourth death ends the parent
            current = await wait_until(lambda: workers() - killed, 20, "a worker was not started again",
                                       process=None if killed else gateway)
            victim = min(current)
            os.kill(victim, signal.SIGKILL)
            killed.add(victim)
            if len(killed) == 1:
                await wait_until(lambda: len(workers() - killed) == 2, 20, "the killed worker was not replaced")
        assert await asyncio.to_thread(gateway.process.wait, 30) == 1
        await wait_until(lambda: not port_open(gateway.port), 5, "a process still serves the port")
        output = gateway.output()
        assert output.count("starting it again") == 3
        assert "workers were restarted in the last 60 s: stopping" in output
    finally:
        gateway.stop()
