"""The embedded redis-server, watched: if it dies the gateway starts it again on the same port and data.

A thread of the gateway's (parent) process polls the server process; when it has exited, the thread logs
it and starts the server again with the same directory, append-only file and port, so every worker's Redis
clients simply reconnect (redis-py reconnects per command). A start that fails (port taken, disk refusing
the append-only file) is retried with backoff, logged once per burst. Meanwhile requests are refused with
GATEWAY_STORAGE_UNAVAILABLE (503, Retry-After); nothing is acknowledged that is not stored.

The counts live in a :class:`SupervisorBoard` in shared memory, so every worker process of
``serve --workers N`` reports the same restarts on ``/health/details``.

Linux: the server is started with PR_SET_PDEATHSIG, which fires when the *thread* that started it ends; the
watching thread lives until :meth:`RedisSupervisor.stop`, which stops the server itself right after.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from datetime import UTC, datetime
from typing import Any

from gateway.shell.redis_embedded import EmbeddedRedis, EmbeddedRedisError
from gateway.supervise import FailureBurst, SupervisorSettings, backoff_delay

log = logging.getLogger("egov.redis")

POLL_SECONDS = 0.2
"How often the watcher looks at the server process."


class SupervisorBoard:
    """Restarts of the embedded server, shared between the parent and its spawned workers (shared memory)."""

    def __init__(self) -> None:
        # [restarts, epoch of the last restart, 1.0 while the server runs]; lock=False: one writer (the watcher)
        self._values: Any = multiprocessing.get_context("spawn").Array("d", 3, lock=False)

    def running(self, up: bool) -> None:
        self._values[2] = 1.0 if up else 0.0

    def restarted(self) -> None:
        self._values[0] += 1
        self._values[1] = time.time()
        self._values[2] = 1.0

    def report(self) -> dict[str, object]:
        """What ``/health/details`` shows under ``embeddedRedis``."""
        restarts, last, up = int(self._values[0]), float(self._values[1]), bool(self._values[2])
        return {"running": up, "restarts": restarts,
                "lastRestart": datetime.fromtimestamp(last, UTC).isoformat() if restarts else None}


class RedisSupervisor:
    """Start the server, watch it from a thread, restart it when it dies; :meth:`stop` ends both."""

    def __init__(self, server: EmbeddedRedis, board: SupervisorBoard | None = None, *,
                 settings: SupervisorSettings | None = None) -> None:
        self.server = server
        self.board = board or SupervisorBoard()
        self.settings = settings or SupervisorSettings(backoff_base_seconds=0.2, backoff_cap_seconds=5.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        url = self.server.start()
        self.board.running(True)
        self._thread = threading.Thread(target=self._watch, name="embedded-redis-supervisor", daemon=True)
        self._thread.start()
        return url

    def _watch(self) -> None:
        burst = FailureBurst("restarting the embedded redis-server", self.settings, logger=log,
                             expected=(EmbeddedRedisError, OSError))
        while not self._stop.wait(POLL_SECONDS):
            if self.server.alive():
                continue
            self.board.running(False)
            if not burst.failures:
                log.error("embedded redis-server on port %s exited with %s; restarting it on the same data (%s)",
                          self.server.port, self.server.returncode, self.server.data_dir)
            try:
                self.server.start()
            except (EmbeddedRedisError, OSError) as exc:
                self._stop.wait(backoff_delay(burst.failed(exc), self.settings))
                continue
            burst.succeeded()
            self.board.restarted()
            log.warning("embedded redis-server restarted on %s (restart %d)", self.server.url,
                        self.board.report()["restarts"])

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.server.stop()
        self.board.running(False)

    def __enter__(self) -> RedisSupervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
