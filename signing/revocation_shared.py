"""OCSP answers shared between processes (gateway nodes), so that one responder answer serves every node.

The store holds raw OCSP response DER, one entry per certificate (:func:`shared_key`), each expiring when the
answer does for the node that fetched it. It is trusted for nothing: a reader checks a stored response exactly as a
fresh one (:func:`signing.revocation_ocsp.check_ocsp`) against its own clock and policy, and a response that fails
is no answer (the responder is asked). Only good and revoked answers are stored, never unknown or an error.

The store is an optimisation, never a dependency: :class:`GuardedShare` bounds each call, turns every failure
into a miss (the network is asked instead), logs an outage once when it starts, every ``remind_seconds`` while
it lasts and when it ends, and leaves the store alone for ``pause_seconds`` after a failure so that checks during
an outage do not each wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

CALL_TIMEOUT_SECONDS = 0.5
"Longest wait for one call of the store (a healthy Redis answers in well under a millisecond)."
PAUSE_SECONDS = 5.0
"After a failed call, the store is not asked for this long (checks go straight to the network)."
REMIND_SECONDS = 300.0
"While the store keeps failing, one reminder line this often."


class SharedAnswers(Protocol):
    """Where nodes leave OCSP responses for each other. Either call may raise: the checker treats that as a miss."""

    async def get(self, key: str) -> bytes | None:
        """The response DER stored under ``key``, or None."""

    async def put(self, key: str, der: bytes, ttl_seconds: float) -> None:
        """Store ``der`` under ``key`` (replacing any), gone after ``ttl_seconds``."""


def shared_key(issuer_key_hash: bytes, serial: int) -> str:
    """``<issuer key hash hex>:<serial hex>``: the certificate asked about (what OCSP's CertID names)."""
    return f"{issuer_key_hash.hex()}:{serial:x}"


class GuardedShare:
    """A :class:`SharedAnswers` whose failures are misses: bounded in time, logged once per outage."""

    def __init__(self, store: SharedAnswers, *, on_failure: Callable[[], None] = lambda: None,
                 timeout_seconds: float = CALL_TIMEOUT_SECONDS, pause_seconds: float = PAUSE_SECONDS,
                 remind_seconds: float = REMIND_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.on_failure, self.clock = store, on_failure, clock
        self.timeout_seconds, self.pause_seconds, self.remind_seconds = timeout_seconds, pause_seconds, remind_seconds
        self.failures = 0
        "Failed calls in the current outage (0: none going on)."
        self._paused_until = self._started = self._reminded = 0.0

    async def get(self, key: str) -> bytes | None:
        """The stored DER, or None when there is none, the store fails or it is paused after a failure."""
        return await self._call("get", lambda: self.store.get(key))

    async def put(self, key: str, der: bytes, ttl_seconds: float) -> None:
        """Share ``der`` (skipped for a TTL under a millisecond, and while paused)."""
        if ttl_seconds >= 0.001:
            await self._call("put", lambda: self.store.put(key, der, ttl_seconds))

    async def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> T | None:
        if self.clock() < self._paused_until:
            return None
        try:
            async with asyncio.timeout(self.timeout_seconds):
                result = await make()
        except Exception as exc:  # any failure of the store is a miss; CancelledError still propagates
            self._failed(what, exc)
            return None
        if self.failures:
            log.warning("the shared revocation cache is back after %d failed calls in %.0f s", self.failures,
                        self.clock() - self._started)
            self.failures = 0
        return result

    def _failed(self, what: str, exc: Exception) -> None:
        now = self.clock()
        self._paused_until = now + self.pause_seconds
        self.failures += 1
        self.on_failure()
        cause = f"no answer within {self.timeout_seconds:g} s" if isinstance(exc, TimeoutError) else (
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if self.failures == 1:
            self._started = self._reminded = now
            log.warning("the shared revocation cache failed (%s: %s); asking the OCSP responders directly, "
                        "the cache again in %g s", what, cause, self.pause_seconds)
        elif now - self._reminded >= self.remind_seconds:
            self._reminded = now
            log.warning("the shared revocation cache still fails: %d failed calls in %.0f s, the last (%s) %s",
                        self.failures, now - self._started, what, cause)
