"""Several gateway processes on one port (SO_REUSEPORT), sharing one Redis: `egov-gateway serve --workers N`.

The parent loads and checks the configuration (so a bad setup fails once, before anything starts), starts
the embedded Redis when no REDIS_URL is given (supervised: restarted if it dies), then one child process
per worker. Each child builds its own application (keys and schemas loaded once per process) and binds the
same port; the kernel spreads new connections among them. All state is in Redis, so any process may serve
any request, and the background delivery loops share the work through their leases. Ctrl-C or SIGTERM
stops the children, then Redis.

Processes die together. A worker asks the kernel for SIGTERM when its parent dies (Linux PR_SET_PDEATHSIG)
and also watches its parent's pid (the portable fallback): a SIGKILLed parent leaves no worker serving the
port (and with the workers gone, multiprocessing's resource tracker sees its pipe close and exits too). A
worker that exits is started again, at most ``RESTARTS`` times in ``RESTART_WINDOW_SECONDS``; past that
the parent stops the others and exits with status 1, so its own supervisor (systemd, Kubernetes) sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess

from gateway.config import Settings
from gateway.monitor import metrics
from gateway.shell.app import create_app, load
from gateway.shell.collector import freeze_loaded
from gateway.shell.connections import check_descriptor_limit
from gateway.shell.loop import run as run_loop
from gateway.shell.malloc import tune_malloc
from gateway.shell.monitoring import start_monitor_site
from gateway.shell.redis_supervisor import SupervisorBoard
from gateway.shell.serve import gateway_site, storage_for

log = logging.getLogger("egov.workers")
PR_SET_PDEATHSIG = 1
RESTARTS = 3
"Worker restarts allowed within the window before the parent gives up."
RESTART_WINDOW_SECONDS = 60.0
PARENT_CHECK_SECONDS = 0.5
"How often a worker checks that its parent is alive (the fallback where PR_SET_PDEATHSIG is missing)."


class _Workers:
    """The children, started and restarted by the parent's main thread (PR_SET_PDEATHSIG is per thread)."""

    def __init__(self, settings: Settings, redis_url: str, board: SupervisorBoard | None, count: int) -> None:
        self.context = multiprocessing.get_context("spawn")  # a clean interpreter per worker
        self.args = (settings, redis_url, board, logging.getLogger().level, os.getpid())
        self.children: list[BaseProcess] = [self._start(n) for n in range(count)]
        self.restarts: list[float] = []
        self.stopping = False
        self.exited: set[int] = set()

    def _start(self, n: int) -> BaseProcess:
        child = self.context.Process(target=_worker, args=self.args, name=f"egov-gateway-{n}")
        child.start()
        return child

    def stop(self, *_: object) -> None:
        self.stopping = True
        for child in self.children:
            if child.is_alive():
                child.terminate()  # SIGTERM: the worker stops its site and loops cleanly

    def watch(self) -> int:
        """Until stopped: restart dead workers within the budget; 0 after a clean stop, 1 when giving up."""
        while any(child.is_alive() for child in self.children) or not self.stopping:
            for n, child in enumerate(self.children):
                child.join(timeout=0.5 / len(self.children))
                if child.is_alive():
                    continue
                if child.pid is not None and child.pid not in self.exited:
                    self.exited.add(child.pid)
                    metrics.process_exited(child.pid)  # its live gauges leave the summed view
                if self.stopping:
                    continue
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_SECONDS]
                if len(self.restarts) >= RESTARTS:
                    log.error("%s exited with %s and %d workers were restarted in the last %.0f s: stopping",
                              child.name, child.exitcode, len(self.restarts), RESTART_WINDOW_SECONDS)
                    self.stop()
                    return 1
                self.restarts.append(now)
                log.error("%s exited with %s; starting it again", child.name, child.exitcode)
                self.children[n] = self._start(n)
        return 0


def serve_workers(settings: Settings, workers: int) -> int:
    """Run ``workers`` gateway processes; returns the exit status."""
    load(settings)
    check_descriptor_limit(settings)
    # Before any worker starts (each imports prometheus_client afresh): their metrics go to files there, summed
    # by whichever worker answers /metrics. Emptied now, so counts start at zero with the service.
    metrics.prepare_multiprocess_dir(settings.state_dir / "metrics")
    with storage_for(settings) as (redis_url, board):
        group = _Workers(settings, redis_url, board, workers)
        log.info("%d gateway processes listening on %s", workers, settings.base_url)
        signal.signal(signal.SIGINT, group.stop)
        signal.signal(signal.SIGTERM, group.stop)
        try:
            return group.watch()
        finally:
            group.stop()
            for child in group.children:
                child.join(timeout=15)


def die_with_parent(parent: int) -> None:
    """Linux: SIGTERM when the parent dies; everywhere: exit now if it already has (the race before prctl)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def _worker(settings: Settings, redis_url: str, board: SupervisorBoard | None, level: int, parent: int) -> None:
    die_with_parent(parent)
    tune_malloc()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(processName)s %(name)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    run_loop(_serve_one(settings, redis_url, board, parent), settings.listen.event_loop)


async def _serve_one(settings: Settings, redis_url: str, board: SupervisorBoard | None, parent: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    watchdog = asyncio.create_task(_watch_parent(parent, stop))
    app = create_app(settings, redis_url=redis_url, supervisor=board)
    async with gateway_site(app, settings, reuse_port=True):
        monitor = await start_monitor_site(app, settings, reuse_port=True)
        freeze_loaded()
        await stop.wait()
        if monitor is not None:
            await monitor.cleanup()
    watchdog.cancel()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_SECONDS)
    log.error("the parent process %d is gone: stopping", parent)
    stop.set()
