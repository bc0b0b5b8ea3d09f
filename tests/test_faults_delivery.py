"""Fault tests of delivery (issue 10, part A): nothing stuck, nothing lost, nothing processed twice.

Real processes: the gateway (``egov-gateway serve``) and the library mock (``python -m mocks.library``) each run
in their own interpreter and are killed with SIGKILL; Redis is the session's embedded server, each test under its
own key prefix. Duplicates are counted at the library (``GET /_control/stats``: a document processed more than
once, by the gateway's request id). Every wait polls with a deadline.
"""

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree
from redis.asyncio import Redis

from gateway.access.senders import hash_password
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE, signed_application
from tests.helpers import DESK, DESK_PASSWORD, FINAL, PORTAL, PORTAL_PASSWORD, ROOT, SOAP_ENV, SYNC_TYPES, free_port

pytestmark = pytest.mark.faults

PEOPLE = ("aigerim", "daniyar", "saule")
RETRYABLE_STATUS = (409, 429, 502, 503, 504)
"What a client resends after (the gateway's retryable refusals); anything else is an outcome."


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}
    env.pop("EGOV_OPERATOR_PASSWORD", None)
    return env


@dataclass
class Processes:
    """The processes a test started; all killed at the end whatever happened."""

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


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    for process in started.started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def wait_until(check: Any, seconds: float, what: str, *, every: float = 0.05) -> Any:
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

    async def start_gateway(self) -> None:
        self.gateway = self.processes.spawn("gateway", ["-m", "gateway.shell.cli", "serve", "--config",
                                                        str(self.config)], REDIS_URL=self.redis_url)
        await self._healthy(f"{self.gateway_url}/health", self.gateway)

    def kill_gateway(self) -> None:
        assert self.gateway is not None
        self.gateway.send_signal(signal.SIGKILL)
        self.gateway.wait(10)

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

    async def send(self, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One REST request: HTTP status, JSON body, headers."""
        async with self.http.post(f"{self.gateway_url}/api/v1/requests", data=body,
                                  headers={"Content-Type": "application/json"},
                                  timeout=aiohttp.ClientTimeout(total=30)) as response:
            return response.status, dict(await response.json(content_type=None)), dict(response.headers)

    async def outcome(self, body: bytes, seconds: float = 40) -> tuple[int, dict[str, Any]]:
        """Resend ``body`` (same messageId, same document) after every retryable refusal until an outcome."""
        async def attempt() -> tuple[int, dict[str, Any]] | None:
            try:
                status, answer, headers = await self.send(body)
            except (aiohttp.ClientError, TimeoutError):
                return None
            if status in RETRYABLE_STATUS and answer.get("code") != "CLIENT_DUPLICATE_MISMATCH":
                assert "Retry-After" in headers, f"{answer.get('code')} without Retry-After"
                return None
            return status, answer
        result: tuple[int, dict[str, Any]] = await wait_until(attempt, seconds, "the real outcome", every=0.3)
        return result


@pytest.fixture
async def world(processes: Processes, pki, redis_url: str, tmp_path: Path) -> World:
    library_port, gateway_port = free_port(), free_port()
    processes.spawn("library", ["-m", "mocks.library", "--port", str(library_port)])
    keys = pki.systems["gateway"]
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
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
timeout_seconds = 2.0
retry_attempts = 2
retry_base_seconds = 0.1
retry_max_seconds = 0.5
breaker_failures = 2
breaker_reset_seconds = 1.0
""")
    async with aiohttp.ClientSession() as http:
        built = World(processes, http, redis_url, config, f"http://127.0.0.1:{library_port}",
                      f"http://127.0.0.1:{gateway_port}")
        await built._healthy(f"{built.library_url}/health", processes.started[0])
        await built.start_gateway()
        yield built


