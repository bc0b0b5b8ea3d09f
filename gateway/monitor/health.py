"""Readiness: named checks, each an async callable returning a :class:`CheckResult`, run together.

A check says whether this process can serve traffic now (``ok``), why (``detail``, for operators only) and what
is coming (``warnings``: a certificate near expiry, a source that started failing). Rooms register their checks
on the application's :class:`Readiness` at start-up (``/health/ready`` runs them; docs/monitoring.md lists them).
A check that raises or overruns its time counts as failed: readiness fails closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("egov.monitor")
WARN_EVERY_SECONDS = 3600.0
"A standing warning is logged again after this long (it is in the details all the time)."


@dataclass(frozen=True)
class CheckResult:
    """One readiness check's answer."""

    ok: bool
    "True when this part lets the gateway serve traffic."
    detail: str
    "What was found (operators only: it may name addresses, certificates, keys)."
    warnings: tuple[str, ...] = ()
    "Trouble ahead that does not fail the check yet (expiry within the warning window, a failing mirror)."


ReadinessCheck = Callable[[], Awaitable[CheckResult]]
"An async callable answering one readiness check."


class Readiness:
    """The registered checks of one application."""

    def __init__(self, *, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self._checks: dict[str, ReadinessCheck] = {}
        self._warn = WarnOnce(every=60.0)  # load balancers ask every few seconds: a broken check is logged less

    def register(self, name: str, check: ReadinessCheck) -> None:
        """Add a check under ``name`` (shown to callers when it fails); a name used twice is a ValueError."""
        if name in self._checks:
            raise ValueError(f"readiness check {name} is already registered")
        self._checks[name] = check

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._checks)

    async def run(self) -> dict[str, CheckResult]:
        """Every check's result, by name, run concurrently."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._one(name) for name in names))
        return dict(zip(names, results, strict=True))

    async def _one(self, name: str) -> CheckResult:
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self._checks[name](), self.timeout_seconds)
        except TimeoutError:
            return CheckResult(False, f"no answer within {time.perf_counter() - started:.1f} s")
        except Exception as exc:  # a broken check must not read as ready
            log.debug("readiness check %s failed", name, exc_info=True)
            self._warn(f"readiness check {name} failed: {type(exc).__name__}: {exc}")
            return CheckResult(False, f"the check itself failed ({type(exc).__name__})")


class WarnOnce:
    """Logs each distinct warning once per ``every`` seconds, however often the checks run."""

    def __init__(self, every: float = WARN_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self._last: dict[str, float] = {}

    def __call__(self, message: str) -> None:
        now = self.clock()
        if now - self._last.get(message, -self.every) >= self.every:
            if len(self._last) >= 1000:  # messages come from a few sources and certificates; bound it anyway
                self._last.clear()
            self._last[message] = now
            log.warning("%s", message)
