"""Loops that never die: one supervisor for every background loop, one guard for the work items a loop spawns.

A loop is a ``step`` called again and again until ``stop`` is set; the step does one round of work and
its own idle wait. An exception in a step never ends the loop: it is logged (once per burst of failures,
not once per failure, so an outage does not flood the log), the loop waits with exponential backoff and
jitter up to a cap, and tries again; the first success ends the burst and resets the backoff. Storage and
network errors (Redis, OS, connection) are logged as one line; anything else, being a bug, with its
traceback. Every logged text passes through :func:`signing.idnumbers.mask_ids`: no full IIN or BIN reaches
the log. Cancellation (``asyncio.CancelledError``) is never caught: stopping a process stays possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from redis.exceptions import RedisError

from signing.idnumbers import mask_ids

log = logging.getLogger("egov.supervise")
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Step = Callable[[], Awaitable[object]]

STORAGE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)
"Errors of storage or the network (OSError covers ConnectionError and TimeoutError): expected, no traceback."


@dataclass(frozen=True)
class SupervisorSettings:
    """How a supervised loop waits after a failed step and how often it reminds of a long burst."""

    backoff_base_seconds: float = 0.1
    "Wait after the first failure of a burst; each further failure in a row doubles it (with jitter)."
    backoff_cap_seconds: float = 30.0
    "Longest wait between two tries, however long the burst lasts."
    remind_seconds: float = 300.0
    "While a burst goes on, one reminder line this often (its first failure and its end are always logged)."

    def __post_init__(self) -> None:
        if not 0 < self.backoff_base_seconds <= self.backoff_cap_seconds:
            raise ValueError("backoff_base_seconds must be positive and at most backoff_cap_seconds")
        if self.remind_seconds <= 0:
            raise ValueError("remind_seconds must be positive")


def backoff_delay(failures: int, settings: SupervisorSettings, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after ``failures`` failures in a row: half of min(cap, base * 2**(n-1)), plus up to
    that half again at random. The fixed half keeps a failing loop from spinning; the random half spreads
    the retries of many processes so storage that comes back is not hit by all of them at once."""
    ceiling = min(settings.backoff_cap_seconds, settings.backoff_base_seconds * 2.0 ** min(max(0, failures - 1), 60))
    return ceiling / 2 + ceiling / 2 * rng()


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, with IINs/BINs masked."""
    text = str(exc)
    return mask_ids(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


class FailureBurst:
    """A run of failures of one loop (or of the items it spawns) between two successes.

    Logs the burst's first failure, a reminder every ``remind_seconds`` while it lasts, and its end;
    the failures in between are only counted. Share one burst between items that fail for one cause
    (every delivery during a Redis outage) so the cause is logged once.
    """

    def __init__(self, name: str, settings: SupervisorSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger = log,
                 expected: tuple[type[BaseException], ...] = STORAGE_ERRORS) -> None:
        self.name, self.settings, self.clock, self.logger = name, settings or SupervisorSettings(), clock, logger
        self.expected = expected
        "Exceptions logged as one line; any other is a bug and logged with its traceback."
        self.failures = 0
        "Failures in the current burst (0: no burst)."
        self._started = self._reminded = 0.0

    def failed(self, exc: BaseException, item: str | None = None) -> int:
        """Count a failure (logging it if it starts the burst or a reminder is due); returns the count."""
        self.failures += 1
        now = self.clock()
        where = f"{self.name} ({mask_ids(item)})" if item else self.name
        if self.failures == 1:
            self._started = self._reminded = now
            if isinstance(exc, self.expected):
                self.logger.warning("%s failed: %s; backing off", where, describe(exc))
            else:
                trace = mask_ids("".join(traceback.format_exception(exc)).rstrip())
                self.logger.error("%s failed unexpectedly; backing off\n%s", where, trace)
        elif now - self._reminded >= self.settings.remind_seconds:
            self._reminded = now
            self.logger.warning("%s still failing: %d failures in %.0f s, the last %s", where, self.failures,
                                now - self._started, describe(exc))
        return self.failures

    def succeeded(self) -> None:
        """End the burst, if one is going on (logged with its count and length)."""
        if self.failures:
            self.logger.warning("%s recovered after %d failures in %.0f s", self.name, self.failures,
                                self.clock() - self._started)
            self.failures = 0


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, waking early when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def supervise(name: str, step: Step, stop: asyncio.Event, *, settings: SupervisorSettings | None = None,
                    burst: FailureBurst | None = None, sleep: Sleep | None = None,
                    rng: Callable[[], float] = random.random) -> None:
    """Call ``step()`` until ``stop`` is set; a failed step is logged and retried after a backoff.

    ``sleep`` waits between a failure and the next try (default: a wait that ends early on ``stop``);
    ``burst`` lets several loops share one failure log. Returns when ``stop`` is set (checked before each
    step and after each backoff); ``asyncio.CancelledError`` propagates.
    """
    settings = settings or SupervisorSettings()
    burst = burst or FailureBurst(name, settings)

    async def pause(seconds: float) -> None:
        await sleep_unless(stop, seconds)

    wait = sleep or pause
    while not stop.is_set():
        try:
            await step()
        except Exception as exc:  # never BaseException: CancelledError must stop the loop
            await wait(backoff_delay(burst.failed(exc), settings, rng))
            continue
        burst.succeeded()


async def guard(work: Awaitable[T], burst: FailureBurst, item: str | None = None) -> T | None:
    """Await one work item spawned by a loop: its exception is logged through ``burst`` and swallowed
    (None is returned), so one bad item cannot take down the loop or leave an unretrieved task exception.
    ``item`` names it in the log (an application id, never personal data). Cancellation propagates."""
    try:
        result = await work
    except Exception as exc:
        burst.failed(exc, item)
        return None
    burst.succeeded()
    return result


def spawn(tasks: set[asyncio.Task[None]], work: Awaitable[object], burst: FailureBurst,
          item: str | None = None) -> asyncio.Task[None]:
    """Start ``work`` as a guarded task kept referenced in ``tasks`` until it ends (asyncio keeps only
    weak references to tasks: an unreferenced one may be collected mid-flight)."""

    async def run() -> None:
        await guard(work, burst, item)

    task = asyncio.create_task(run())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task