def rest_body(pki, handle: str, mid: str | None = None, service: str = READER_TICKET_SERVICE) -> bytes:
    document = signed_application(pki.person(handle), service)
    return json.dumps({
        "requestInfo": {"messageId": mid or str(uuid.uuid4()), "serviceId": service,
                        "messageDate": datetime.now(UTC).isoformat(),
                        "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
        "requestData": {"data": etree.tostring(document, encoding="unicode")}}).encode()


def result_of(answer: dict[str, Any]) -> str:
    data = answer["responseData"]["data"]
    assert data and "KAZNEB-" in data, answer
    return str(data)


# ------------------------------------------------------------------------------------------ gateway killed


async def test_gateway_killed_mid_stream_loses_nothing_and_registers_nothing_twice(world: World, pki) -> None:
    """SIGKILL the gateway while sync calls are at the library: every application ends with its ticket, a resent
    messageId gets it (never 409 for good), what was answered before the kill stays the answer, and the library
    processed no document twice although the restarted gateway delivered the open ones again."""
    await world.library("fail", {"late": 0.8})  # tickets issued, answers held back long enough to be cut off
    bodies = [rest_body(pki, PEOPLE[i % len(PEOPLE)]) for i in range(12)]
    sent = [asyncio.ensure_future(world.send(body)) for body in bodies]
    await wait_until(lambda: _library_has(world, 6), 20, "calls reaching the library")
    world.kill_gateway()
    answered = await asyncio.gather(*sent, return_exceptions=True)
    acked = {i: result_of(a[1]) for i, a in enumerate(answered) if isinstance(a, tuple) and a[0] == 200}
    assert len(acked) < len(bodies), "the kill must cut some requests off"
    await world.library("reset")
    await world.start_gateway()

    finals = await asyncio.gather(*(world.outcome(body) for body in bodies))
    assert [status for status, _ in finals] == [200] * len(bodies), "lost = 0: every application got its ticket"
    for i, result in acked.items():
        assert result_of(finals[i][1]) == result, "acked = final: a resend gets the answer first given"
    stats = await world.library("stats")
    assert stats["duplicates"] == [], "processed twice = 0 at the library"
    assert stats["documents"] >= len(bodies) - 1  # all reached it (one may never have left the client)


async def _library_has(world: World, requests: int) -> bool:
    return bool((await world.library("stats"))["requests"] >= requests)


# ------------------------------------------------------------------------------------------ library down


async def test_library_down_answers_retryable_refusals_and_the_same_message_id_then_succeeds(
        world: World, pki) -> None:
    """The library answers 503: sync callers get PROVIDER_UNAVAILABLE with Retry-After on both channels, nothing
    is stored as failed, the half-open breaker lets exactly one trial through, and once the library is back the
    same messageIds get their tickets, each registered once."""
    await world.library("fail", {"status": 503, "count": 100_000})
    bodies = [rest_body(pki, handle) for handle in PEOPLE[:2]]
    for body in bodies:
        status, answer, headers = await world.send(body)
        assert (status, answer["code"]) == (502, "PROVIDER_UNAVAILABLE")
        assert int(headers["Retry-After"]) >= 1 and answer["retryAfterSeconds"] == int(headers["Retry-After"])
    status, fault, headers = await _soap(world, pki)
    assert status == 500 and fault["errorCode"] == "PROVIDER_UNAVAILABLE"
    assert int(headers["Retry-After"]) >= 1 and fault["errorData"]["retryAfterSeconds"] == int(headers["Retry-After"])

    # The breaker is open. Hold the trial at the library, then ask five times at once while it is out.
    await world.library("fail", {"status": 503, "count": 100_000, "delay": 3.0})
    before = (await world.library("stats"))["requests"]
    # The open applications are retried in the background: one of them is the trial (the old code retried none,
    # so there the burst below finds the breaker half-open itself).
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: _library_has(world, before + 1), 5, "the half-open trial call")
    started = time.monotonic()
    burst = await asyncio.gather(*(world.send(rest_body(pki, PEOPLE[i % 3])) for i in range(5)))
    assert (await world.library("stats"))["requests"] == before + 1, "half-open: exactly one trial call"
    assert time.monotonic() - started < 2.5, "refused at once while the trial is out, not sent to the library"
    assert [(s, a["code"]) for s, a, _ in burst] == [(502, "PROVIDER_UNAVAILABLE")] * 5
    assert all(int(h["Retry-After"]) >= 1 for _, _, h in burst)

    await world.library("reset")
    for body in bodies:
        status, answer = await world.outcome(body)
        assert status == 200, answer
        result_of(answer)
    stats = await world.library("stats")
    assert stats["duplicates"] == []


