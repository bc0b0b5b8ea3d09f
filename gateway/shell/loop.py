"""The event loop `serve` runs on (``listen.event_loop``): the standard library's by default, uvloop on request.

uvloop (libuv underneath) runs the same asyncio code with less CPU per request: sockets, timers and callbacks
are C, not Python. Nothing in the gateway depends on which loop runs it; the tests run on asyncio's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], event_loop: str) -> T:
    """Run ``main`` to completion on a new loop of the kind ``event_loop`` names ("uvloop" or "asyncio")."""
    if event_loop == "uvloop":
        return uvloop.run(main)
    return asyncio.run(main)
