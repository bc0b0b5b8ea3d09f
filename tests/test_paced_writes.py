"""Big values go to Redis in slices (gateway.shell.paced_writes): the gateway's clients, against the real Redis.

On Python 3.11, asyncio's transport joins a command's pieces and copies what the socket does not take at once;
the paced connection writes memoryview slices instead. Measured with tracemalloc: the Python allocations while
a big value is written stay far below the value itself.
"""

from __future__ import annotations

import os
import sys
import tracemalloc
import uuid
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from gateway.shell import paced_writes
from gateway.shell.paced_writes import PacedConnection, PacedSSLConnection, PacedUnixConnection, paced_class
from gateway.shell.redis_clients import redis_client
from gateway.shell.redis_cluster import LocalRedisCluster
from mocks.pki import TestPki
from tests.helpers import free_port, make_settings

VALUE_BYTES = 8 * 1024 * 1024


@pytest.mark.parametrize(("url", "plain", "paced"), [
    ("redis://127.0.0.1:6379/0", Connection, PacedConnection),
    ("rediss://127.0.0.1:6380/0", SSLConnection, PacedSSLConnection),
    ("unix:///run/redis.sock", UnixDomainSocketConnection, PacedUnixConnection),
])
def test_each_url_gets_the_paced_twin_of_redis_pys_class(url: str, plain: type, paced: type, tmp_path: Path,
                                                          pki: TestPki) -> None:
    assert paced_class(url) is paced and issubclass(paced, plain)
    settings = make_settings(tmp_path, pki, port=free_port(), library_url="http://127.0.0.1:9")
    client = redis_client(url, settings, socket_timeout=5)  # nothing connects before the first command
    assert type(client.connection_pool.make_connection()) is paced


async def peak_while(client: Redis, *commands: tuple[str | bytes, ...]) -> int:
    """The peak of Python's allocations (bytes) while ``commands`` run in one MULTI on ``client``."""
    await client.ping()  # connected first: the connection's own buffers are not counted
    tracemalloc.start()
    try:
        async with client.pipeline(transaction=True) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            await pipe.execute()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_big_value_is_written_in_slices_and_read_back_whole(redis_url: str, tmp_path: Path,
                                                                     pki: TestPki) -> None:
    settings = make_settings(tmp_path, pki, port=free_port(), library_url="http://127.0.0.1:9")
    paced = redis_client(redis_url, settings, socket_timeout=5)
    plain = Redis.from_url(redis_url, socket_timeout=5)
    key = f"t{uuid.uuid4().hex[:8]}:big"
    value = os.urandom(VALUE_BYTES)
    try:
        assert type(paced.connection_pool.make_connection()) is PacedConnection
        plain_peak = await peak_while(plain, ("SET", key, value))
        paced_peak = await peak_while(paced, ("SET", key + "2", value), ("SET", key + "3", b"small"))
        assert await paced.get(key + "2") == value and await paced.get(key + "3") == b"small"
        if sys.version_info < (3, 12):  # 3.12's transport takes writelines' pieces as they are
            assert plain_peak >= VALUE_BYTES, "redis-py's own path copies the value whole (the reason for pacing)"
        assert paced_peak < 4 * paced_writes.SLICE_BYTES, paced_peak
    finally:
        await paced.delete(key, key + "2", key + "3")
        await paced.aclose()
        await plain.aclose()


async def test_every_node_of_a_cluster_gets_paced_connections(redis_cluster: LocalRedisCluster, tmp_path: Path,
                                                             pki: TestPki) -> None:
    """The cluster client takes no connection class: it is set where redis-py keeps it, for the startup node and
    for the nodes discovered from it (a redis-py that moves it fails here)."""
    base = make_settings(tmp_path, pki, port=free_port(), library_url="http://127.0.0.1:9")
    settings = replace(base, redis=replace(base.redis, url=redis_cluster.url, cluster=True))
    client = cast(RedisCluster, redis_client(redis_cluster.url, settings, socket_timeout=5))
    key = "{" + uuid.uuid4().hex[:8] + "}:big"
    value = os.urandom(VALUE_BYTES)
    try:
        assert await client.set(key, value) and await client.get(key) == value
        nodes = client.get_nodes()
        assert len(nodes) == len(redis_cluster.ports)
        assert all(node.connection_class is PacedConnection for node in nodes)
        written_by = client.get_node_from_key(key)
        assert written_by is not None
        assert all(type(connection) is PacedConnection for connection in written_by._connections)
    finally:
        await client.delete(key)
        await client.aclose()
