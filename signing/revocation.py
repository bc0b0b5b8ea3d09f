"""Revocation status of a certificate path: cached OCSP answers, then OCSP, then CRLs (base + delta).

Every certificate of a trusted path but its anchor is checked against its issuer: the signer's and each
intermediate CA's (:meth:`RevocationChecker.check_path`). An OCSP response counts only if signed by the issuer,
or by a responder certificate in it that the issuer issued directly with EKU OCSPSigning (RFC 6960 4.2.2.2),
with a CertID naming our certificate, our nonce echoed (unless the policy accepts a responder that ignores
nonces), thisUpdate neither in the future nor older than the policy's maximum age, and nextUpdate not past;
``unknown`` is no answer (the CRL decides). A CRL counts only if the certificate's issuer signed it, a delta
only if its DeltaCRLIndicator fits the base; when the base names a delta (FreshestCRL), "good" needs the delta
too, "revoked" in the base stands alone. Cached: OCSP answers (good or revoked, never unknown) by (issuer key
hash, serial) until nextUpdate (or thisUpdate + freshness, and never past thisUpdate + the maximum age), CRLs
by URL until nextUpdate (their signature is checked against the issuer at every use); never a failure. A
cached answer costs two dict lookups; concurrent checks of one certificate, or fetches of one CRL, share one
request. Given a :class:`~signing.revocation_shared.SharedAnswers` store, OCSP answers are shared between
processes too: after a memory miss the store is asked, and a stored response counts only once it passes every
check a fresh one must pass (:mod:`signing.revocation_ocsp`); each answer fetched is stored until it expires.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import aiohttp
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from signing import gost_x509
from signing.policy import RevocationMode
from signing.report import Indication, RevocationInfo, SubIndication, ValidationReport
from signing.revocation_fields import crl_urls as _crl_urls
from signing.revocation_fields import extension as _extension
from signing.revocation_fields import key_hash as _key_hash
from signing.revocation_fields import ocsp_url as _ocsp_url
from signing.revocation_fields import reason as _reason
from signing.revocation_ocsp import SourceFailed as _SourceFailed
from signing.revocation_ocsp import check_ocsp, fresh_until, ocsp_question, verify_signature
from signing.revocation_settings import RevocationSettings
from signing.revocation_shared import GuardedShare, SharedAnswers, shared_key
from signing.single_flight import Once
from signing.verifier import ERROR_CODES, SignatureRejected, VerifiedDocument

__all__ = ["LookupObserver", "RevocationChecker", "RevocationSettings", "RevocationUnavailable", "SharedAnswers",
           "apply_revocation"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_NOT_CHECKED = "revocation status was not checked"  # prefix of the verifier's warning, replaced here
_MAX_ANSWERS = 100_000  # cached OCSP answers
_MAX_CRL_BYTES = 20 * 1024 * 1024

LookupObserver = Callable[[str, str], None]
"""Told of every lookup as (source, result): ("cache", status) for an answer from the OCSP cache; ("shared",
"good" | "revoked") for an answer from the shared store, ("shared", "refused") for a stored response that failed
its checks, ("shared", "unavailable") for a failed call of the store (a miss is not told); else ("ocsp" or "crl",
"good" | "revoked" | "unavailable") for each source asked. Must be quick and must not raise (metrics)."""


class RevocationUnavailable(Exception):
    """No revocation source gave a usable answer; :attr:`reason` says why, per source."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Crl:
    crl: x509.CertificateRevocationList
    "Parsed, signature checked."
    url: str
    "Where it came from."
    number: int | None
    "CRLNumber."
    base_number: int | None
    "DeltaCRLIndicator (the base CRL number) for a delta, else None."
    delta_urls: tuple[str, ...]
    "FreshestCRL addresses named by a base CRL."
    expires: datetime
    "nextUpdate, or thisUpdate + max age."
    signers: set[bytes] = field(default_factory=set)
    "Key hashes of the issuers whose signature on it was checked (fetched once, it may serve several paths)."


