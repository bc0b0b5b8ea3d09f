"""Signatures on revocation answers: OCSP responses, CRLs and delegated responder certificates, by algorithm.

RSA and ECDSA are checked with ``cryptography``; GOST (NCA's GOST hierarchy signs its CRLs and OCSP answers with
GOST 34.10-2015) with :mod:`signing.gost_x509`. Nothing here raises on a bad signature: the caller turns the
answer into "no answer from this source".
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from signing import gost_x509


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` signed ``certificate`` (and is named as its issuer)."""
    if gost_x509.is_gost(issuer):
        return gost_x509.issued_by(certificate, issuer)
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def signature_problem(signer: x509.Certificate, signed: ocsp.OCSPResponse | x509.CertificateRevocationList,
                      data: bytes, what: str) -> str | None:
    """Why ``signed``'s signature over ``data`` is not ``signer``'s, or None when it is."""
    oid, signature = signed.signature_algorithm_oid.dotted_string, signed.signature
    if gost_x509.is_gost(signer) or gost_x509.signature_algorithm(oid):
        return None if gost_x509.verify_signature(signer, oid, signature, data) else \
            f"the signature of {what} does not verify"
    key, algorithm = signer.public_key(), signed.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return f"{what} uses an unsupported signature algorithm"
    except InvalidSignature:
        return f"the signature of {what} does not verify"
    return None
