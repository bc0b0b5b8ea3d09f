"""One run of a coroutine per key, shared by the concurrent callers that ask for it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Once(Generic[T]):
    """Runs one ``make`` per key for concurrent callers; a caller's cancellation does not cancel it."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        future = self._running.get(key)
        if future is None:
            future = self._running[key] = asyncio.ensure_future(make())
            future.add_done_callback(functools.partial(self._settled, key))
        return await asyncio.shield(future)

    def _settled(self, key: Hashable, future: asyncio.Future[T]) -> None:
        self._running.pop(key, None)
        if not future.cancelled():
            future.exception()  # marks a failure that no caller awaits any more as seen
