"""The local Redis Cluster the demo, the tests and the benchmarks run on (gateway/shell/redis_cluster.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import cast

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterPubSub
from redis.exceptions import RedisError

from gateway.cabinet.events import EventHub, Kind
from gateway.config import CabinetSettings, ConfigError, check_settings, settings_from_dict
from gateway.lifecycle.durability import DurabilityProbe
from gateway.shell.redis_clients import cluster_mode, events_client
from gateway.shell.redis_cluster import ClusterError, LocalRedisCluster
from gateway.shell.serve import storage_for


async def test_the_cluster_serves_every_slot_with_a_replica_per_primary(redis_cluster: LocalRedisCluster,
                                                                       cluster_client: RedisCluster) -> None:
    assert len(redis_cluster.ports) == 6 and len(redis_cluster.primary_ports()) == 3
    keys = [f"k{n}" for n in range(50)]
    for key in keys:
        await cluster_client.set(key, key)
    assert {redis_cluster.primary_for(key) for key in keys} == set(redis_cluster.primary_ports())
    for key in keys:
        assert await cluster_client.get(key) == key.encode()


async def test_a_killed_primary_is_replaced_by_its_replica_and_rejoins(tmp_path: Path) -> None:
    """Its own small cluster: killing a node of the session's cluster would disturb other tests."""
    cluster = LocalRedisCluster(tmp_path / "c", node_timeout_ms=1000)
    await asyncio.to_thread(cluster.start)
    try:
        client = RedisCluster.from_url(cluster.url)
        await client.set("{kept}:a", "1")
        await client.wait(1, 2000)  # type: ignore[no-untyped-call]
        victim = cluster.primary_for("{kept}:a")
        cluster.kill(victim)
        await asyncio.to_thread(cluster.wait_healthy, 30.0)
        assert cluster.primary_for("{kept}:a") != victim
        await client.aclose()
        client = RedisCluster.from_url(cluster.url)
        assert await client.get("{kept}:a") == b"1", "the promoted replica has what the primary acknowledged"
        await asyncio.to_thread(cluster.restart, victim)
        await asyncio.to_thread(cluster.wait_healthy, 30.0)
        assert victim not in cluster.primary_ports(), "the old primary came back as a replica"
        await client.aclose()
    finally:
        await asyncio.to_thread(cluster.stop)


def test_a_cluster_needs_three_primaries(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 3 primaries"):
        LocalRedisCluster(tmp_path, primaries=2)


def test_a_data_dir_of_another_shape_is_refused(tmp_path: Path) -> None:
    with LocalRedisCluster(tmp_path / "c", primaries=3, replicas=0):
        pass
    with pytest.raises(ClusterError, match="holds a cluster of 3 nodes, not 6"):
        LocalRedisCluster(tmp_path / "c", primaries=3, replicas=1).start()


async def test_the_durability_probe_asks_every_primary(redis_cluster: LocalRedisCluster,
                                                       cluster_client: RedisCluster) -> None:
    probe = DurabilityProbe(cast(Redis, cluster_client))
    await probe.confirm()  # every node runs with its append-only file
    assert probe.reads == 1


@pytest.mark.parametrize(("redis", "problem"), [
    ({"cluster": True, "sentinel_urls": ["redis://127.0.0.1:26379"], "sentinel_master": "egov"},
     "redis.sentinel_urls: Sentinel and cluster exclude each other"),
    ({"sentinel_urls": ["redis://127.0.0.1:26379"]}, "redis.sentinel_master: required with sentinel_urls"),
    ({"sentinel_master": "egov"}, "redis.sentinel_urls: required with sentinel_master"),
    ({"sentinel_urls": ["127.0.0.1:26379"], "sentinel_master": "egov"}, "not a redis://host:port address"),
])
def test_redis_topology_settings_are_checked(redis: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        check_settings(settings_from_dict({"redis": redis}))


def test_the_environment_switch_turns_cluster_mode_on(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_dict({})
    assert not cluster_mode(settings)
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    assert cluster_mode(settings)
    monkeypatch.setenv("REDIS_CLUSTER", "0")
    assert not cluster_mode(settings)


def test_a_cluster_without_a_url_is_refused_before_anything_starts(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings = settings_from_dict({"redis": {"cluster": True}, "state_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=re.escape("needs redis.url")), storage_for(settings):
        pass
    assert not (tmp_path / "redis").exists(), "no embedded server was started"


async def test_the_cabinet_event_hub_moves_to_a_live_node_when_its_node_dies(tmp_path: Path) -> None:
    """Pub/sub reaches every node of a cluster; the hub listens on one. When that node is killed, the hub
    subscribes on another, tells its streams to resync, and the next change arrives."""
    cluster = LocalRedisCluster(tmp_path / "c", node_timeout_ms=1000)
    await asyncio.to_thread(cluster.start)
    settings = settings_from_dict({"redis": {"url": cluster.url, "cluster": True}})
    hub = EventHub(events_client(cluster.url, settings), "egov:events:", CabinetSettings())
    publisher = cast(Redis, RedisCluster.from_url(cluster.url))
    stop = asyncio.Event()
    running = asyncio.create_task(hub.run(stop))
    try:
        stream = hub.open("030540011870")
        async with asyncio.timeout(20):
            assert (await stream.queue.get()).kind is Kind.LISTENING
            await publisher.publish("egov:events:030540011870", '{"n": 1}')
            assert (await stream.queue.get()).data == '{"n": 1}'
            assert hub._pubsub is not None
            node = cast(ClusterPubSub, hub._pubsub).node
            assert node is not None
            cluster.kill(int(node.port))
            assert (await stream.queue.get()).kind is Kind.LISTENING, "resubscribed elsewhere: a resync"
            assert int(cast(ClusterPubSub, hub._pubsub).node.port) != int(node.port)  # type: ignore[union-attr]
            while True:  # the publisher's client finds the live nodes too (a failover may be under way)
                with contextlib.suppress(RedisError, OSError):
                    await publisher.publish("egov:events:030540011870", '{"n": 2}')
                    break
                await asyncio.sleep(0.2)
            assert (await stream.queue.get()).data == '{"n": 2}'
    finally:
        stop.set()
        await asyncio.wait({running}, timeout=10)
        await hub.aclose()
        await publisher.aclose()
        await asyncio.to_thread(cluster.stop)
