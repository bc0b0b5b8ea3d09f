"""The delivery's resilience parts on their own, with an injected clock and a seeded RNG: the circuit
breaker's states, full-jitter backoff, and the in-flight bound. Nothing here waits."""

from __future__ import annotations

import random

import pytest

from gateway.delivery.resilience import BreakerState, CircuitBreaker, InFlightLimiter, backoff_seconds
from gateway.errors import GatewayError


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def open_breaker(clock: ManualClock, *, threshold: int = 3, reset: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, reset, clock=clock)
    for _ in range(threshold):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    return breaker


# --- circuit breaker -------------------------------------------------------------------------------


def test_breaker_stays_closed_below_the_threshold() -> None:
    breaker = CircuitBreaker(3, 30.0, clock=ManualClock())
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_breaker_opens_after_threshold_failures_in_a_row() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(3, 30.0, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == clock.now
    assert not breaker.allow()


def test_a_success_resets_the_count_of_failures() -> None:
    breaker = CircuitBreaker(3, 30.0, clock=ManualClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED, "failures must be consecutive to open it"


def test_open_breaker_refuses_until_the_reset_time_and_says_how_long() -> None:
    clock = ManualClock()
    breaker = open_breaker(clock, reset=30.0)
    assert breaker.retry_after() == 30.0
    clock.advance(29.5)
    assert not breaker.allow()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == 0.5
    clock.advance(0.5)
    assert breaker.retry_after() == 0.0
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN


def test_trial_success_closes_the_breaker() -> None:
    clock = ManualClock()
    breaker = open_breaker(clock)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert breaker.allow()


def test_trial_failure_reopens_the_breaker_for_a_full_reset_time() -> None:
    clock = ManualClock()
    breaker = open_breaker(clock, threshold=5, reset=30.0)
    clock.advance(31.0)
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open, whatever the threshold
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == clock.now
    assert not breaker.allow()
    assert breaker.retry_after() == 30.0


def test_half_open_lets_one_trial_through() -> None:
    clock = ManualClock()
    breaker = open_breaker(clock)
    clock.advance(30.0)
    assert breaker.allow(), "the trial"
    assert not breaker.allow(), "a second caller while the trial is out"
    assert not breaker.allow(), "and a third"
    assert breaker.retry_after() == 30.0


def test_a_trial_whose_result_never_comes_lapses_after_the_reset_time() -> None:
    clock = ManualClock()
    breaker = open_breaker(clock)
    clock.advance(30.0)
    assert breaker.allow(), "the trial; its caller dies without recording anything"
    clock.advance(29.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow(), "the next caller is the trial"
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.allow() and breaker.allow(), "closed again: everyone"


def test_breaker_defaults_to_the_monotonic_clock() -> None:
    import time

    assert CircuitBreaker().clock is time.monotonic


# --- backoff ----------------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_per_attempt_up_to_the_cap() -> None:
    ceilings = [backoff_seconds(attempt, base=0.5, cap=5.0, rng=lambda: 1.0) for attempt in range(1, 7)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_attempt_zero_or_below_waits_at_most_the_base() -> None:
    assert backoff_seconds(0, base=0.5, cap=5.0, rng=lambda: 1.0) == 0.5
    assert backoff_seconds(-3, base=0.5, cap=5.0, rng=lambda: 1.0) == 0.5


def test_backoff_is_full_jitter_between_zero_and_the_ceiling() -> None:
    rng = random.Random(8)
    waits = [backoff_seconds(4, base=1.0, cap=60.0, rng=rng.random) for _ in range(2000)]
    assert all(0.0 <= wait < 8.0 for wait in waits)
    assert min(waits) < 0.1 and max(waits) > 7.9, "the whole range [0, ceiling) is used"
    assert 3.5 < sum(waits) / len(waits) < 4.5, "uniform: the mean is half the ceiling"
    again = random.Random(8)
    assert waits[:5] == [backoff_seconds(4, base=1.0, cap=60.0, rng=again.random) for _ in range(5)]


def test_backoff_never_exceeds_the_cap_however_many_attempts() -> None:
    rng = random.Random(1)
    assert max(backoff_seconds(60, base=0.5, cap=2.0, rng=rng.random) for _ in range(500)) <= 2.0


# --- in-flight limiter ------------------------------------------------------------------------------


def test_limiter_admits_up_to_the_limit_then_refuses_with_503() -> None:
    limiter = InFlightLimiter(2)
    with limiter, limiter:
        assert limiter.in_flight == 2
        with pytest.raises(GatewayError) as refused, limiter:
            pass
        assert refused.value.code == "GATEWAY_OVERLOADED"
        assert refused.value.spec.http_status == 503
        assert limiter.in_flight == 2, "a refused request does not count"
    assert limiter.in_flight == 0


def test_limiter_frees_its_slot_when_the_work_fails() -> None:
    limiter = InFlightLimiter(1)
    with pytest.raises(RuntimeError), limiter:
        raise RuntimeError("the work failed")
    assert limiter.in_flight == 0
    with limiter:
        assert limiter.in_flight == 1
