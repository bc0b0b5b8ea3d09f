"""Retries with backoff and jitter, a circuit breaker per back-end, and a bound on work in flight."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from gateway.errors import GatewayError


def backoff_seconds(attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff: a random wait in [0, min(cap, base * 2**(attempt-1))].

    Jitter spreads retries of many applications over time so a back-end that comes back is not hit by
    all of them at the same instant.
    """
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling * rng()


class BreakerState(StrEnum):
    CLOSED = "closed"
    "Calls go through."
    OPEN = "open"
    "Calls are refused without trying, until the reset time has passed."
    HALF_OPEN = "half_open"
    "One trial call goes through; its result closes or reopens the breaker."


@dataclass
class CircuitBreaker:
    """Per back-end, per process. Opens after ``failure_threshold`` transient failures in a row."""

    failure_threshold: int = 5
    "Consecutive transient failures that open the breaker."
    reset_seconds: float = 30.0
    "How long it stays open before a trial call."
    state: BreakerState = BreakerState.CLOSED
    "Current state."
    failures: int = 0
    "Consecutive failures counted so far."
    opened_at: float = 0.0
    "Monotonic time it opened."
    clock: Callable[[], float] = time.monotonic
    "Time source (tests may replace it)."

    def allow(self) -> bool:
        """May a call go through now? (Moves OPEN to HALF_OPEN once the reset time has passed.)

        Caveat: while HALF_OPEN every caller is allowed until the trial's result is recorded, so
        concurrent callers may all get through, not only one trial.
        """
        if self.state is BreakerState.OPEN and self.clock() - self.opened_at >= self.reset_seconds:
            self.state = BreakerState.HALF_OPEN
            return True
        return self.state is not BreakerState.OPEN

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when it would now)."""
        return max(0.0, self.reset_seconds - (self.clock() - self.opened_at))

    def record_success(self) -> None:
        self.state, self.failures = BreakerState.CLOSED, 0

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state, self.opened_at = BreakerState.OPEN, self.clock()


class InFlightLimiter:
    """Admits at most ``limit`` requests at once; the next one is refused at once with 503 and Retry-After,
    instead of queueing without bound (a full gateway says so)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def __enter__(self) -> InFlightLimiter:
        if self.in_flight >= self.limit:
            raise GatewayError("GATEWAY_OVERLOADED", f"{self.in_flight} requests in flight")
        self.in_flight += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.in_flight -= 1
