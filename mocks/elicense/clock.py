"""A simulated clock, so that a procedure of days can be watched in seconds.

Simulated time runs ``scale`` times faster than real time (``scale=3600``: one real second is one
simulated hour; ``scale=0``: time stands still and moves only by :meth:`SimulatedClock.advance`, which
is what tests use). Real time is read from a monotonic clock, so changing the system time does not
make the simulation jump.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta


class SimulatedClock:
    """An aware "now" that advances ``scale`` times faster than real time, and on demand."""

    def __init__(self, start: datetime, scale: float = 1.0, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        self._check_scale(scale)
        self._monotonic = monotonic
        self._base = start
        self._real_base = monotonic()
        self._scale = float(scale)

    @staticmethod
    def _check_scale(scale: float) -> None:
        if not 0 <= scale <= 1e7:
            raise ValueError("scale must be between 0 and 10,000,000")

    @property
    def scale(self) -> float:
        """How many simulated seconds pass per real second."""
        return self._scale

    def now(self) -> datetime:
        """The simulated time now (in the time zone of ``start``)."""
        elapsed = (self._monotonic() - self._real_base) * self._scale
        return self._base + timedelta(seconds=elapsed)

    __call__ = now

    def advance(self, delta: timedelta) -> datetime:
        """Move simulated time forward by ``delta`` (never backwards) and return the new now."""
        if delta < timedelta(0):
            raise ValueError("the simulated clock never goes backwards")
        self._base = self.now() + delta
        self._real_base = self._monotonic()
        return self._base

    def set_scale(self, scale: float) -> None:
        """Run at a new speed from now on; the time already simulated is kept."""
        self._check_scale(scale)
        self._base = self.now()
        self._real_base = self._monotonic()
        self._scale = float(scale)
