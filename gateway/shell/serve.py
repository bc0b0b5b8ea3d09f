"""Running the gateway: Redis (embedded or external), the HTTP site, and a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from gateway.config import ConfigError, Settings
from gateway.intake.context import INTAKE
from gateway.shell.app import MaskingAccessLogger, create_app, load
from gateway.shell.collector import freeze_loaded
from gateway.shell.connections import GuardedSite, check_descriptor_limit, quiet_accept_errors, runner_for
from gateway.shell.door import Door
from gateway.shell.malloc import tune_malloc
from gateway.shell.monitoring import start_monitor_site
from gateway.shell.redis_clients import cluster_mode, uses_sentinel
from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.redis_supervisor import RedisSupervisor, SupervisorBoard

log = logging.getLogger("egov.serve")
DEFAULT_STATE_DIR = Path(os.environ.get("EGOV_STATE_DIR", ".egov"))
"Where the embedded Redis and the demo keep their data unless the configuration says otherwise."


@contextlib.contextmanager
def storage_for(settings: Settings) -> Iterator[tuple[str, SupervisorBoard | None]]:
    """Yield a Redis URL and, for an embedded server, the board of its supervisor.

    REDIS_URL or redis.url if set (an external server or a node of a cluster: redis-py reconnects per command,
    with backoff in its retries and in the background loops), Sentinel's primary when ``sentinel_urls`` are
    set, else an embedded server under state_dir, restarted if it dies.
    """
    url = os.environ.get("REDIS_URL") or settings.redis.url
    if url or uses_sentinel(settings):  # Sentinel: the clients ask the Sentinels for the primary, not this url
        yield url or f"sentinel://{settings.redis.sentinel_master}", None
        return
    if cluster_mode(settings):
        raise ConfigError("redis.cluster: needs redis.url (or REDIS_URL), one node of the cluster; "
                          "the embedded server is a single one")
    server = EmbeddedRedis(settings.state_dir / "redis", appendfsync=settings.redis.appendfsync)
    with RedisSupervisor(server) as supervisor:
        log.info("embedded redis-server on %s (data in %s, appendfsync %s), supervised", server.url,
                 settings.state_dir / "redis", settings.redis.appendfsync)
        # `egov-gateway log verify` reads the live tail of the message log from here.
        (settings.state_dir / "redis" / "url").write_text(server.url + "\n", encoding="utf-8")
        yield server.url, supervisor.board


@contextlib.contextmanager
def redis_for(settings: Settings) -> Iterator[str]:
    """Yield a Redis URL: REDIS_URL or redis.url if set, else a supervised embedded server under state_dir."""
    with storage_for(settings) as (url, _board):
        yield url


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log_class=MaskingAccessLogger)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


@contextlib.asynccontextmanager
async def site_running(app: web.Application, host: str, port: int) -> AsyncIterator[web.AppRunner]:
    runner = await start_site(app, host, port)
    try:
        yield runner
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def gateway_site(app: web.Application, settings: Settings, *,
                       reuse_port: bool = False) -> AsyncIterator[web.AppRunner]:
    """The gateway's own listener: header and idle timeouts, the connection cap, a quiet accept loop."""
    quiet_accept_errors(asyncio.get_running_loop(), settings.listen.error_log_seconds)
    runner = runner_for(app, settings, MaskingAccessLogger)
    await runner.setup()
    try:
        door = Door.of(app[INTAKE].pipeline.limiter) if settings.limits.refuse_at_door else None
        await GuardedSite(runner, settings, reuse_port=reuse_port, door=door).start()
        yield runner
    finally:
        await runner.cleanup()


async def wait_for_stop() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def serve(settings: Settings) -> None:
    tune_malloc()  # before anything big is allocated: big documents' buffers go back to the system
    loaded = load(settings)  # keys, trust anchors, schemas: a bad setup fails before anything starts
    check_descriptor_limit(settings)
    with storage_for(settings) as (redis_url, board):
        app = create_app(settings, redis_url=redis_url, loaded=loaded, supervisor=board)
        async with gateway_site(app, settings):
            log.info("gateway listening on %s", settings.base_url)
            monitor = await start_monitor_site(app, settings)
            freeze_loaded()
            try:
                await wait_for_stop()
            finally:
                if monitor is not None:
                    await monitor.cleanup()


def with_port(settings: Settings, port: int | None) -> Settings:
    return settings if port is None else replace(settings, listen=replace(settings.listen, port=port))
