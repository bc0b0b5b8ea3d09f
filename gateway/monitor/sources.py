"""Are the revocation sources answering? A cheap probe of each configured OCSP responder and CRL, reused.

An OCSP responder is asked about one real certificate (an intermediate CA, or the gateway's own) and counts as
answering when it sends an OCSP response that is not ``internalError``/``tryLater``; a CRL address when it sends
a CRL (its nextUpdate feeds the expiry warnings and ``egov_certificate_expiry_seconds{kind="crl"}``). The probe
runs at most once per ``interval_seconds`` whatever the rate of readiness checks, concurrent checks share it, and
an address that starts failing (or recovers) is logged once. Readiness: every OCSP responder answers, or (not in
``require`` mode) every CRL does; a failing source that is not needed is a warning. ``soft_fail`` never fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from gateway.monitor.health import CheckResult, WarnOnce
from signing.policy import RevocationMode

log = logging.getLogger("egov.monitor")
_MAX_BYTES = 20 * 1024 * 1024
CRL_WARNING = timedelta(minutes=15)
"A current CRL whose nextUpdate is nearer than this is warned of."
_NOT_ANSWERING = (ocsp.OCSPResponseStatus.INTERNAL_ERROR, ocsp.OCSPResponseStatus.TRY_LATER)


@dataclass(frozen=True)
class SourceState:
    """The last probe of one address."""

    kind: str
    "``ocsp`` or ``crl``."
    url: str
    "The address."
    ok: bool
    "It answered usefully."
    detail: str
    "What it answered, or why not."
    next_update: datetime | None = None
    "A CRL's nextUpdate."


class RevocationProbe:
    """Probes the revocation sources; one per application."""

    def __init__(self, session: aiohttp.ClientSession, *, mode: RevocationMode, ocsp_urls: Sequence[str],
                 crl_urls: Sequence[str], subject: tuple[x509.Certificate, x509.Certificate] | None,
                 interval_seconds: float, timeout_seconds: float,
                 clock: Callable[[], float] = time.monotonic, warn: WarnOnce | None = None) -> None:
        self.session, self.mode = session, mode
        self.ocsp_urls, self.crl_urls = tuple(dict.fromkeys(ocsp_urls)), tuple(dict.fromkeys(crl_urls))
        self.subject = subject  # (certificate, its issuer) to ask the responders about
        self.interval, self.clock = interval_seconds, clock
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.warn = warn or WarnOnce()
        self._states: tuple[float, tuple[SourceState, ...]] | None = None
        self._failing: set[str] = set()
        self._lock = asyncio.Lock()

    async def states(self) -> tuple[SourceState, ...]:
        """The sources' states, probed afresh when the last probe is older than the interval."""
        async with self._lock:
            if self._states is None or self.clock() - self._states[0] >= self.interval:
                probes = [self._ocsp(url) for url in self.ocsp_urls] + [self._crl(url) for url in self.crl_urls]
                states = tuple(await asyncio.gather(*probes))
                self._log_changes(states)
                self._states = (self.clock(), states)
            return self._states[1]

    def last_states(self) -> tuple[SourceState, ...]:
        """The last probe's states without probing (for the gauge)."""
        return () if self._states is None else self._states[1]

    async def check(self) -> CheckResult:
        if self.mode is RevocationMode.OFF:
            return CheckResult(True, "revocation checking is off")
        states = await self.states()
        if not states:
            return CheckResult(False, "no OCSP responder or CRL address is configured or named by the CA certificates")
        failing = [s for s in states if not s.ok]
        warnings = [f"{s.kind.upper()} {s.url}: {s.detail}" for s in failing] + self._crl_warnings(states)
        ocsp_ok = bool(self.ocsp_urls) and all(s.ok for s in states if s.kind == "ocsp")
        crl_ok = bool(self.crl_urls) and all(s.ok for s in states if s.kind == "crl")
        usable = ocsp_ok or (crl_ok and self.mode is not RevocationMode.REQUIRE)
        if usable or self.mode is RevocationMode.SOFT_FAIL or not failing:
            return CheckResult(True, f"{len(states) - len(failing)} of {len(states)} sources answer", tuple(warnings))
        return CheckResult(False, "; ".join(f"{s.kind.upper()} {s.url}: {s.detail}" for s in failing), tuple(warnings))

    def _crl_warnings(self, states: Sequence[SourceState]) -> list[str]:
        # A CRL fetched just now that is about to lapse: its CA has not published the next one in time.
        soon = datetime.now(UTC) + CRL_WARNING
        return [f"CRL {s.url} lapses soon (nextUpdate {s.next_update.isoformat()})" for s in states
                if s.ok and s.next_update is not None and s.next_update < soon]

    def _log_changes(self, states: Sequence[SourceState]) -> None:
        for state in states:
            name = f"{state.kind.upper()} {state.url}"
            if not state.ok:
                self.warn(f"{name} is failing: {state.detail}")
                self._failing.add(name)
            elif name in self._failing:
                self._failing.discard(name)
                log.info("%s answers again", name)

    async def _get(self, method: str, url: str, data: bytes | None = None) -> bytes:
        headers = {"Content-Type": "application/ocsp-request"} if data is not None else None
        async with self.session.request(method, url, data=data, headers=headers, timeout=self._timeout) as answer:
            if answer.status != 200:
                raise _Failed(f"answered HTTP {answer.status}")
            body = bytearray()
            async for chunk in answer.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > _MAX_BYTES:
                    raise _Failed(f"sent more than {_MAX_BYTES} bytes")
            return bytes(body)

    async def _ocsp(self, url: str) -> SourceState:
        try:
            if self.subject is None:  # nothing to ask about: any HTTP answer shows the responder is up
                await self._get("GET", url)
                return SourceState("ocsp", url, True, "answers HTTP")
            cert, issuer = self.subject
            request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
            response = ocsp.load_der_ocsp_response(await self._get("POST", url, request.public_bytes(Encoding.DER)))
        except _Failed as exc:
            return SourceState("ocsp", url, False, str(exc))
        except ValueError:
            return SourceState("ocsp", url, False, "did not send an OCSP response")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SourceState("ocsp", url, False, f"unreachable ({type(exc).__name__})")
        status = response.response_status
        return SourceState("ocsp", url, status not in _NOT_ANSWERING, f"answers {status.name}")

    async def _crl(self, url: str) -> SourceState:
        try:
            body = await self._get("GET", url)
            crl = x509.load_pem_x509_crl(body) if body.startswith(b"-----") else x509.load_der_x509_crl(body)
        except _Failed as exc:
            return SourceState("crl", url, False, str(exc))
        except ValueError:
            return SourceState("crl", url, False, "did not send a CRL")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SourceState("crl", url, False, f"unreachable ({type(exc).__name__})")
        next_update = crl.next_update_utc
        if next_update is not None and next_update <= datetime.now(UTC):
            return SourceState("crl", url, False, f"sends a stale CRL (nextUpdate {next_update.isoformat()})",
                               next_update)
        return SourceState("crl", url, True, "sends a current CRL", next_update)


class _Failed(Exception):
    """A source answered, but not usefully."""
