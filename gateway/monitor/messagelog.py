"""The message log's hook into monitoring: two gauges and the "sealing on time" readiness check.

The message log (built separately) provides an object with the two readings of :class:`MessageLogStatus`; at
start-up ``shell/app.py`` calls :func:`register_message_log` with it. Nothing else is needed: the gauges are read
at scrape time by the process answering ``/metrics`` (so once, whatever the number of workers), the check runs
with the other readiness checks.
"""

from __future__ import annotations

from typing import Protocol

from gateway.monitor.context import MonitorContext
from gateway.monitor.health import CheckResult, ReadinessCheck

UNSEALED_RECORDS = "egov_messagelog_unsealed_records"
LAST_SEAL_AGE = "egov_messagelog_last_seal_age_seconds"
CHECK_NAME = "messagelog"


class MessageLogStatus(Protocol):
    """What monitoring reads from the message log (both cheap: a counter and a timestamp in Redis)."""

    async def unsealed_records(self) -> int:
        """Records written and not yet covered by a seal (signature + RFC 3161 timestamp)."""
        ...

    async def last_seal_age_seconds(self) -> float | None:
        """Seconds since the last seal was made; None when nothing has been sealed yet."""
        ...

    async def oldest_unsealed_age_seconds(self) -> float | None:
        """Seconds the oldest unsealed record has waited; None when nothing waits."""
        ...


def register_message_log(monitor: MonitorContext, status: MessageLogStatus, *, max_seal_age_seconds: float) -> None:
    """Register ``egov_messagelog_unsealed_records``, ``egov_messagelog_last_seal_age_seconds`` and the
    readiness check ``messagelog`` (fails while records wait for a seal older than ``max_seal_age_seconds``)."""

    async def unsealed() -> float:
        return float(await status.unsealed_records())

    monitor.gauges.register(UNSEALED_RECORDS, "Message log records not yet sealed.", unsealed)
    monitor.gauges.register(LAST_SEAL_AGE, "Seconds since the message log's last seal.", status.last_seal_age_seconds)
    monitor.readiness.register(CHECK_NAME, sealing_check(status, max_seal_age_seconds))


def sealing_check(status: MessageLogStatus, max_seal_age_seconds: float) -> ReadinessCheck:
    """Ready while no record has waited for its seal longer than ``max_seal_age_seconds`` (so the first
    records after a start, before any seal, do not flap readiness)."""

    async def check() -> CheckResult:
        waiting, oldest = await status.unsealed_records(), await status.oldest_unsealed_age_seconds()
        age = await status.last_seal_age_seconds()
        sealed = "nothing sealed yet" if age is None else f"the last seal is {age:.0f} s old"
        if waiting == 0 or oldest is None:
            return CheckResult(True, f"no record waits for a seal; {sealed}")
        if oldest > max_seal_age_seconds:
            return CheckResult(False, f"{waiting} records wait, the oldest for {oldest:.0f} s "
                                      f"(limit {max_seal_age_seconds:.0f} s); {sealed}")
        return CheckResult(True, f"{waiting} records wait, the oldest for {oldest:.0f} s; {sealed}")

    return check
