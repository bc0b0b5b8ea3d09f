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

from gateway.config import (
    Settings,
)
from gateway.shell.app import MaskingAccessLogger, create_app, load
from gateway.shell.redis_embedded import EmbeddedRedis

log = logging.getLogger("egov.serve")
DEFAULT_STATE_DIR = Path(os.environ.get("EGOV_STATE_DIR", ".egov"))
"Where the embedded Redis and the demo keep their data unless the configuration says otherwise."


@contextlib.contextmanager
def redis_for(settings: Settings) -> Iterator[str]:
    """Yield a Redis URL: REDIS_URL or redis.url if set, else an embedded server under state_dir."""
    url = os.environ.get("REDIS_URL") or settings.redis.url
    if url:
        yield url
        return
    with EmbeddedRedis(settings.state_dir / "redis") as server:
        log.info("embedded redis-server on %s (data in %s)", server.url, settings.state_dir / "redis")
        # `egov-gateway log verify` reads the live tail of the message log from here.
        (settings.state_dir / "redis" / "url").write_text(server.url + "\n", encoding="utf-8")
        yield server.url


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


async def wait_for_stop() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def serve(settings: Settings) -> None:
    loaded = load(settings)  # keys, trust anchors, schemas: a bad setup fails before anything starts
    with redis_for(settings) as redis_url:
        app = create_app(settings, redis_url=redis_url, loaded=loaded)
        async with site_running(app, settings.listen.host, settings.listen.port):
            log.info("gateway listening on %s", settings.base_url)
            await wait_for_stop()


def with_port(settings: Settings, port: int | None) -> Settings:
    return settings if port is None else replace(settings, listen=replace(settings.listen, port=port))
