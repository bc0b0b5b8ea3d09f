"""`serve` runs on the event loop ``listen.event_loop`` names (gateway.shell.loop)."""

from __future__ import annotations

import asyncio

import uvloop

from gateway.config import Settings
from gateway.shell.loop import run


async def _running_loop_type() -> type:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_uvloop_runs_the_coroutine() -> None:
    assert issubclass(run(_running_loop_type(), "uvloop"), uvloop.Loop)


def test_asyncio_is_the_default_and_runs_the_standard_librarys_loop() -> None:
    assert Settings().listen.event_loop == "asyncio"
    assert issubclass(run(_running_loop_type(), "asyncio"), asyncio.BaseEventLoop)
    assert not issubclass(run(_running_loop_type(), "asyncio"), uvloop.Loop)
