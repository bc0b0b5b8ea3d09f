"""What the verifier expects of an applicant's signature.

Security caveat: the defaults are the strict ones. Widening ``signature_methods`` to SHA-1 or HMAC,
or ``transforms`` beyond enveloped-signature and canonicalisation, re-opens known attacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from signing.nca import KeyPurpose

ENVELOPED_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
# The GOST URIs Kalkan (NCA's SDK) writes; the backend is signing/gost/xmldsig.py (kept in sync by a test).
_KZ = "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:"
GOST_SIGNATURE_METHODS = frozenset({
    _KZ + "gostr34102015-gostr34112015-512", _KZ + "gostr34102015-gostr34112015-256",
    "http://www.w3.org/2001/04/xmldsig-more#gost34310-gost34311",
})
GOST_DIGEST_METHODS = frozenset({
    _KZ + "gostr34112015-512", _KZ + "gostr34112015-256", "http://www.w3.org/2001/04/xmldsig-more#gost34311",
})


class RevocationMode(StrEnum):
    """How the signer's revocation status is checked, and how a missing answer is treated.

    In every checking mode a "revoked" answer from any source rejects the signature (TOTAL_FAILED/REVOKED).
    """

    OFF = "off"
    "Not checked; the report carries a warning. Until an OCSP/CRL checker is configured."
    SOFT_FAIL = "soft_fail"
    "Checked (OCSP, then CRL); when no source answers, the signature passes with a warning."
    HARD_FAIL = "hard_fail"
    "Checked (OCSP, then CRL); when no source answers, the result is INDETERMINATE/TRY_LATER."
    REQUIRE = "require"
    'A fresh OCSP "good" is required: a CRL can still reject (revoked) but never pass alone; else TRY_LATER.'


@dataclass(frozen=True)
class VerificationPolicy:
    """Expectations for one applicant signature (enveloped XMLDSig over the whole business document)."""

    signature_methods: frozenset[str] = frozenset(
        m.value for m in (
            SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512,
            SignatureMethod.ECDSA_SHA256, SignatureMethod.ECDSA_SHA384, SignatureMethod.ECDSA_SHA512,
        )
    ) | GOST_SIGNATURE_METHODS
    "Allowed SignatureMethod URIs: RSA/ECDSA with SHA-2 and the GOST ones NCA keys use. No SHA-1, no HMAC."
    digest_algorithms: frozenset[str] = frozenset(
        d.value for d in (DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512)
    ) | GOST_DIGEST_METHODS
    "Allowed DigestMethod URIs (SHA-2, Streebog, GOST 34.311-95)."
    transforms: frozenset[str] = frozenset({ENVELOPED_TRANSFORM} | {c.value for c in CanonicalizationMethod})
    """Allowed Transform algorithms: enveloped-signature and C14N (no XSLT, no XPath). C14N with comments is
    allowed (Kalkan writes it): comments are then digested, and the verified document, re-parsed from the signed
    bytes, has them merged out, so a comment can never cut a value."""
    required_key_purpose: KeyPurpose = KeyPurpose.SIGN
    "Applications must be signed with a SIGN key (digitalSignature + nonRepudiation)."
    clock_skew: timedelta = timedelta(minutes=5)
    "Tolerance for certificate validity against the local clock."
    revocation: RevocationMode = RevocationMode.OFF
    "Revocation checking mode."
    allow_xades: bool = True
    "Accept XAdES-BES: extra References are allowed only to SignedProperties/KeyInfo inside the Signature."
    max_certificates: int = 4
    "Most X509Certificate elements accepted in KeyInfo (the signer plus its CA path)."
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    "Reserved for backend-specific options (e.g. a GOST provider)."
