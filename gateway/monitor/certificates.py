"""Certificates the gateway relies on, watched for expiry: trust anchors, intermediate CAs, its own.

``/health/ready`` fails while a trust anchor or the gateway's own certificate is valid for fewer than
``anchor_min_days`` days (or not yet valid); anything within ``expiry_warning_days`` is a warning, logged once an
hour and shown in the details. :meth:`CertificateWatch.seconds_left` feeds ``egov_certificate_expiry_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509

from gateway.monitor.health import CheckResult, WarnOnce


@dataclass(frozen=True)
class Watched:
    """One certificate and its role."""

    kind: str
    "``anchor``, ``intermediate`` or ``signer`` (the gateway's own)."
    certificate: x509.Certificate
    "The certificate."

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


class CertificateWatch:
    """Expiry of the loaded certificates, as readiness checks and a gauge."""

    def __init__(self, watched: Sequence[Watched], *, min_days: int, warning_days: int,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), warn: WarnOnce | None = None) -> None:
        self.watched = tuple(watched)
        self.min_days, self.warning_days = min_days, warning_days
        self.clock = clock
        self.warn = warn or WarnOnce()

    def seconds_left(self) -> dict[tuple[str, ...], float]:
        """Seconds until each certificate's notAfter (negative once expired), by (kind, subject)."""
        now = self.clock()
        return {(w.kind, w.subject): (w.certificate.not_valid_after_utc - now).total_seconds() for w in self.watched}

    def check(self, *kinds: str) -> CheckResult:
        """Fails when one of ``kinds`` is not valid for ``min_days`` more; warns within ``warning_days``."""
        now = self.clock()
        failures: list[str] = []
        warnings: list[str] = []
        chosen = [w for w in self.watched if w.kind in kinds]
        for watched in chosen:
            cert, what = watched.certificate, f"{watched.kind} {watched.subject}"
            until = cert.not_valid_after_utc
            if cert.not_valid_before_utc > now:
                failures.append(f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}")
            elif until - now < timedelta(days=self.min_days):
                failures.append(f"{what} expires {until.isoformat()}, within {self.min_days} days")
            elif until - now < timedelta(days=self.warning_days):
                warnings.append(f"{what} expires {until.isoformat()}, within {self.warning_days} days")
        for message in failures + warnings:
            self.warn(message)
        if not chosen:
            return CheckResult(False, f"no {' or '.join(kinds)} certificate is loaded")
        if failures:
            return CheckResult(False, "; ".join(failures), tuple(warnings))
        return CheckResult(True, f"{len(chosen)} certificate(s) valid for at least {self.min_days} days",
                           tuple(warnings))
