"""Admission by queueing delay: overload is shed at the door, before any work is spent on it (issue 9).

What is measured: how late the process's event loop runs a timer it set (:meth:`Admission.watch`, a probe every
``queue_delay_interval_ms / 10``). Every callback the loop has to run (requests being parsed, verified, answered)
stands in front of the probe, so its lateness is the time a request arriving now waits before the loop gets to
it: the queueing delay of the whole process, including the time a new request waits to be read at all.

The decision is CoDel's: a short burst is a good queue and is let through; a delay that *stays* above
``queue_delay_target_ms`` for ``queue_delay_interval_ms`` is a standing queue, and then new requests beyond a
floor of ``min_in_flight`` are refused with 503 GATEWAY_OVERLOADED and Retry-After, at once and before their
body is read. Requests are admitted beyond the floor again once the delay has stayed below the target for one
interval (the hysteresis keeps the gateway from admitting a burst every time one probe happens to be on time).
The floor keeps the core busy with accepted work, so throughput never collapses; ``max_in_flight`` stays the
hard cap whatever the delay.

Leaving the overloaded state does not open the door wide at once: requests that waited in the sockets while the
gateway shed would all be admitted in one burst, and the accepted requests' latency (the issue's p99) would jump.
The bound instead ramps up from where it stands, ``min_in_flight`` more for each interval the delay stays below
the target, until it is the hard cap again (additive increase; the next standing queue cuts it back to the
floor at once). A slow back-end never meets the ramp: waiting on the network leaves the loop on time, so the
gateway is never overloaded and the bound stays at the cap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.config import LimitSettings
from gateway.errors import GatewayError

log = logging.getLogger("egov.admission")

LOG_EVERY_SECONDS = 10.0
"Refusals and changes of state are logged at most once in this many seconds (never a line per refusal)."


@dataclass(frozen=True)
class AdmissionPolicy:
    """The numbers admission decides by, from ``[limits]``, in seconds."""

    max_in_flight: int
    "Hard cap: requests in flight at once, whatever the delay."
    min_in_flight: int
    "The floor: while fewer are in flight a request is admitted even when the loop is late."
    target: float
    "Queueing delay (event-loop lateness) that is acceptable."
    interval: float
    "How long the delay must stay above the target before requests are shed (and below it before they are not)."
    retry_after: int
    "Retry-After (seconds) of a refused request."

    @classmethod
    def from_limits(cls, limits: LimitSettings) -> AdmissionPolicy:
        """The policy of ``[limits]``; the floor never exceeds the hard cap."""
        return cls(max_in_flight=limits.max_in_flight,
                   min_in_flight=min(limits.min_in_flight, limits.max_in_flight),
                   target=limits.queue_delay_target_ms / 1000, interval=limits.queue_delay_interval_ms / 1000,
                   retry_after=limits.overload_retry_after_seconds)

    @property
    def probe_period(self) -> float:
        """How often the loop's lateness is sampled: ten samples per interval, 1 to 50 ms apart."""
        return min(0.05, max(0.001, self.interval / 10))


class QueueDelay:
    """CoDel's state over samples of the queueing delay: is there a standing queue? Pure, clock injected."""

    def __init__(self, target: float, interval: float) -> None:
        self.target = target
        self.interval = interval
        self.overloaded = False
        "True while requests beyond the floor are refused."
        self.last_delay = 0.0
        "The latest sample, in seconds."
        self._since: float | None = None  # when the delay went over the target (or, overloaded, under it)

    def observe(self, now: float, delay: float) -> bool:
        """Record one sample taken at ``now`` (monotonic seconds) of a delay of ``delay`` seconds; True when the
        state changed. A sample late by ``delay`` shows the loop has been behind since ``now - delay``."""
        self.last_delay = delay
        crossing = delay < self.target if self.overloaded else delay >= self.target
        if not crossing:
            self._since = None
            return False
        if self._since is None:
            self._since = now - delay if not self.overloaded else now
        if now - self._since < self.interval:
            return False
        self.overloaded, self._since = not self.overloaded, None
        return True


