"""Live cabinet streams cannot exhaust Redis: every stream of a process shares the event hub's one
subscription, streams are capped per owner and in total, a gone or stuck page frees its place, and
while hundreds are open the desk and intake keep working. Each test runs a gateway of its own (own key
prefix, own ``[cabinet]`` settings) on the shared Redis, over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from lxml import etree

from gateway.cabinet.context import CABINET
from gateway.cabinet.events import EventHub
from gateway.config import CabinetSettings, ConfigError, check_settings, settings_from_dict
from gateway.shell.app import create_app
from gateway.shell.serve import start_site
from mocks.library import build_fund_submission
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE, signed_application, signer_for
from mocks.portal.shep_client import SyncChannelClient
from signing.idnumbers import make_iin
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    NATIONAL,
    NATIONAL_PASSWORD,
    PORTAL,
    PORTAL_PASSWORD,
    GatewayUnderTest,
    assert_problem,
    free_port,
    send_soap,
    wait_for,
)

Start = Callable[[CabinetSettings], Awaitable["OwnGateway"]]
# Streams are opened as the national portal of record (cabinet_reads_all): it may watch any owner, with or
# without applications yet, which is what these capacity tests need. Who may open what is tested elsewhere.


@dataclass
class OwnGateway:
    url: str
    runner: web.AppRunner
    system: GatewayUnderTest

    @property
    def hub(self) -> EventHub:
        return self.runner.app[CABINET].events

    def events_url(self, owner: str) -> str:
        return f"{self.url}/api/v1/cabinet/{owner}/events"

    def channel(self, owner: str) -> str:
        return self.runner.app[CABINET].store.events_channel(owner)


@pytest_asyncio.fixture
async def start(system: GatewayUnderTest, tmp_path: Path) -> AsyncIterator[Start]:
    """Starts a gateway of this test's own with the given ``[cabinet]`` settings; stopped after the test."""
    runners: list[web.AppRunner] = []

    async def started(cabinet: CabinetSettings) -> OwnGateway:
        port = free_port()
        settings = replace(system.settings, listen=replace(system.settings.listen, port=port), state_dir=tmp_path,
                           cabinet=cabinet, redis=replace(system.settings.redis,
                                                          key_prefix=f"streams-{uuid.uuid4().hex}"))
        runners.append(await start_site(create_app(settings, redis_url=system.redis_url), "127.0.0.1", port))
        return OwnGateway(f"http://127.0.0.1:{port}", runners[-1], system)

    yield started
    for runner in runners:
        if runner.server is not None:  # not stopped by the test itself
            await runner.cleanup()


