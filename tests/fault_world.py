"""The world of the delivery fault tests: the gateway (``egov-gateway serve``) and the library mock
(``python -m mocks.library``), each in its own interpreter so either can be SIGKILLed, on the session's Redis
under a key prefix of their own; the commission desks as processes too. Requests to send them (REST and SOAP,
built by hand so a test sees the HTTP status and headers of every refusal: zeep hides ``Retry-After``; the
process fault tests send the SOAP ones too), and polling helpers with deadlines. Not a test module."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree

from gateway.access.senders import hash_password
from gateway.errors import CATALOGUE, RETRYABLE
from mocks.pki import TestPki
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE, signed_application
from schemas import ASYNC_OPERATIONS_NS
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    FINAL,
    PORTAL,
    PORTAL_PASSWORD,
    ROOT,
    SOAP_ENV,
    SYNC_TYPES,
    free_port,
)

PEOPLE = ("aigerim", "daniyar", "saule")
RETRYABLE_STATUS = (409, 429, 502, 503, 504)
"What a client resends after (the gateway's retryable refusals); anything else is an outcome."
PORTAL_AUTH = {"Authorization": aiohttp.encode_basic_auth(PORTAL, PORTAL_PASSWORD)}


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}
    env.pop("EGOV_OPERATOR_PASSWORD", None)
    return env


@dataclass
class Processes:
    """The processes a test started; :meth:`kill_all` kills whatever is left of them."""

    tmp_path: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"{name}-{len(self.started)}.log").open("wb")
        process = subprocess.Popen([sys.executable, *args], env=_env(**env), cwd=self.tmp_path,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.tmp_path.glob("*.log")))

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(10)


async def wait_until(check: Callable[[], Awaitable[Any]], seconds: float, what: str, *, every: float = 0.05) -> Any:
    """Poll ``check()`` (async) until it returns something truthy, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not within {seconds} s")


