"""One OCSP response checked for one certificate (RFC 6960): its signer, its CertID, the nonce, its freshness.

The same checks serve a response fresh from the responder and one read back from the shared cache
(:mod:`signing.revocation_shared`): a stored response is never trusted for having been stored. The one rule that
differs is the nonce: a stored response answered another node's request, so it cannot echo ours; under a policy
that requires nonces it must still carry one (a response the network path would have refused for lacking it is
refused from the store too), and its age is bounded by ``ocsp_max_age_seconds`` as for the memory cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from signing.report import RevocationInfo
from signing.revocation_fields import extension, names
from signing.revocation_settings import RevocationSettings
from signing.revocation_signatures import issued_by, signature_problem


class SourceFailed(Exception):
    """One source (an OCSP responder, a CRL, a shared answer) gave no usable answer."""


@dataclass(frozen=True)
class OcspQuestion:
    """What one OCSP request asks, and what its answer must match."""

    certificate: x509.Certificate
    "The certificate asked about."
    issuer: x509.Certificate
    "Its issuer: the response must be signed by it or by a responder it authorised."
    issuer_key_hash: bytes
    "SHA-1 of the issuer's key (``ResponderID`` byKey)."
    url: str
    "The responder asked (or that would be asked), named in the answer and in every failure."
    request: ocsp.OCSPRequest
    "The request: its CertID (serial, issuer key and name hashes) is what the response must name."
    nonce: bytes | None
    "The nonce sent, None when none was."


def ocsp_question(certificate: x509.Certificate, issuer: x509.Certificate, issuer_key_hash: bytes, url: str,
                  *, use_nonce: bool) -> OcspQuestion:
    """The request for ``certificate`` (SHA-1 CertID, as every responder understands), with a fresh nonce if
    ``use_nonce``."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
    nonce = os.urandom(16) if use_nonce else None
    request = (builder.add_extension(x509.OCSPNonce(nonce), critical=False) if nonce else builder).build()
    return OcspQuestion(certificate, issuer, issuer_key_hash, url, request, nonce)


def check_ocsp(body: bytes, question: OcspQuestion, settings: RevocationSettings, now: datetime, *,
               shared: bool = False) -> RevocationInfo:
    """The answer ``body`` gives to ``question`` (``next_update``: until when it may be relied on), or
    :class:`SourceFailed` (:class:`ValueError` for a malformed part). ``shared``: read back from the shared
    cache rather than received from the responder (the nonce rule of the module doc)."""
    url, skew = question.url, timedelta(seconds=settings.clock_skew_seconds)
    what = f"the shared OCSP answer from {url}" if shared else f"the OCSP response from {url}"
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError:
        raise SourceFailed(f"{url} did not send an OCSP response" if not shared else f"{what} is malformed") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise SourceFailed(f"{url} answered {response.response_status.name}")
    verify_signature(ocsp_signer(response, question.issuer, question.issuer_key_hash, now, skew), response,
                     response.tbs_response_bytes, what)
    request = question.request
    cert_id = (question.certificate.serial_number, request.issuer_key_hash, request.issuer_name_hash)
    single = next((r for r in response.responses
                   if (r.serial_number, r.issuer_key_hash, r.issuer_name_hash) == cert_id), None)
    if single is None:
        raise SourceFailed(f"{what} is not about this certificate")
    _check_nonce(response, question.nonce, settings, what, shared=shared)
    max_age = settings.ocsp_max_age_seconds
    oldest = single.this_update_utc + timedelta(seconds=max_age)
    if oldest <= now:  # nextUpdate may be days away: an old answer is a replay or a stale responder
        raise SourceFailed(f"{what} is stale (thisUpdate {single.this_update_utc.isoformat()} is older than "
                           f"the {max_age} s the policy accepts)")
    expires = min(oldest, fresh_until(what, single.this_update_utc, single.next_update_utc,
                                      settings.ocsp_freshness_seconds, now, skew))
    status = single.certificate_status
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        raise SourceFailed(f"{url} does not know the certificate (status unknown)")
    info = RevocationInfo("good", "shared" if shared else "ocsp", single.this_update_utc, next_update=expires,
                          url=url)
    if status is ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason or x509.ReasonFlags.unspecified
        info = replace(info, status="revoked", revoked_at=single.revocation_time_utc, reason=reason.name)
    return info


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes | None, settings: RevocationSettings, what: str, *,
                 shared: bool) -> None:
    echoed = extension(response.extensions, x509.OCSPNonce)
    if shared:
        if settings.use_nonce and not settings.accept_missing_nonce and echoed is None:
            raise SourceFailed(f"{what} carries no nonce, which the policy requires")
    elif nonce is not None and (echoed.nonce != nonce if echoed else not settings.accept_missing_nonce):
        raise SourceFailed(f"{what} does not echo our nonce")


def fresh_until(what: str, this_update: datetime, next_update: datetime | None, max_age: int, now: datetime,
                skew: timedelta) -> datetime:
    """Until when an answer (OCSP, CRL) may be used: its nextUpdate, or thisUpdate + ``max_age``; refused when
    dated in the future (beyond ``skew``) or already past it."""
    if this_update > now + skew:
        raise SourceFailed(f"{what} is dated in the future ({this_update.isoformat()})")
    expires = next_update or this_update + timedelta(seconds=max_age)
    if expires <= now:
        raise SourceFailed(f"{what} is stale (valid until {expires.isoformat()})")
    return expires


def ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, issuer_key_hash: bytes, now: datetime,
                skew: timedelta) -> x509.Certificate:
    """The certificate whose key must have signed the response: the issuer or its delegated responder."""
    if names(response, issuer, issuer_key_hash):
        return issuer
    for candidate in response.certificates:
        if not names(response, candidate, None):
            continue
        if not issued_by(candidate, issuer):
            raise SourceFailed("the OCSP responder certificate was not issued by the cert's issuer")
        usages = extension(candidate.extensions, x509.ExtendedKeyUsage) or ()
        valid = candidate.not_valid_before_utc - skew <= now <= candidate.not_valid_after_utc + skew
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usages or not valid:
            raise SourceFailed("the OCSP responder certificate lacks EKU OCSPSigning or is not valid now")
        return candidate
    raise SourceFailed("the OCSP response is signed neither by the issuer nor by a responder it authorised")


def verify_signature(signer: x509.Certificate, signed: ocsp.OCSPResponse | x509.CertificateRevocationList,
                     data: bytes, what: str) -> None:
    """:class:`SourceFailed` unless ``signer``'s key made ``signed``'s signature over ``data``."""
    problem = signature_problem(signer, signed, data, what)
    if problem is not None:
        raise SourceFailed(problem)
