"""The embedded redis-server: durable settings, AOF replay across restarts, clean failures."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway.shell.redis_embedded import EmbeddedRedis, EmbeddedRedisError


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path / "redis")
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def test_durable_configuration(server: EmbeddedRedis, tmp_path: Path) -> None:
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    client = _client(server.url)
    try:
        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert Path(client.config_get("dir")["dir"]).resolve() == (tmp_path / "redis").resolve()
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
    finally:
        client.close()


def test_data_survives_restart_on_the_same_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    first = EmbeddedRedis(data_dir)
    client = _client(first.start())
    try:
        client.set("application:1", "accepted")
        client.hset("cabinet:880314405125", mapping={"status": "done"})
    finally:
        client.close()
        first.stop()
    assert not _answers(first.port)  # really stopped
    second = EmbeddedRedis(data_dir)  # a new process (and port), same directory: replays the AOF
    client = _client(second.start())
    try:
        assert client.get("application:1") == "accepted"
        assert client.hgetall("cabinet:880314405125") == {"status": "done"}
    finally:
        client.close()
        second.stop()
    assert any(p.name.startswith("appendonly") for p in data_dir.iterdir())


def test_a_different_dir_does_not_see_the_data(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "a") as a:
        client = _client(a.url)
        client.set("k", "v")
        client.close()
    with EmbeddedRedis(tmp_path / "b") as b:
        client = _client(b.url)
        assert client.get("k") is None
        client.close()


def test_stop_is_idempotent(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path / "redis")
    embedded.stop()  # before start: nothing to do
    embedded.start()
    port = embedded.port
    assert port is not None and _answers(port)
    embedded.stop()
    embedded.stop()
    assert not _answers(port)


def test_port_in_use_by_a_listening_socket(tmp_path: Path) -> None:
    """Another server already on the port: start() must fail, not hand out the other server's URL."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        embedded = EmbeddedRedis(tmp_path / "redis", port=port)
        with pytest.raises(EmbeddedRedisError) as caught:
            embedded.start(timeout=5)
        embedded.stop()
    message = str(caught.value)
    assert str(port) in message and "in use" in message


def test_port_in_use_by_another_redis(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "first") as first:
        second = EmbeddedRedis(tmp_path / "second", port=first.port)
        with pytest.raises(EmbeddedRedisError, match="already in use"):
            second.start(timeout=5)
        second.stop()
        client = _client(first.url)
        assert client.ping()  # the first one is unharmed
        client.close()


def test_bind_failure_reports_why(tmp_path: Path) -> None:
    """A port taken but not yet listening: redis-server itself fails; the message says why."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        embedded = EmbeddedRedis(tmp_path / "redis", port=port)
        with pytest.raises(EmbeddedRedisError) as caught:
            embedded.start(timeout=5)
        embedded.stop()
    message = str(caught.value)
    assert "exited" in message and str(port) in message and "redis.log" in message