class Admission:
    """The intake's gate, held around each whole request (``with admission: ...``).

    Refuses (GatewayError GATEWAY_OVERLOADED, Retry-After ``retry_after``) when :attr:`bound` requests are in
    flight: ``max_in_flight``; ``min_in_flight`` while the loop has a standing queue (:class:`QueueDelay`); the
    ramp between them after it. Entering costs one comparison; nothing is logged per refusal.
    """

    def __init__(self, policy: AdmissionPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.limit = policy.max_in_flight
        self.clock = clock
        self.delay = QueueDelay(policy.target, policy.interval)
        self.in_flight = 0
        "Requests holding a slot now."
        self.bound = policy.max_in_flight
        "A request is admitted while fewer than this are in flight: the cap, the floor while overloaded, or the ramp."
        self._ramped_at = 0.0
        self.refused = 0
        "Requests refused since the last log line."
        self.changes = 0
        "Changes between shedding and admitting since the last log line."
        self.peak = 0
        "Most requests in flight at once since the last log line."
        self._logged_at = -LOG_EVERY_SECONDS

    @classmethod
    def from_limits(cls, limits: LimitSettings) -> Admission:
        return cls(AdmissionPolicy.from_limits(limits))

    def shedding(self) -> bool:
        """Whether a request arriving now is refused (:attr:`bound` requests are in flight)."""
        return self.in_flight >= self.bound

    def refused_at_door(self) -> None:
        """Count a request refused before it reached the gate (gateway/shell/door.py), as the gate counts its own."""
        self.refused += 1
        self._maybe_log()

    def __enter__(self) -> Admission:
        if self.shedding():
            self._refuse(self.in_flight)
        self.in_flight = in_flight = self.in_flight + 1
        if in_flight > self.peak:
            self.peak = in_flight
        return self

    def __exit__(self, *exc: object) -> None:
        self.in_flight -= 1

    def _refuse(self, in_flight: int) -> None:
        self.refused += 1
        self._maybe_log()
        reason = "queueing delay" if in_flight < self.limit else "in-flight cap"
        raise GatewayError("GATEWAY_OVERLOADED", f"{in_flight} requests in flight ({reason})",
                           retry_after=self.policy.retry_after)

    def observe(self, delay: float) -> None:
        """One sample of the loop's lateness (seconds), taken now; moves the bound (see the module)."""
        now, policy = self.clock(), self.policy
        if self.delay.observe(now, delay):
            self.changes += 1
            if self.delay.overloaded:
                self.bound = policy.min_in_flight
            else:  # the ramp starts from what is in flight now
                self.bound = min(policy.max_in_flight, max(self.in_flight, policy.min_in_flight) + policy.min_in_flight)
                self._ramped_at = now
            self._maybe_log(changed=True)
        elif not self.delay.overloaded and self.bound < policy.max_in_flight:
            if delay >= policy.target:  # a late sample: the interval on time starts again
                self._ramped_at = now
            elif now - self._ramped_at >= policy.interval:
                self.bound = min(policy.max_in_flight, self.bound + policy.min_in_flight)
                self._ramped_at = now

    def _maybe_log(self, *, changed: bool = False) -> None:
        now = self.clock()
        if now - self._logged_at < LOG_EVERY_SECONDS:
            return
        self._logged_at = now
        state = "shedding load" if self.delay.overloaded else "admitting"
        log.warning("admission: %s; since the last line %d refused, %d changes of state, at most %d in flight; "
                    "event-loop delay %.1f ms (target %.1f ms), %d in flight%s", state, self.refused, self.changes,
                    self.peak, 1000 * self.delay.last_delay, 1000 * self.policy.target, self.in_flight,
                    " (state changed)" if changed else "")
        self.refused = self.changes = self.peak = 0

    async def watch(self, stop: asyncio.Event) -> None:
        """Sample the event loop's lateness every ``probe_period`` until ``stop`` is set (one task per process)."""
        period = self.policy.probe_period
        while not stop.is_set():
            due = self.clock() + period
            await asyncio.sleep(period)
            self.observe(max(0.0, self.clock() - due))
