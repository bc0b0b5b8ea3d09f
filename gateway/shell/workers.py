"""Several gateway processes on one port (SO_REUSEPORT), sharing one Redis: `egov-gateway serve --workers N`.

The parent loads and checks the configuration (so a bad setup fails once, before anything starts), starts
the embedded Redis when no REDIS_URL is given, then one child process per worker. Each child builds its own
application (keys and schemas loaded once per process) and binds the same port; the kernel spreads new
connections among them. All state is in Redis, so any process may serve any request, and the background
delivery loops share the work through their leases. Ctrl-C or SIGTERM stops the children, then Redis.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal

from aiohttp import web

from gateway.config import Settings
from gateway.monitor import metrics
from gateway.shell.app import MaskingAccessLogger, create_app, load
from gateway.shell.monitoring import start_monitor_site
from gateway.shell.serve import redis_for

log = logging.getLogger("egov.workers")


def serve_workers(settings: Settings, workers: int) -> None:
    load(settings)
    # Before any worker starts (each imports prometheus_client afresh): their metrics go to files there, summed
    # by whichever worker answers /metrics. Emptied now, so counts start at zero with the service.
    metrics.prepare_multiprocess_dir(settings.state_dir / "metrics")
    context = multiprocessing.get_context("spawn")  # a clean interpreter per worker: no inherited loops/sockets
    with redis_for(settings) as redis_url:
        children = [context.Process(target=_worker, args=(settings, redis_url, logging.getLogger().level),
                                    name=f"egov-gateway-{n}") for n in range(workers)]
        for child in children:
            child.start()
        log.info("%d gateway processes listening on %s", workers, settings.base_url)
        stopping = False
        exited: set[int] = set()

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True
            for child in children:
                if child.is_alive():
                    child.terminate()  # SIGTERM: the worker stops its site and loops cleanly

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while any(child.is_alive() for child in children):
                for child in children:
                    child.join(timeout=0.5)
                    if not child.is_alive() and child.pid is not None and child.pid not in exited:
                        exited.add(child.pid)
                        metrics.process_exited(child.pid)
                    if not child.is_alive() and not stopping:
                        log.error("%s exited with %s; stopping the others", child.name, child.exitcode)
                        stop()
        finally:
            stop()
            for child in children:
                child.join(timeout=15)


def _worker(settings: Settings, redis_url: str, level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(processName)s %(name)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    asyncio.run(_serve_one(settings, redis_url))


async def _serve_one(settings: Settings, redis_url: str) -> None:
    app = create_app(settings, redis_url=redis_url)
    runner = web.AppRunner(app, access_log_class=MaskingAccessLogger)
    await runner.setup()
    await web.TCPSite(runner, settings.listen.host, settings.listen.port, reuse_port=True).start()
    monitor = await start_monitor_site(app, settings, reuse_port=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    if monitor is not None:
        await monitor.cleanup()
    await runner.cleanup()