@dataclass
class World:
    """A library process and gateway processes sharing one Redis key prefix."""

    processes: Processes
    http: aiohttp.ClientSession
    redis_url: str
    config: Path
    library_url: str
    gateway_url: str = ""
    gateway: subprocess.Popen[bytes] | None = None
    kills: int = 0
    "Gateway processes SIGKILLed so far (a request that fails while this changes was cut off by a kill)."

    async def start_gateway(self) -> None:
        self.gateway = self.processes.spawn("gateway", ["-m", "gateway.shell.cli", "serve", "--config",
                                                        str(self.config)], REDIS_URL=self.redis_url)
        await self._healthy(f"{self.gateway_url}/health", self.gateway)

    def kill_gateway(self) -> None:
        assert self.gateway is not None
        self.gateway.send_signal(signal.SIGKILL)
        self.gateway.wait(10)
        self.kills += 1

    async def _healthy(self, url: str, process: subprocess.Popen[bytes]) -> None:
        async def up() -> bool:
            assert process.poll() is None, f"exited with {process.returncode}\n{self.processes.logs()}"
            try:
                async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False
        await wait_until(up, 60, f"{url} answering")

    async def library(self, action: str, body: Any = None) -> dict[str, Any]:
        if action == "stats":
            async with self.http.get(f"{self.library_url}/_control/stats") as response:
                return dict(await response.json())
        async with self.http.post(f"{self.library_url}/_control/{action}", json=body or {}) as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())

    async def library_has(self, requests: int) -> bool:
        return bool((await self.library("stats"))["requests"] >= requests)

    async def send(self, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One REST request: HTTP status, JSON body, headers."""
        async with self.http.post(f"{self.gateway_url}/api/v1/requests", data=body,
                                  headers={"Content-Type": "application/json"},
                                  timeout=aiohttp.ClientTimeout(total=30)) as response:
            return response.status, dict(await response.json(content_type=None)), dict(response.headers)

    async def soap(self, channel: str, envelope: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One SOAP request (:func:`soap_call`)."""
        return await soap_call(self.http, self.gateway_url, channel, envelope)

    async def outcome(self, body: bytes, seconds: float = 40) -> tuple[int, dict[str, Any]]:
        """Resend ``body`` (same messageId, same document) after every retryable refusal until an outcome."""
        async def attempt() -> tuple[int, dict[str, Any]] | None:
            try:
                status, answer, headers = await self.send(body)
            except (aiohttp.ClientError, TimeoutError):
                return None
            if status in RETRYABLE_STATUS and answer.get("code") != "CLIENT_DUPLICATE_MISMATCH":
                assert_retryable(status, answer.get("code"), headers, answer.get("retryAfterSeconds"))
                return None
            return status, answer
        result: tuple[int, dict[str, Any]] = await wait_until(attempt, seconds, "the real outcome", every=0.3)
        return result

    async def status(self, owner: str, mid: str) -> str | None:
        """The application's status in its owner's cabinet; None if the gateway does not know it."""
        async with self.http.get(f"{self.gateway_url}/api/v1/cabinet/{owner}/applications/{mid}",
                                 headers=PORTAL_AUTH) as response:
            if response.status == 404:
                return None
            assert response.status == 200, await response.text()
            return str((await response.json())["status"])

    async def settle(self, apps: dict[str, str], seconds: float = 60) -> dict[str, str | None]:
        """messageId -> status once every application (messageId -> owner) is final, or at the deadline."""
        now: dict[str, str | None] = {}

        async def final() -> bool:
            pending = [mid for mid in apps if now.get(mid) not in FINAL]
            found = await asyncio.gather(*(self.status(apps[mid], mid) for mid in pending))
            now.update(zip(pending, found, strict=True))
            return all(status in FINAL for status in now.values())
        with contextlib.suppress(AssertionError):
            await wait_until(final, seconds, "every application final", every=0.3)
        return now

    async def stored(self, owner: str) -> int:
        """Applications the gateway holds for ``owner`` (the cabinet's total: every copy would be listed)."""
        async with self.http.get(f"{self.gateway_url}/api/v1/cabinet/{owner}/applications?limit=1",
                                 headers=PORTAL_AUTH) as response:
            assert response.status == 200, await response.text()
            return int((await response.json())["total"])

    def desk(self, number: int) -> subprocess.Popen[bytes]:
        """A commission desk process (its finished steps kept in the session's Redis)."""
        return self.processes.spawn(f"desk{number}", [
            "-m", "mocks.backoffice", "run", "--gateway", self.gateway_url, "--library", self.library_url,
            "--sender", DESK, "--worker", f"desk-{number}", "--poll-wait", "1", "--redis", self.redis_url],
            BACKOFFICE_PASSWORD=DESK_PASSWORD)


def assert_retryable(status: int, code: str | None, headers: dict[str, str], seconds: Any) -> None:
    """A retryable refusal (a code of :data:`gateway.errors.RETRYABLE`, or any 503 code: also
    GATEWAY_STORAGE_NOT_DURABLE) says when to come back: the ``Retry-After`` header and ``retryAfterSeconds``."""
    assert code in RETRYABLE or (code in CATALOGUE and CATALOGUE[code].http_status == 503), (status, code)
    assert "Retry-After" in headers, f"{status} {code} without Retry-After"
    assert int(headers["Retry-After"]) >= 1 and seconds == int(headers["Retry-After"]), (headers, seconds)


SERVICE = """timeout_seconds = 2.0
retry_attempts = 2
retry_base_seconds = 0.1
retry_max_seconds = 0.5
breaker_failures = 2
breaker_reset_seconds = 1.0"""
"The reader-ticket service's settings unless a test names its own."


@contextlib.asynccontextmanager
async def delivery_world(pki: TestPki, redis_url: str, tmp_path: Path, *,
                         service: str = SERVICE) -> AsyncIterator[World]:
    """The library process, then a gateway process on it; every process killed at the end."""
    processes = Processes(tmp_path)
    library_port, gateway_port = free_port(), free_port()
    try:
        processes.spawn("library", ["-m", "mocks.library", "--port", str(library_port)])
        config = tmp_path / "gateway.toml"
        config.write_text(gateway_config(pki, gateway_port, library_port, service))
        async with aiohttp.ClientSession() as http:
            built = World(processes, http, redis_url, config, f"http://127.0.0.1:{library_port}",
                          f"http://127.0.0.1:{gateway_port}")
            await built._healthy(f"{built.library_url}/health", processes.started[0])
            await built.start_gateway()
            yield built
    finally:
        processes.kill_all()


def gateway_config(pki: TestPki, gateway_port: int, library_port: int, service: str) -> str:
    keys = pki.systems["gateway"]
    return f"""
log_level = "WARNING"
[listen]
port = {gateway_port}
[redis]
key_prefix = "faults-{uuid.uuid4().hex[:8]}"
[trust]
anchors = ["{pki.trust_anchors[0]}"]
intermediates = ["{pki.intermediates[0]}"]
[signer]
cert = "{keys.cert}"
key = "{keys.key}"
[revocation]
mode = "off"
[delivery]
lease_seconds = 3.0
idle_poll_seconds = 0.1
delivery_attempts = 100
[queue]
visibility_timeout_ms = 1500
max_attempts = 5
[senders.{PORTAL}]
password_hash = "{hash_password(PORTAL_PASSWORD)}"
cabinet = true
[senders.{DESK}]
password_hash = "{hash_password(DESK_PASSWORD)}"
services = []
jobs = ["{FUND_SUBMISSION_SERVICE}"]
[services."{FUND_SUBMISSION_SERVICE}"]
connector = "queue"
mode = "async"
document_schema = "kazneb/fund-submission.xsd"
result_schema = "kazneb/fund-decision.xsd"
applicant = "organisation"
required_roles = ["first_head", "can_sign"]
timeout_seconds = 2.0
[services."{READER_TICKET_SERVICE}"]
endpoint = "http://127.0.0.1:{library_port}/api/v1/readers"
{service}
"""


# --- requests -------------------------------------------------------------------------------------------


def rest_body(pki: TestPki, handle: str, mid: str | None = None, service: str = READER_TICKET_SERVICE) -> bytes:
    document = signed_application(pki.person(handle), service)
    return json.dumps({
        "requestInfo": {"messageId": mid or str(uuid.uuid4()), "serviceId": service,
                        "messageDate": datetime.now(UTC).isoformat(),
                        "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
        "requestData": {"data": etree.tostring(document, encoding="unicode")}}).encode()


def soap_envelope(pki: TestPki, handle: str, channel: str, mid: str | None = None) -> bytes:
    """A reader registration signed by ``handle`` as the portal's SyncChannel ``SendMessage`` (``sync``) or
    AsyncChannel ``sendMessage`` (``async``)."""
    info = (f"<messageId>{mid or uuid.uuid4()}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId>"
            + ("<messageType>REQUEST</messageType>" if channel == "async" else "")
            + f"<messageDate>{datetime.now(UTC).isoformat()}</messageDate>"
            f"<sender><senderId>{PORTAL}</senderId><password>{PORTAL_PASSWORD}</password></sender>")
    document = etree.tostring(signed_application(pki.person(handle), READER_TICKET_SERVICE), encoding="unicode")
    if channel == "sync":
        namespace, operation, parts = SYNC_TYPES, "SendMessage", ("requestInfo", "requestData")
    else:
        namespace, operation, parts = ASYNC_OPERATIONS_NS, "sendMessage", ("messageInfo", "messageData")
    return (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:t="{namespace}"><soap:Body><t:{operation}><request>'
            f"<{parts[0]}>{info}</{parts[0]}><{parts[1]}><data>{document}</data></{parts[1]}>"
            f"</request></t:{operation}></soap:Body></soap:Envelope>").encode()


async def soap_call(http: aiohttp.ClientSession, url: str, channel: str,
                    envelope: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST ``envelope`` to ``/shep/sync`` or ``/shep/async``: HTTP status, the answer's elements by local name
    (``errorData`` parsed; a Fault has ``errorCode``) and the headers."""
    async with http.post(f"{url}/shep/{channel}", data=envelope, headers={"Content-Type": "text/xml; charset=utf-8"},
                         timeout=aiohttp.ClientTimeout(total=30)) as response:
        root = etree.fromstring(await response.read())
        info: dict[str, Any] = {etree.QName(e).localname: e.text for e in root.iter() if isinstance(e.tag, str)}
        info["errorData"] = json.loads(info.get("errorData") or "{}")
        return response.status, info, dict(response.headers)


def soap_application(pki: TestPki, n: int) -> tuple[str, str, bytes]:
    """(owner IIN, messageId, SyncChannel SendMessage envelope) of a freshly signed reader registration."""
    mid, handle = str(uuid.uuid4()), PEOPLE[n % len(PEOPLE)]
    return pki.person(handle).iin, mid, soap_envelope(pki, handle, "sync", mid)


async def soap_submit(http: aiohttp.ClientSession, url: str, envelope: bytes) -> tuple[int, dict[str, Any],
                                                                                      dict[str, str]]:
    """SendMessage to ``/shep/sync`` (:func:`soap_call`); status 0 when the connection failed."""
    try:
        return await soap_call(http, url, "sync", envelope)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0, {}, {}


async def library_stats(http: aiohttp.ClientSession, library_url: str) -> dict[str, Any]:
    """The library's ``GET /_control/stats``: what it processed, which documents more than once."""
    async with http.get(f"{library_url}/_control/stats") as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


def result_of(answer: dict[str, Any]) -> str:
    data = answer["responseData"]["data"]
    assert data and "KAZNEB-" in data, answer
    return str(data)
