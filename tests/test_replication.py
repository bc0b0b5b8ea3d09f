"""Durability you can choose (``[redis] min_replica_acks``): an application is acknowledged only once a replica of
every primary its create steps wrote to has it. Real processes: a primary and its replica (and a Sentinel) from the
bundled redis-server, and the session's local Redis Cluster; the replica is held back with SIGSTOP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from redis import Redis as SyncRedis
from redis.crc import key_slot

from gateway.config import ConfigError, settings_from_dict
from gateway.config.loading import check_settings
from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.intake.pipeline import Pipeline
from gateway.lifecycle.replicas import ReplicaAcks, marker_tag
from gateway.shell.app import create_app
from gateway.shell.redis_clients import redis_client
from gateway.shell.redis_cluster import LocalRedisCluster
from gateway.shell.serve import start_site
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from tests.helpers import GatewayUnderTest, free_port, make_settings, rest_request, wait_for
from tests.processes import PrimaryReplica

NOT_REPLICATED = "GATEWAY_STORAGE_NOT_REPLICATED"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrimaryReplica]:
    """A primary, its replica and a Sentinel watching them as ``egov``, shared by this module's tests."""
    with PrimaryReplica(tmp_path_factory.mktemp("replicated"), sentinel=True) as started:
        yield started


@pytest.fixture
def held_back(pair: PrimaryReplica) -> Iterator[PrimaryReplica]:
    """The pair, with the replica resumed and caught up again after the test whatever it did."""
    try:
        yield pair
    finally:
        pair.resume()
        pair.wait_synced()


@contextlib.asynccontextmanager
async def gateway(system: GatewayUnderTest, tmp_path: Path, url: str, *, cluster: bool = False,
                  timeout_ms: int) -> AsyncIterator[tuple[str, Pipeline]]:
    """A gateway on ``url`` with ``min_replica_acks = 1``: its base URL and its intake pipeline."""
    port = free_port()
    settings = make_settings(tmp_path, system.pki, port=port, library_url=system.library_url)
    settings = replace(settings, redis=replace(settings.redis, url=url, cluster=cluster, min_replica_acks=1,
                                               replica_ack_timeout_ms=timeout_ms))
    runner = await start_site(create_app(settings, redis_url=url), "127.0.0.1", port)
    try:
        yield settings.base_url, runner.app[INTAKE].pipeline
    finally:
        await runner.cleanup()


async def post(http: aiohttp.ClientSession, base: str, request: dict) -> tuple[int, dict[str, Any], Any]:
    async with http.post(f"{base}/api/v1/requests", json=request) as response:
        return response.status, await response.json(content_type=None), response.headers


def waiting_in_wait(pair: PrimaryReplica) -> bool:
    """Whether a client of the primary is blocked in WAIT now."""
    with pair.client() as primary:
        return any(client.get("cmd") == "wait" for client in primary.client_list())


def record_on(port: int, key: str, *, readonly: bool = False) -> bytes | None:
    """``key`` as the (replica) server on ``port`` has it; ``readonly`` for a cluster replica."""
    with SyncRedis(port=port, socket_timeout=5, single_connection_client=True) as replica:
        if readonly:
            replica.execute_command("READONLY")
        return cast(bytes | None, replica.get(key))


