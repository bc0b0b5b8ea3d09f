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

    trial_at: float | None = None
    "Monotonic time the half-open trial call was let through; None when no trial is out."

    def allow(self) -> bool:
        """May a call go through now? Closed: yes. Open: no, until the reset time has passed; then the breaker
        is half-open and exactly one caller gets through as the trial, every other is refused until the trial's
        result is recorded. A trial whose result never comes (its caller died) lapses after ``reset_seconds``,
        and the next caller becomes the trial."""
        now = self.clock()
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < self.reset_seconds:
                return False
            self.state = BreakerState.HALF_OPEN
        elif self.trial_at is not None and now - self.trial_at < self.reset_seconds:
            return False
        self.trial_at = now
        return True

    def retry_after(self) -> float:
        """Seconds until the breaker may let a call through (0 when it would now)."""
        now = self.clock()
        if self.state is BreakerState.HALF_OPEN and self.trial_at is not None:
            return max(0.0, self.reset_seconds - (now - self.trial_at))
        if self.state is BreakerState.OPEN:
            return max(0.0, self.reset_seconds - (now - self.opened_at))
        return 0.0

    def record_success(self) -> None:
        """The back-end answered (any answer, a refusal too: it is reachable)."""
        self.state, self.failures, self.trial_at = BreakerState.CLOSED, 0, None

    def record_failure(self) -> None:
        self.failures += 1
        self.trial_at = None
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
