"""The message log's hook into monitoring: two gauges, the "sealing on time" readiness check and the TSA's.

The message log (built separately) provides an object with the readings of :class:`MessageLogStatus`; at
start-up ``shell/app.py`` calls :func:`register_message_log` with it. Nothing else is needed: the gauges are read
at scrape time by the process answering ``/metrics`` (so once, whatever the number of workers), the checks run
with the other readiness checks.

The TSA is a watched source like the OCSP responders and CRLs, but watched through the sealer's own requests (in
whichever process holds the sealer's lease; the state is shared through Redis): while they fail, the check
``tsa`` warns, naming the address (in the details, for operators only), and it clears at the first answer
accepted. It never fails readiness itself: every gateway shares the TSA, and records wait for it safely until the
``messagelog`` check (sealing on time) fails, which it does well before intake refuses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from gateway.monitor.context import MonitorContext
from gateway.monitor.health import CheckResult, ReadinessCheck

UNSEALED_RECORDS = "egov_messagelog_unsealed_records"
LAST_SEAL_AGE = "egov_messagelog_last_seal_age_seconds"
CHECK_NAME = "messagelog"
TSA_CHECK_NAME = "tsa"


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

    async def tsa_failure(self) -> tuple[datetime, str] | None:
        """Since when and how the TSA's time-stamp requests fail; None while it answers."""
        ...


def tsa_label(url: str) -> str:
    """The TSA's address as logs and operators see it: without any user or password in the URL."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "(an unreadable address)"
    return urlunsplit(parts._replace(netloc=host))


def register_message_log(monitor: MonitorContext, status: MessageLogStatus, *, max_seal_age_seconds: float,
                         tsa_url: str | None = None) -> None:
    """Register ``egov_messagelog_unsealed_records``, ``egov_messagelog_last_seal_age_seconds``, the readiness
    check ``messagelog`` (fails while records wait for a seal older than ``max_seal_age_seconds``) and, given
    ``tsa_url``, the check ``tsa`` (warns while its time-stamp requests fail)."""

    async def unsealed() -> float:
        return float(await status.unsealed_records())

    monitor.gauges.register(UNSEALED_RECORDS, "Message log records not yet sealed.", unsealed)
    monitor.gauges.register(LAST_SEAL_AGE, "Seconds since the message log's last seal.", status.last_seal_age_seconds)
    monitor.readiness.register(CHECK_NAME, sealing_check(status, max_seal_age_seconds))
    if tsa_url:
        monitor.readiness.register(TSA_CHECK_NAME, tsa_check(status, tsa_url))


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


def tsa_check(status: MessageLogStatus, tsa_url: str) -> ReadinessCheck:
    """Always passes; warns while the TSA's time-stamp requests fail (the address only in operators' details)."""
    name = f"TSA {tsa_label(tsa_url)}"

    async def check() -> CheckResult:
        failure = await status.tsa_failure()
        if failure is None:
            return CheckResult(True, f"{name}: no failing time-stamp request since its last answer")
        since, detail = failure
        when = since.isoformat(timespec="seconds")
        return CheckResult(True, f"{name} fails since {when}; sealing waits for it",
                           (f"{name}: {detail} (failing since {when})",))

    return check