async def test_the_answer_waits_until_the_replica_has_the_application(
        system: GatewayUnderTest, held_back: PrimaryReplica, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    pair = held_back
    async with gateway(system, tmp_path, pair.url, timeout_ms=20_000) as (base, pipeline):
        request = rest_request(signed_application(system.pki.person("aigerim"), READER_TICKET_SERVICE))
        pair.pause()
        answer = asyncio.create_task(post(http, base, request))
        await wait_for(lambda: asyncio.to_thread(waiting_in_wait, pair))
        assert not answer.done(), "answered while the replica had not got the application"
        pair.resume()
        status, body, _headers = await answer
        assert status == 200, body
        session = body["responseInfo"]["sessionId"]
        record = record_on(pair.ports["replica"], f"{pipeline.store.prefix}:app:{{{session}}}")
        assert record is not None and session.encode() in record, "the replica lacks what was acknowledged"


async def test_too_few_replicas_in_time_is_refused_and_the_repeat_answers_once_they_have_it(
        system: GatewayUnderTest, held_back: PrimaryReplica, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """503 with Retry-After; the application stays recorded (no half state); a repeat while the replica is still
    behind is refused the same way (the repeat waits too), and once it caught up the repeat gets the first answer."""
    pair = held_back
    async with gateway(system, tmp_path, pair.url, timeout_ms=300) as (base, pipeline):
        request = rest_request(signed_application(system.pki.person("daniyar"), READER_TICKET_SERVICE))
        calls = system.library_calls
        pair.pause()
        status, refused, headers = await post(http, base, request)
        assert (status, refused["code"]) == (503, NOT_REPLICATED), refused
        assert int(headers["Retry-After"]) >= 1 and refused["retryAfterSeconds"] >= 1
        assert "0 of 1 replicas of primary" in refused["detail"]
        session = refused["sessionId"]
        assert (await pipeline.store.get(session)) is not None, "the recorded application must stay"
        status, again, _headers = await post(http, base, request)
        assert (status, again["code"]) == (503, NOT_REPLICATED), "a repeat must not answer what no replica has"
        pair.resume()
        status, answered, _headers = await post(http, base, request)
        assert status == 200, answered
        assert answered["responseInfo"]["sessionId"] == session and answered["responseData"]["data"]
        assert system.library_calls == calls + 1, "the repeats were answered without the back-end"
        assert record_on(pair.ports["replica"], f"{pipeline.store.prefix}:app:{{{session}}}") is not None


async def test_on_a_sentinel_primary_one_marker_and_wait_serve_every_waiting_request(
        held_back: PrimaryReplica) -> None:
    pair = held_back
    settings = settings_from_dict({"redis": {"sentinel_urls": [f"redis://127.0.0.1:{pair.ports['sentinel']}"],
                                             "sentinel_master": "egov"}})
    client = redis_client("", settings, socket_timeout=5)
    try:
        acks = ReplicaAcks(client, "sentinel", replicas=1, timeout_ms=300)
        await client.set("sentinel:app:{one}", "1")
        await asyncio.gather(*(acks.confirm(["sentinel:app:{one}", "sentinel:msg:portal:m1"]) for _ in range(20)))
        assert acks.waits == 1, "concurrent requests share one marker and WAIT"
        assert record_on(pair.ports["replica"], "sentinel:app:{one}") == b"1"
        assert record_on(pair.ports["replica"], "sentinel:replicated:{primary}") == b"1"
        pair.pause()
        with pytest.raises(GatewayError) as refused:
            await acks.confirm(["sentinel:app:{one}"])
        assert refused.value.code == NOT_REPLICATED and acks.waits == 2, "a later request never reuses a WAIT"
        await ReplicaAcks(client, "sentinel", replicas=0, timeout_ms=300).confirm(["x"])  # 0: no wait at all
    finally:
        await client.aclose()


async def test_on_a_cluster_every_primary_written_gets_its_marker_and_wait_and_no_other(
        system: GatewayUnderTest, redis_cluster: LocalRedisCluster, http: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    await asyncio.to_thread(redis_cluster.wait_healthy, 30.0)
    primaries = redis_cluster.primary_ports()
    async with gateway(system, tmp_path, redis_cluster.url, cluster=True, timeout_ms=5000) as (base, pipeline):
        before = {port: await asyncio.to_thread(_waits, port) for port in primaries}
        request = rest_request(signed_application(system.pki.person("saule"), READER_TICKET_SERVICE))
        status, body, _headers = await post(http, base, request)
        assert status == 200, body
        waited = {port: await asyncio.to_thread(_waits, port) - before[port] for port in primaries}
        app = await pipeline.store.get(body["responseInfo"]["sessionId"])
        assert app is not None
        keys = pipeline.store.created_keys(app, pipeline.delivery.outbox.key)
        written = {redis_cluster.primary_for(key) for key in keys}
        assert {port for port, count in waited.items() if count} == written, (waited, written)
        assert all(waited[port] == 1 for port in written), waited
        markers = {port: await asyncio.to_thread(_markers, port, pipeline.store.prefix) for port in primaries}
        assert markers == {port: int(port in written) for port in primaries}, "one marker on each primary written"
        prefix = pipeline.store.prefix  # the replicas of the primaries have what was written there at the answer
        record, claim = f"{prefix}:app:{{{app.id}}}", f"{prefix}:msg:{app.sender_id}:{app.message_id}"
        assert record_on(_replica_of(redis_cluster.primary_for(record)), record, readonly=True) is not None
        assert record_on(_replica_of(redis_cluster.primary_for(claim)), claim, readonly=True) == app.id.encode()


def _waits(port: int) -> int:
    """WAITs the server on ``port`` has run (INFO commandstats)."""
    with SyncRedis(port=port, socket_timeout=5) as node:
        return int(node.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def _markers(port: int, prefix: str) -> int:
    with SyncRedis(port=port, socket_timeout=5) as node:
        return len(list(node.scan_iter(match=f"{prefix}:replicated:*")))


def _replica_of(port: int) -> int:
    with SyncRedis(port=port, socket_timeout=5) as node:
        return int(node.info("replication")["slave0"]["port"])


@pytest.mark.parametrize("key", ["egov:app:{{uuid}}", "egov:msg:portal:m-1", "egov:msg:portal:a}b",
                                 "egov:msg:portal:{}x}", "egov:outbox", "egov:mlog:{mlog}:records", "a{b"])
def test_a_marker_lands_in_the_slot_of_its_key(key: str) -> None:
    marker = f"egov:replicated:{{{marker_tag(key)}}}"
    assert key_slot(marker.encode()) == key_slot(key.encode()), marker


@pytest.mark.parametrize(("redis", "message"), [
    ({"min_replica_acks": -1}, "redis.min_replica_acks: must not be negative"),
    ({"replica_ack_timeout_ms": -5}, "redis.replica_ack_timeout_ms: must not be negative"),
    ({"min_replica_acks": 1, "replica_ack_timeout_ms": 0},
     "redis.replica_ack_timeout_ms: must be positive when min_replica_acks is"),
])
def test_bad_replica_settings_are_refused(redis: dict, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_settings(settings_from_dict({"redis": redis}))
    assert str(refused.value) == message


def test_replica_settings_types_and_defaults() -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from_dict({"redis": {"min_replica_acks": True}})
    assert str(refused.value) == "redis.min_replica_acks: expected int, got bool True"
    defaults = settings_from_dict({}).redis
    assert (defaults.min_replica_acks, defaults.replica_ack_timeout_ms) == (0, 500)
    check_settings(settings_from_dict({"redis": {"replica_ack_timeout_ms": 0}}))  # no wait asked: any timeout