@dataclass
class Listener:
    """One open stream, read in the background: ``connected`` once listening, then its application events."""

    owner: str
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    events: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def read(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
        async with http.get(url, headers=headers) as response:
            assert response.status == 200, await response.text()
            event = None
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "connected":
                        self.connected.set()
                elif line.startswith("data: {") and event == "application":
                    self.events.append(json.loads(line[6:]))
                    self.arrived.set()


def listen(own: OwnGateway, http: aiohttp.ClientSession, owner: str) -> Listener:
    listener = Listener(owner)
    auth = own.system.auth(NATIONAL, NATIONAL_PASSWORD)
    listener.task = asyncio.create_task(listener.read(http, own.events_url(owner), auth))
    return listener


async def ready(listeners: list[Listener]) -> None:
    async with asyncio.timeout(60):
        await asyncio.gather(*(listener.connected.wait() for listener in listeners))


def owners(count: int) -> list[str]:
    """Valid IINs nobody in the test PKI has."""
    return [make_iin(date(1960, 1, 1 + n % 28), "male", 9000 + n) for n in range(count)]


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def redis_clients(own: OwnGateway) -> tuple[int, int]:
    """Connections Redis sees in all, and those of this gateway's hub."""
    name = own.hub.redis.connection_pool.connection_kwargs["client_name"]
    clients = await own.system.redis.client_list()
    return len(clients), sum(1 for client in clients if client["name"] == name)


def fund_submission(own: OwnGateway) -> dict[str, Any]:
    head = own.system.pki.person("kitap-head")
    document = signer_for(head).sign(build_fund_submission(
        bin=head.bin or "", participant_name=head.organisation or "", kind="library",
        head_name=f"{head.surname} {head.name}",
        objects=[{"title": f"Streams ({uuid.uuid4().hex[:8]})", "category": "local-history-literature", "pages": 10,
                  "format": "pdf", "access_level": "first-24-pages", "author_agreement": "АК-2025/018"}]))
    return {"requestInfo": {"messageId": str(uuid.uuid4()), "serviceId": FUND_SUBMISSION_SERVICE,
                            "messageDate": datetime.now(UTC).isoformat(),
                            "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
            "requestData": {"data": etree.tostring(document, encoding="unicode")}}


async def test_500_streams_share_one_connection_while_the_desk_and_intake_keep_working(start) -> None:
    own = await start(CabinetSettings(max_streams=600, max_streams_per_owner=10))
    aigerim, head = own.system.pki.person("aigerim"), own.system.pki.person("kitap-head")
    watched = [aigerim.iin, head.bin or "", *owners(48)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as http:
        async with http.get(f"{own.url}/health") as response:  # the gateway's own pools are warm
            assert response.status == 200
        clients_before, memory_before = await redis_clients(own), rss_kib()
        listeners = [listen(own, http, owner) for owner in watched for _ in range(10)]
        try:
            await ready(listeners)
            clients_after, memory_after = await redis_clients(own), rss_kib()
            assert own.hub.count() == 500
            assert clients_after[1] == 1  # one pub/sub connection for all 500
            # Opening a stream writes its access record through the shared pool (a burst of 500 opens may grow
            # it, bounded by [redis] max_connections); once open, no stream holds any connection of it.
            in_use = list(own.runner.app[CABINET].store.redis.connection_pool._get_in_use_connections())
            assert in_use == [], in_use
            print(f"\n500 open streams: Redis connections {clients_before[0]} -> {clients_after[0]} "
                  f"(hub: {clients_after[1]}); RSS +{(memory_after - memory_before) / 1024:.1f} MiB "
                  f"(server and client in one process, about {(memory_after - memory_before) / 500:.0f} KiB a stream)")

            # SyncChannel intake: aigerim's reader ticket, pushed to her ten pages
            shep = await asyncio.to_thread(SyncChannelClient, f"{own.url}/shep/sync?wsdl")
            result = await send_soap(shep, signed_application(aigerim, READER_TICKET_SERVICE))
            assert result.ok, result
            # REST intake of a queued service, and the desk takes the job
            async with http.post(f"{own.url}/api/v1/requests", json=fund_submission(own)) as response:
                assert response.status == 200, await response.text()
                submitted = await response.json()
            claim_url = f"{own.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/claim?worker=streams&wait=10"
            async with http.post(claim_url, headers=own.system.auth(DESK, DESK_PASSWORD)) as response:
                assert response.status == 200, await response.text()
                job = await response.json()
            assert job["sessionId"] == submitted["responseInfo"]["sessionId"]
            assert job["applicant"]["bin"] == head.bin

            for owner in watched[2:]:
                await own.system.redis.publish(own.channel(owner), json.dumps({"owner": owner}))
            async with asyncio.timeout(30):
                await asyncio.gather(*(listener.arrived.wait() for listener in listeners))
            for listener in listeners:  # each page got its own owner's changes, and only those
                if listener.owner == aigerim.iin:
                    assert {event["sessionId"] for event in listener.events} == {result.session_id}
                elif listener.owner == head.bin:
                    assert {event["messageId"] for event in listener.events} == {job["messageId"]}
                else:
                    assert listener.events == [{"owner": listener.owner}]
        finally:
            for listener in listeners:
                assert listener.task is not None
                listener.task.cancel()
            await asyncio.gather(*(listener.task for listener in listeners if listener.task), return_exceptions=True)
    await wait_for(lambda: _async(own.hub.count() == 0))  # every closed page freed its place


async def _async(value: bool) -> bool:
    return value


async def test_the_caps_per_owner_and_in_total_are_refused_with_their_codes(start, http) -> None:
    own = await start(CabinetSettings(max_streams=3, max_streams_per_owner=2, retry_after_seconds=7))
    first, second, third = owners(3)
    listeners = [listen(own, http, first), listen(own, http, first), listen(own, http, second)]
    try:
        await ready(listeners)
        headers = {**own.system.auth(NATIONAL, NATIONAL_PASSWORD), "Accept-Language": "ru"}
        async with http.get(own.events_url(first), headers=headers) as answer:
            problem = await assert_problem(answer, 429, "CLIENT_TOO_MANY_STREAMS")
            assert answer.headers["Retry-After"] == "7"
            assert problem["title"].startswith("Для этого ИИН/БИН открыто слишком много потоков")
        async with http.get(own.events_url(third), headers=own.system.auth(NATIONAL, NATIONAL_PASSWORD)) as answer:
            await assert_problem(answer, 503, "GATEWAY_STREAMS_FULL")
            assert answer.headers["Retry-After"] == "7"
        async with http.get(own.events_url(third)) as answer:  # no credentials: refused before any cap counts
            await assert_problem(answer, 401, "CLIENT_BAD_CREDENTIALS")
        assert (own.hub.count(first), own.hub.count()) == (2, 3)
    finally:
        await _stop(listeners)


async def test_a_closed_page_is_noticed_and_its_place_freed(start, http) -> None:
    own = await start(CabinetSettings(max_streams_per_owner=1, keep_alive_seconds=0.5))
    owner = owners(1)[0]
    response = await http.get(own.events_url(owner), headers=own.system.auth(NATIONAL, NATIONAL_PASSWORD))
    assert response.status == 200
    async with asyncio.timeout(10):
        while (await response.content.readline()).strip() != b"event: connected":
            pass
    assert own.hub.count(owner) == 1
    response.close()  # the page goes away without a word
    await wait_for(lambda: _async(own.hub.count(owner) == 0), seconds=5)
    listener = listen(own, http, owner)  # the place is free again (the cap is one)
    try:
        await ready([listener])
    finally:
        await _stop([listener])


async def test_a_page_that_stops_reading_is_dropped_and_never_holds_up_the_others(start, http) -> None:
    own = await start(CabinetSettings(stream_buffer=4, keep_alive_seconds=0.5))
    owner = owners(1)[0]
    stuck = await _stuck_page(own, owner)
    fast = listen(own, http, owner)
    try:
        await ready([fast])
        await wait_for(lambda: _async(own.hub.count(owner) == 2))
        big, after_drop = "x" * 65536, 3
        for n in range(2000):  # in step with the page that reads: it must get every one
            fast.arrived.clear()
            await own.system.redis.publish(own.channel(owner), json.dumps({"n": n, "pad": big}))
            async with asyncio.timeout(10):
                await fast.arrived.wait()
            if own.hub.dropped and not (after_drop := after_drop - 1):  # a few more once the stuck one is out
                break
        assert own.hub.dropped == 1
        assert [event["n"] for event in fast.events] == list(range(len(fast.events)))
        await wait_for(lambda: _async(own.hub.count(owner) == 1), seconds=5)  # the stuck page's place is freed
    finally:
        stuck.close()
        await _stop([fast])


async def _stuck_page(own: OwnGateway, owner: str) -> socket.socket:
    """A page that opens the stream and then never reads: a raw socket with a tiny receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", int(own.url.rsplit(":", 1)[1])))
    auth = own.system.auth(NATIONAL, NATIONAL_PASSWORD)["Authorization"]
    await asyncio.get_running_loop().sock_sendall(sock, (
        f"GET /api/v1/cabinet/{owner}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n").encode())
    return sock


async def test_stopping_the_server_ends_open_streams_at_once(start, http) -> None:
    own = await start(CabinetSettings())
    listener = listen(own, http, owners(1)[0])
    await ready([listener])
    async with asyncio.timeout(10):  # not the server's 60 s wait for open requests
        await own.runner.cleanup()
        assert listener.task is not None
        await listener.task  # the stream ended cleanly


@pytest.mark.parametrize(("key", "value"), [("max_streams", 0), ("max_streams_per_owner", 0),
                                            ("stream_buffer", 0), ("keep_alive_seconds", 0.0),
                                            ("keep_alive_seconds", float("inf")), ("retry_after_seconds", 0)])
def test_cabinet_settings_are_checked(key: str, value: float) -> None:
    settings = settings_from_dict({"cabinet": {key: value}})
    with pytest.raises(ConfigError, match=f"cabinet.{key}"):
        check_settings(settings)


async def _stop(listeners: list[Listener]) -> None:
    tasks = [listener.task for listener in listeners if listener.task is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
