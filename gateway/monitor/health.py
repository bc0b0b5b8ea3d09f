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
            log.warning("readiness check %s failed: %s", name, exc, exc_info=True)
            return CheckResult(False, f"the check itself failed ({type(exc).__name__})")
