"""Where and how the revocation checker asks about a certificate (:mod:`signing.revocation`)."""

from __future__ import annotations

from dataclasses import dataclass

from signing.policy import RevocationMode


@dataclass(frozen=True)
class RevocationSettings:
    """Where and how to ask about revocation."""

    mode: RevocationMode = RevocationMode.HARD_FAIL
    "How the pipeline treats the answer (it passes this to :func:`apply_revocation`); the checker always tries all."
    ocsp_url: str | None = None
    "OCSP responder for every certificate; None: the certificate's AIA OCSP address."
    crl_urls: tuple[str, ...] = ()
    """CRLs to consult instead of the certificates' distribution points; each serves the certificates its issuer
    issued, so list the intermediate CAs' CRLs and the root's (for the intermediates). Empty: the CDPs."""
    timeout_seconds: float = 3.0
    "Limit for one HTTP exchange (connect + answer)."
    ocsp_freshness_seconds: int = 600
    "How long an OCSP answer without nextUpdate is relied on, from its thisUpdate."
    crl_max_age_seconds: int = 3600
    "How long a CRL without nextUpdate is relied on, from its thisUpdate."
    ocsp_max_age_seconds: int = 3600
    """Oldest OCSP thisUpdate relied on, even when nextUpdate is later: bounds how long a captured "good" answer
    can be replayed (and how long one is cached)."""
    use_nonce: bool = True
    "Send a nonce with OCSP requests and require it echoed (defeats replayed answers)."
    accept_missing_nonce: bool = False
    """Accept an answer without a nonce, from a responder that ignores them (a wrong nonce is still refused).
    Replays are then bounded only by :attr:`ocsp_max_age_seconds`."""
    clock_skew_seconds: int = 300
    "Tolerance for thisUpdate in the future and responder certificate validity."
    shared_cache: bool = True
    """Share OCSP answers between the gateway's nodes through its Redis, each checked again by the node that reads
    it (:mod:`signing.revocation_shared`). The checker itself shares only through a store it is given."""
