"""Faults of processes, storage and connections, against real gateway processes (issue 10, part B).

Each test starts `egov-gateway serve` as a process of its own (an embedded redis-server under its state
directory, or the session's Redis), drives it over real sockets and breaks something for real: SIGKILLs
the embedded redis-server or the parent of `serve --workers 2`, fills a tmpfs mounted as the Redis
directory, holds idle connections above a low RLIMIT_NOFILE, or trickles request heads (slowloris).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree

from gateway.access.senders import hash_password
from gateway.shell.serve import start_site
from mocks.library import create_library_app
from mocks.pki import TestPki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from tests.helpers import CLI, PORTAL, PORTAL_PASSWORD, free_port, system_signer

pytestmark = pytest.mark.faults

OPS_PASSWORD = "faults-ops-password"
OPS = {"Authorization": aiohttp.encode_basic_auth("ops", OPS_PASSWORD)}
PORTAL_AUTH = {"Authorization": aiohttp.encode_basic_auth(PORTAL, PORTAL_PASSWORD)}
PEOPLE = ("daniyar", "saule", "aigerim")


# --- a gateway process ------------------------------------------------------------------------------------


def write_config(directory: Path, pki: TestPki, port: int, library_url: str, *, listen: str = "",
                 redis: str = "") -> Path:
    """A real configuration: embedded Redis under ``directory/state``, the library mock as reader-ticket back-end."""
    keys = pki.systems["gateway"]
    config = directory / "gateway.toml"
    config.write_text(f"""
state_dir = "{directory / 'state'}"
[listen]
port = {port}
{listen}
[redis]
{redis}
[trust]
anchors = ["{pki.trust_anchors[0]}"]
intermediates = ["{pki.intermediates[0]}"]
[signer]
cert = "{keys.cert}"
key = "{keys.key}"
[revocation]
mode = "off"
[senders.portal]
password_hash = "{hash_password(PORTAL_PASSWORD)}"
cabinet = true
[senders.ops]
password_hash = "{hash_password(OPS_PASSWORD)}"
operator = true
[services."{READER_TICKET_SERVICE}"]
endpoint = "{library_url}/api/v1/readers"
document_schema = "kazneb/reader-registration.xsd"
retry_attempts = 2
retry_base_seconds = 0.05
""")
    return config


class GatewayProcess:
    """`egov-gateway serve` in a process of its own; its output goes to a file (never a pipe that can fill)."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None,
                 preexec: Callable[[], None] | None = None) -> None:
        self.port = int(next(line for line in config.read_text().splitlines() if line.startswith("port = "))[7:])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / f"gateway-{uuid.uuid4().hex[:6]}.log"
        self.crashed: list[tuple[int, str | None]] = []
        environment = {**os.environ, **(env or {})}
        if env is None:
            environment.pop("REDIS_URL", None)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([*CLI, "serve", "--config", str(config), *args], env=environment,
                                            stdout=out, stderr=subprocess.STDOUT, preexec_fn=preexec)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def up(self, seconds: float = 40) -> None:
        await wait_until(self._healthy, seconds, f"{self.url}/health did not answer 200", process=self)

    async def _healthy(self) -> bool:
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http, \
                    http.get(f"{self.url}/health") as response:
                return response.status == 200
        return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; also kills whatever of its descendants outlived it (never left behind)."""
        family = [(pid, started(pid)) for pid in descendants(self.process.pid)] + self.crashed
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid, start in family:
            if start is not None and started(pid) == start:  # the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def crash(self, *, settle: bool = True) -> list[int]:
        """SIGKILL the gateway; returns the pids of its descendants as they were. ``settle``: wait (bounded)
        until they are gone too, so the next gateway never shares the data directory with an old server."""
        family = descendants(self.process.pid)
        self.crashed += [(pid, started(pid)) for pid in family]
        self.process.kill()
        self.process.wait()
        deadline = time.monotonic() + 10
        while settle and any(alive(pid) for pid in family) and time.monotonic() < deadline:
            time.sleep(0.05)
        return family


async def wait_until(check: Callable[[], Any], seconds: float, what: str, *,
                     process: GatewayProcess | None = None) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        if process is not None and process.process.poll() is not None:
            raise AssertionError(f"the gateway exited with {process.process.returncode}:\n{process.output()[-3000:]}")
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def started(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat): tells a process from a later one with its pid."""
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.asynccontextmanager
async def library(pki: TestPki) -> AsyncIterator[str]:
    """The KazNEB mock, the reader-ticket back-end, on a real socket in this process."""
    port = free_port()
    runner = await start_site(create_library_app(signer=system_signer(pki, "library")), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# --- applications -----------------------------------------------------------------------------------------


def application(pki: TestPki, n: int) -> tuple[str, str, bytes]:
    """(owner IIN, messageId, REST body) of a freshly signed reader registration."""
    person = pki.person(PEOPLE[n % len(PEOPLE)])
    mid = str(uuid.uuid4())
    document = signed_application(person, READER_TICKET_SERVICE)
    body = json.dumps({
        "requestInfo": {"messageId": mid, "serviceId": READER_TICKET_SERVICE,
                        "messageDate": datetime.now(UTC).isoformat(),
                        "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
        "requestData": {"data": etree.tostring(document, encoding="unicode")}}).encode()
    return person.iin, mid, body


async def submit(http: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST one application; (status, JSON body, headers); status 0 when the connection failed."""
    try:
        async with http.post(f"{url}/api/v1/requests", data=body,
                             headers={"Content-Type": "application/json"}) as response:
            return response.status, await response.json(content_type=None), dict(response.headers)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0, {}, {}


async def final_status(http: aiohttp.ClientSession, url: str, owner: str, mid: str) -> str | None:
    """The application's status in the cabinet, or None if the gateway does not know it (lost)."""
    async with http.get(f"{url}/api/v1/cabinet/{owner}/applications/{mid}", headers=PORTAL_AUTH) as response:
        if response.status == 404:
            return None
        assert response.status == 200, await response.text()
        return str((await response.json())["status"])


async def assert_none_lost(http: aiohttp.ClientSession, url: str, acked: list[tuple[str, str]]) -> None:
    statuses = [await final_status(http, url, owner, mid) for owner, mid in acked]
    lost = [mid for (_owner, mid), status in zip(acked, statuses, strict=True) if status is None]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged applications are lost"
    assert set(statuses) == {"completed"}, statuses


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
        for _ in range(600):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", gateway.port))
            idle.append(sock)
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