async def _soap(world: World, pki) -> tuple[int, dict[str, Any], dict[str, str]]:
    document = signed_application(pki.person("saule"), READER_TICKET_SERVICE)
    envelope = f"""<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:t="{SYNC_TYPES}"><soap:Body><t:SendMessage><request>
        <requestInfo><messageId>{uuid.uuid4()}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId>
        <messageDate>{datetime.now(UTC).isoformat()}</messageDate>
        <sender><senderId>{PORTAL}</senderId><password>{PORTAL_PASSWORD}</password></sender></requestInfo>
        <requestData><data>{etree.tostring(document, encoding="unicode")}</data></requestData></request>
        </t:SendMessage></soap:Body></soap:Envelope>""".encode()
    async with world.http.post(f"{world.gateway_url}/shep/sync", data=envelope,
                               headers={"Content-Type": "text/xml; charset=utf-8"}) as response:
        root = etree.fromstring(await response.read())
        info = {etree.QName(e).localname: e.text for e in root.iter() if isinstance(e.tag, str)}
        info["errorData"] = json.loads(info.get("errorData") or "{}")
        return response.status, info, dict(response.headers)


# ------------------------------------------------------------------------- killed between claim and record


async def test_a_kill_right_after_the_message_id_claim_never_blocks_the_message_id(
        world: World, pki, redis_url: str) -> None:
    """SIGKILL the gateway the moment Redis executes the messageId claim, with writes paused so nothing after it
    lands: the claim was written together with its application or not at all, so the restarted gateway answers
    the resent messageId with its ticket (on the old code: 409 CLIENT_DUPLICATE_IN_PROGRESS for good)."""
    mid = str(uuid.uuid4())
    body = rest_body(pki, "daniyar", mid)
    redis, pauser = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        async with redis.monitor() as monitor:
            request = asyncio.ensure_future(world.send(body))
            async for command in monitor.listen():
                words = str(command.get("command", ""))
                if words.startswith("SET ") and f":msg:{PORTAL}:{mid}" in words:
                    await pauser.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
                    world.kill_gateway()
                    break
        await pauser.execute_command("CLIENT", "UNPAUSE")
        with pytest.raises(aiohttp.ClientError):
            await request
    finally:
        await pauser.execute_command("CLIENT", "UNPAUSE")
        await redis.aclose()
        await pauser.aclose()
    await world.start_gateway()
    status, answer = await world.outcome(body, seconds=20)
    assert status == 200, answer
    result_of(answer)
    assert (await world.library("stats"))["duplicates"] == []


# ------------------------------------------------------------------------------------------- desks killed


async def test_desks_killed_mid_job_the_next_desk_finishes_it_registered_once(world: World, pki) -> None:
    """Two commission desks are SIGKILLed in turn while the library holds back its registration receipt; the third
    desk takes the reclaimed job over and completes it: the registration the first desk made is answered again
    (Idempotency-Key), never refused as LIB_DUPLICATE_OBJECT, and the library registered the submission once."""
    head = pki.person("murager-signer")
    mid = str(uuid.uuid4())
    status, answer, _ = await world.send(rest_body(pki, "murager-signer", mid, FUND_SUBMISSION_SERVICE))
    assert (status, answer["applicationStatus"]) == (200, "accepted"), answer
    await world.library("fail", {"late": 30})  # registered, the receipt held back: the desk dies waiting
    for desk in (1, 2):
        before = (await world.library("stats"))["requests"]
        process = _desk(world, desk)
        await wait_until(lambda b=before: _library_has(world, b + 1), 20, f"desk {desk} registering")
        await wait_until(lambda: _registered(world), 5, "the library handling the registration")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    await world.library("reset")
    _desk(world, 3)

    async def final() -> dict[str, Any] | None:
        async with world.http.get(f"{world.gateway_url}/api/v1/cabinet/{head.bin}/applications/{mid}",
                                  headers={"Authorization": aiohttp.encode_basic_auth(PORTAL, PORTAL_PASSWORD)}
                                  ) as response:
            item = dict(await response.json())
        return item if item.get("status") in FINAL else None
    item = await wait_until(final, 40, "the application final", every=0.2)
    assert item["status"] == "completed", (item.get("errorCode"), [e["note"] for e in item["history"]])
    stats = await world.library("stats")
    assert stats["documents"] == 1 and stats["duplicates"] == [], "registered once at the library"
    assert stats["replayed"] >= 2, "the reclaimed jobs got the first receipt again"


def _desk(world: World, number: int) -> subprocess.Popen[bytes]:
    return world.processes.spawn(f"desk{number}", [
        "-m", "mocks.backoffice", "run", "--gateway", world.gateway_url, "--library", world.library_url,
        "--sender", DESK, "--worker", f"desk-{number}", "--poll-wait", "1", "--redis", world.redis_url],
        BACKOFFICE_PASSWORD=DESK_PASSWORD)


async def _registered(world: World) -> bool:
    stats = await world.library("stats")
    return bool(stats["documents"] >= 1)