class RevocationChecker:
    """Answers "is this certificate revoked?" from OCSP and CRLs, with caching; one per process."""

    def __init__(self, settings: RevocationSettings, session: aiohttp.ClientSession, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 on_lookup: LookupObserver = lambda _source, _result: None,
                 shared: SharedAnswers | None = None) -> None:
        """``shared``: OCSP answers shared with other processes (None: this process's memory only)."""
        self.settings = settings
        self.on_lookup = on_lookup
        self.session = session
        self.clock = clock
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
        self._skew = timedelta(seconds=settings.clock_skew_seconds)
        # (issuer key hash, serial) -> (the answer with source "cache", nextUpdate or thisUpdate + freshness)
        self._answers: dict[tuple[bytes, int], tuple[RevocationInfo, datetime]] = {}
        self._crls: dict[str, _Crl] = {}
        self._issuers: dict[int, tuple[x509.Certificate, bytes]] = {}
        self._checks: Once[RevocationInfo] = Once()
        self._fetches: Once[_Crl] = Once()
        self._shared = None if shared is None else GuardedShare(
            shared, on_failure=lambda: on_lookup("shared", "unavailable"))

    async def check(self, certificate: x509.Certificate, issuer: x509.Certificate) -> RevocationInfo:
        """The revocation status of ``certificate``, or raise :class:`RevocationUnavailable`."""
        key = (self._issuer_key_hash(issuer), certificate.serial_number)
        cached = self._answers.get(key)
        if cached is not None and self.clock() < cached[1]:
            self.on_lookup("cache", cached[0].status)
            return cached[0]
        return await self._checks.run(key, lambda: self._lookup(key, certificate, issuer))

    async def check_path(self, path: Sequence[x509.Certificate]) -> tuple[RevocationInfo | RevocationUnavailable, ...]:
        """The status of every certificate of ``path`` (signer first, anchor last) but the anchor, each against
        its issuer: the answer, or the :class:`RevocationUnavailable` saying why there is none."""
        checks = (self.check(certificate, issuer) for certificate, issuer in itertools.pairwise(path))
        answers = await asyncio.gather(*checks, return_exceptions=True)
        for answer in answers:
            if not isinstance(answer, RevocationInfo | RevocationUnavailable):
                raise answer  # a bug, not an answer
        return tuple(a for a in answers if isinstance(a, RevocationInfo | RevocationUnavailable))

    def _issuer_key_hash(self, issuer: x509.Certificate) -> bytes:
        # Memo by identity (the trust store hands out the same objects): hashing the key every time is not free.
        memo = self._issuers.get(id(issuer))
        if memo is None or memo[0] is not issuer:  # holding the object keeps its id from being reused
            self._issuers = {} if len(self._issuers) > 1000 else self._issuers
            memo = self._issuers[id(issuer)] = (issuer, _key_hash(issuer))
        return memo[1]

    async def _lookup(self, key: tuple[bytes, int], cert: x509.Certificate, issuer: x509.Certificate) -> RevocationInfo:
        shared = await self._shared_answer(key, cert, issuer)
        if shared is not None:
            return shared
        failures: list[str] = []
        for name, source in (("OCSP", self._ocsp), ("CRL", self._crl_status)):
            try:
                info = await source(key, cert, issuer)
            except (_SourceFailed, ValueError, UnsupportedAlgorithm) as exc:  # a malformed answer is no answer
                failures.append(f"{name}: {exc}")
                self.on_lookup(name.lower(), "unavailable")
            else:
                self.on_lookup(name.lower(), info.status)
                return replace(info, detail="; ".join(failures)) if failures else info
        reason = "; ".join(failures)
        log.warning("revocation status of serial %x unavailable: %s", cert.serial_number, reason)
        raise RevocationUnavailable(reason)

    async def _fetch(self, method: str, url: str, limit: int, data: bytes | None = None) -> bytes:
        headers = {"Content-Type": "application/ocsp-request"} if data is not None else None
        try:
            async with self.session.request(method, url, data=data, headers=headers, timeout=self._timeout) as answer:
                if answer.status != 200:
                    raise _SourceFailed(f"{url} answered HTTP {answer.status}")
                body = bytearray()
                async for chunk in answer.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        raise _SourceFailed(f"{url} sent more than {limit} bytes")
                return bytes(body)
        except TimeoutError:
            raise _SourceFailed(f"{url} did not answer within {self.settings.timeout_seconds:g} s") from None
        except aiohttp.ClientError as exc:
            raise _SourceFailed(f"{url} unreachable ({type(exc).__name__}: {exc})") from None

    async def _ocsp(self, key: tuple[bytes, int], cert: x509.Certificate, issuer: x509.Certificate) -> RevocationInfo:
        url = self.settings.ocsp_url or _ocsp_url(cert)
        if url is None:
            raise _SourceFailed("the certificate names no OCSP responder")
        question = ocsp_question(cert, issuer, key[0], url, use_nonce=self.settings.use_nonce)
        body = await self._fetch("POST", question.url, 64 * 1024, question.request.public_bytes(Encoding.DER))
        now = self.clock()
        info = check_ocsp(body, question, self.settings, now)
        self._remember(key, info)
        if self._shared is not None and info.next_update is not None:  # unknown and errors raised: never shared
            await self._shared.put(shared_key(*key), body, (info.next_update - now).total_seconds())
        return info

    async def _shared_answer(self, key: tuple[bytes, int], cert: x509.Certificate,
                             issuer: x509.Certificate) -> RevocationInfo | None:
        """Another process's OCSP answer, checked as a fresh one; None when there is none or it fails."""
        url = self.settings.ocsp_url or _ocsp_url(cert)
        if self._shared is None or url is None:  # no responder to ask: nobody stored an answer
            return None
        der = await self._shared.get(shared_key(*key))
        if der is None:
            return None
        try:
            question = ocsp_question(cert, issuer, key[0], url, use_nonce=False)
            info = check_ocsp(der, question, self.settings, self.clock(), shared=True)
        except (_SourceFailed, ValueError, UnsupportedAlgorithm) as exc:  # tampered, stale here, another policy's
            log.warning("a shared OCSP answer for serial %x refused, asking the responder: %s",
                        cert.serial_number, exc)
            self.on_lookup("shared", "refused")
            return None
        self.on_lookup("shared", info.status)
        self._remember(key, info)
        return info

    def _remember(self, key: tuple[bytes, int], info: RevocationInfo) -> None:
        if len(self._answers) >= _MAX_ANSWERS:
            del self._answers[next(iter(self._answers))]  # the oldest
        assert info.next_update is not None, "an OCSP answer always has its expiry"
        self._answers[key] = (replace(info, source="cache"), info.next_update)

    async def _crl_status(self, _key: object, cert: x509.Certificate, issuer: x509.Certificate) -> RevocationInfo:
        urls = self.settings.crl_urls or _crl_urls(_extension(cert.extensions, x509.CRLDistributionPoints))
        if not urls:
            raise _SourceFailed("the certificate names no CRL distribution point")
        return await _first(urls, lambda url: self._crl_answer(url, cert.serial_number, issuer))

    async def _crl_answer(self, url: str, serial: int, issuer: x509.Certificate) -> RevocationInfo:
        base, delta = await self._crl(url, issuer), None
        if base.delta_urls:
            try:
                base, delta = await self._delta(url, base, issuer)
            except _SourceFailed:
                # Revoked in the base stands without the delta; "good" needs the delta's recent news.
                if base.crl.get_revoked_certificate_by_serial_number(serial) is None:
                    raise
        entry, source, expires = base.crl.get_revoked_certificate_by_serial_number(serial), base, base.expires
        if delta is not None:
            expires = min(expires, delta.expires)
            newer = delta.crl.get_revoked_certificate_by_serial_number(serial)
            if newer is not None:
                entry = None if _reason(newer) is x509.ReasonFlags.remove_from_crl else newer
            if newer is not None or entry is None:  # name the CRL that listed it, else the freshest
                source = delta
        info = RevocationInfo(status="good", source="crl", checked_at=source.crl.last_update_utc,
                              next_update=expires, url=source.url)
        if entry is None:
            return info
        return replace(info, status="revoked", revoked_at=entry.revocation_date_utc, reason=_reason(entry).name)

    async def _delta(self, url: str, base: _Crl, issuer: x509.Certificate) -> tuple[_Crl, _Crl | None]:
        """The base (fetched again once if older than the delta's) and its delta (None if the base is newer)."""
        delta = await _first(base.delta_urls, lambda delta_url: self._crl(delta_url, issuer))
        if delta.base_number is None or delta.number is None:
            raise _SourceFailed(f"{delta.url} is not a delta CRL")
        if base.number is not None and delta.base_number > base.number:
            self._crls.pop(url, None)  # our cached base predates the delta's base: fetch it again
            base = await self._crl(url, issuer)
        if base.number is None or delta.base_number > base.number:
            raise _SourceFailed(f"{delta.url} (base {delta.base_number}) does not fit {url} (number {base.number})")
        return base, (delta if delta.number > base.number else None)

    async def _crl(self, url: str, issuer: x509.Certificate) -> _Crl:
        """The CRL at ``url`` (cached until its nextUpdate), if ``issuer`` signed it, else :class:`_SourceFailed`."""
        cached = self._crls.get(url)
        if cached is None or self.clock() >= cached.expires:
            cached = await self._fetches.run(url, lambda: self._fetch_crl(url))
        if not gost_x509.is_gost(issuer) and not isinstance(issuer.public_key(),
                                                            rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise _SourceFailed(f"the CRL from {url} has an issuer with an unsupported key type")
        # One list of URLs serves the whole path: a CRL another CA issued is no answer for this certificate.
        key_hash = self._issuer_key_hash(issuer)
        if key_hash not in cached.signers:
            if cached.crl.issuer != issuer.subject:
                raise _SourceFailed(f"the CRL from {url} is not signed by the certificate's issuer")
            verify_signature(issuer, cached.crl, cached.crl.tbs_certlist_bytes, f"the CRL from {url}")
            cached.signers.add(key_hash)
        return cached

    async def _fetch_crl(self, url: str) -> _Crl:
        body = await self._fetch("GET", url, _MAX_CRL_BYTES)
        try:
            crl = x509.load_pem_x509_crl(body) if body.startswith(b"-----") else x509.load_der_x509_crl(body)
        except ValueError:
            raise _SourceFailed(f"{url} did not send a CRL") from None
        expires = fresh_until(f"the CRL from {url}", crl.last_update_utc, crl.next_update_utc,
                              self.settings.crl_max_age_seconds, self.clock(), self._skew)
        number, base = _extension(crl.extensions, x509.CRLNumber), _extension(crl.extensions, x509.DeltaCRLIndicator)
        parsed = _Crl(crl, url, number.crl_number if number else None, base.crl_number if base else None,
                      _crl_urls(_extension(crl.extensions, x509.FreshestCRL)), expires)
        self._crls[url] = parsed  # bounded: URLs come only from settings and CA-issued certificates
        return parsed


async def apply_revocation(
    verified: VerifiedDocument, checker: RevocationChecker | None, mode: RevocationMode
) -> VerifiedDocument:
    """Check the signer's certificate and each intermediate CA of its path; return the document with the signer's
    revocation result in its report.

    OFF: unchanged (the verifier already warns). Signer revoked (any mode): :class:`SignatureRejected`
    TOTAL_FAILED/REVOKED; an intermediate CA revoked: INDETERMINATE/REVOKED_CA_NO_POE (there is no proof the
    signature existed before the revocation). No answer for some certificate: HARD_FAIL and REQUIRE raise
    INDETERMINATE/TRY_LATER, SOFT_FAIL passes with a warning; REQUIRE also when only a CRL said the signer's
    certificate is good (intermediates may be answered by their issuer's CRL, as CAs usually publish)."""
    if mode is RevocationMode.OFF:
        return verified
    report, path = verified.report, verified.path.certificates
    warnings = tuple(w for w in report.warnings if not w.startswith(_NOT_CHECKED))
    answers: tuple[RevocationInfo | RevocationUnavailable, ...] = (
        RevocationUnavailable("no revocation checker is configured"),) if checker is None else (
        await checker.check_path(path))  # a trusted path is signer first, then its issuers (the signer is no anchor)
    info = answers[0] if isinstance(answers[0], RevocationInfo) else None
    for index, answer in enumerate(answers):
        if isinstance(answer, RevocationInfo) and answer.status == "revoked":
            raise SignatureRejected(_revoked(replace(report, warnings=warnings), info, path[index], answer, index))
    failures = [f"{'' if index == 0 else _ca_name(path[index]) + ': '}{answer.reason}"
                for index, answer in enumerate(answers) if isinstance(answer, RevocationUnavailable)]
    if info is not None and mode is RevocationMode.REQUIRE and info.source == "crl":
        failures.insert(0, f"mode require needs a fresh OCSP answer, only a CRL answered ({info.detail})")
        info = None
    if not failures and info is not None:
        return replace(verified, report=replace(report, revocation=info, warnings=warnings))
    reason = "; ".join(failures)
    revocation = info or RevocationInfo(status="unknown", source="none", checked_at=None, detail=reason)
    message = f"revocation status could not be checked: {reason}"
    if mode is RevocationMode.SOFT_FAIL:
        return replace(verified, report=replace(report, revocation=revocation, warnings=(*warnings, message)))
    raise SignatureRejected(replace(
        report, indication=Indication.INDETERMINATE, sub_indication=SubIndication.TRY_LATER,
        error_code=ERROR_CODES[SubIndication.TRY_LATER], revocation=revocation, errors=(message,), warnings=warnings))


def _revoked(report: ValidationReport, signer: RevocationInfo | None, certificate: x509.Certificate,
             answer: RevocationInfo, index: int) -> ValidationReport:
    """The rejection for a revoked certificate at ``index`` of the path (0: the signer's)."""
    where = {"crl": "the CRL", "cache": "a cached OCSP answer from", "shared": "a shared OCSP answer from"
             }.get(answer.source, "the OCSP responder")
    at = answer.revoked_at.isoformat() if answer.revoked_at else "an unknown time"
    why = f"was revoked on {at} (reason: {answer.reason}), according to {where} {answer.url}"
    if index == 0:
        return replace(report, indication=Indication.TOTAL_FAILED, sub_indication=SubIndication.REVOKED,
                       error_code=ERROR_CODES[SubIndication.REVOKED], revocation=answer,
                       errors=(f"the signing certificate {why}",))
    return replace(report, indication=Indication.INDETERMINATE, sub_indication=SubIndication.REVOKED_CA_NO_POE,
                   error_code=ERROR_CODES[SubIndication.REVOKED_CA_NO_POE], revocation=signer,
                   errors=(f"the certificate of {_ca_name(certificate)} in the signer's path {why}",))


def _ca_name(certificate: x509.Certificate) -> str:
    return f"the CA {certificate.subject.rfc4514_string()} (serial {certificate.serial_number:x})"


async def _first(urls: Iterable[str], attempt: Callable[[str], Awaitable[T]]) -> T:
    """The first address that answers (mirrors are tried in order)."""
    failures = []
    for url in urls:
        try:
            return await attempt(url)
        except _SourceFailed as exc:
            failures.append(str(exc))
    raise _SourceFailed("; ".join(failures))

