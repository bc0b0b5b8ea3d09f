"""GOST signatures on X.509 objects, the way Kazakhstan's NCA encodes them.

``cryptography`` parses GOST certificates, CRLs and OCSP responses but cannot use their keys; this module reads
the key from the certificate's DER and checks signatures with :mod:`signing.gost`. NCA's byte orders (the same
in certificates, CRLs, OCSP, CMS and XMLDSig): the subjectPublicKey BIT STRING holds an OCTET STRING with X‖Y,
each little-endian; the signature value is raw r‖s, each little-endian (not DER); the hash is over the DER of
the to-be-signed part (tbsCertificate, tbsCertList, tbsResponseData).

Algorithms (see docs/nca-certificates.md): GOST 34.10-2015 512-bit (TC26 512 paramSetA, Streebog-512) and the
older GOST 34.310-2004 (CryptoPro-A, GOST R 34.11-94 with the test S-box). Anything else is not GOST to us.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from signing import der, gost

GOST2015_SIGNATURE = "1.2.398.3.10.1.1.2.3.2"
GOST2015_KEY = "1.2.398.3.10.1.1.2.2"
GOST2015_CURVE = "1.2.398.3.10.1.1.2.2.1"  # TC26 512 paramSetA under NCA's arc
STREEBOG512 = "1.2.398.3.10.1.3.3"
GOST2004_SIGNATURE = "1.2.398.3.10.1.1.1.2"
GOST2004_KEY = "1.2.398.3.10.1.1.1.1"
GOST94_TEST = "1.2.398.3.10.1.3.1"
_PEM_LABEL = "PRIVATE KEY"


class GostKeyError(ValueError):
    """A certificate or key file does not hold a GOST key we can use."""


@dataclass(frozen=True)
class GostAlgorithm:
    """One GOST signature algorithm with its key, curve and hash."""

    name: str
    "Human name, for messages."
    signature_oid: str
    "OID of the signature algorithm (certificate, CRL, OCSP signatureAlgorithm)."
    key_oid: str
    "OID of the public key algorithm (SubjectPublicKeyInfo)."
    curve_oid: str | None
    "OID of the curve in the key parameters (None: the parameters are not checked)."
    hash_oid: str
    "OID of the hash in the key parameters."
    curve: gost.Curve
    "The curve's domain parameters."
    digest: Callable[[bytes], bytes]
    "The hash the signature is made over."

    @property
    def size(self) -> int:
        """Bytes of one coordinate (and of r and of s)."""
        return (self.curve.p.bit_length() + 7) // 8


GOST2015_512 = GostAlgorithm("GOST 34.10-2015 512-bit", GOST2015_SIGNATURE, GOST2015_KEY, GOST2015_CURVE,
                             STREEBOG512, gost.CURVE_512A, gost.streebog512)
GOST2004 = GostAlgorithm("GOST 34.310-2004", GOST2004_SIGNATURE, GOST2004_KEY, None, GOST94_TEST,
                         gost.CURVE_CRYPTOPRO_A, gost.gost94_test)
_BY_SIGNATURE = {a.signature_oid: a for a in (GOST2015_512, GOST2004)}
_BY_KEY = {a.key_oid: a for a in (GOST2015_512, GOST2004)}


def signature_algorithm(dotted: str) -> GostAlgorithm | None:
    """The GOST algorithm of a signatureAlgorithm OID, or None for a non-GOST one."""
    return _BY_SIGNATURE.get(dotted)


def is_gost(certificate: x509.Certificate) -> bool:
    """Whether the certificate is signed with, or carries, a GOST key (either makes it a GOST PKI object)."""
    return (certificate.signature_algorithm_oid.dotted_string in _BY_SIGNATURE
            or certificate.public_key_algorithm_oid.dotted_string in _BY_KEY)


def _spki(certificate: x509.Certificate) -> list[der.Tlv]:
    """The children of the certificate's SubjectPublicKeyInfo (algorithm, subjectPublicKey)."""
    tbs = der.children(der.one(certificate.tbs_certificate_bytes).content)
    fields = tbs[1:] if tbs and tbs[0].tag == 0xA0 else tbs  # [0] version
    if len(fields) < 6:
        raise GostKeyError("tbsCertificate is too short")
    return der.children(fields[5].content)


def subject_public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's bytes (what OCSP key hashes and key identifiers are computed over)."""
    try:
        return der.bit_string_bytes(_spki(certificate)[1])
    except (der.DerError, IndexError) as exc:
        raise GostKeyError(f"the certificate's public key cannot be read: {exc}") from None


def key_hash(certificate: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey (RFC 6960 issuerKeyHash and ResponderID byKey; RFC 5280 key identifier)."""
    return hashlib.sha1(subject_public_key_bits(certificate), usedforsecurity=False).digest()


def public_key(certificate: x509.Certificate) -> tuple[GostAlgorithm, bytes]:
    """The certificate's GOST algorithm and public key X‖Y (little-endian each), or :class:`GostKeyError`."""
    try:
        spki = _spki(certificate)
        algorithm_id = der.children(spki[0].content)
        algorithm = _BY_KEY.get(der.read_oid(algorithm_id[0]))
        if algorithm is None:
            raise GostKeyError("the certificate's key is not a GOST key")
        if algorithm.curve_oid is not None and len(algorithm_id) > 1:
            params = der.children(algorithm_id[1].content)
            if not params or der.read_oid(params[0]) != algorithm.curve_oid:
                raise GostKeyError(f"the {algorithm.name} key names a curve other than {algorithm.curve_oid}")
        point = der.one(der.bit_string_bytes(spki[1]))
    except (der.DerError, IndexError) as exc:
        raise GostKeyError(f"the certificate's GOST key cannot be read: {exc}") from None
    if point.tag != 0x04 or len(point.content) != 2 * algorithm.size:
        raise GostKeyError(f"the {algorithm.name} public key is not an OCTET STRING of {2 * algorithm.size} bytes")
    return algorithm, point.content


def verify_signature(signer: x509.Certificate, signature_oid: str, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` (r‖s little-endian) over ``data`` verifies with the signer's GOST key under the
    signature algorithm ``signature_oid``; False for a mismatched algorithm or an unusable key.
    :class:`GostKeyError` only when this host cannot check GOST signatures at all (no GOST provider)."""
    algorithm = _BY_SIGNATURE.get(signature_oid)
    try:
        key_algorithm, point = public_key(signer)
    except GostKeyError:
        return False
    if algorithm is None or algorithm is not key_algorithm or len(signature) != 2 * algorithm.size:
        return False
    try:
        return gost.verify(algorithm.curve, point, algorithm.digest(data), signature)
    except gost.GostUnavailable as exc:
        raise GostKeyError(f"GOST signatures cannot be checked on this host: {exc}") from None


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` is named as the certificate's issuer and its GOST key signed the certificate."""
    return certificate.issuer == issuer.subject and verify_signature(
        issuer, certificate.signature_algorithm_oid.dotted_string, certificate.signature,
        certificate.tbs_certificate_bytes)


def sign(algorithm: GostAlgorithm, private_scalar: int, data: bytes) -> bytes:
    """The signature (r‖s little-endian) of ``data`` under ``algorithm``."""
    return gost.sign(algorithm.curve, private_scalar, algorithm.digest(data))


def algorithm_identifier(algorithm: GostAlgorithm) -> bytes:
    """The DER AlgorithmIdentifier of the signature algorithm (no parameters, as NCA writes it)."""
    return der.sequence(der.oid(algorithm.signature_oid))


def subject_public_key_info(algorithm: GostAlgorithm, point: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a GOST key X‖Y (little-endian each)."""
    params = der.sequence(der.oid(algorithm.curve_oid or ""), der.oid(algorithm.hash_oid)) \
        if algorithm.curve_oid else b""
    return der.sequence(der.sequence(der.oid(algorithm.key_oid), params), der.bit_string(der.octet_string(point)))


def signed(tbs: bytes, algorithm: GostAlgorithm, private_scalar: int) -> bytes:
    """A signed structure as X.509 lays them out: SEQUENCE { tbs, signatureAlgorithm, signatureValue }."""
    return der.sequence(tbs, algorithm_identifier(algorithm), der.bit_string(sign(algorithm, private_scalar, tbs)))


def private_key_pem(algorithm: GostAlgorithm, private_scalar: int) -> bytes:
    """A PKCS#8 PrivateKeyInfo PEM: the scalar as a little-endian OCTET STRING (as GOST PKCS#8 keys store it)."""
    algorithm_id = der.sequence(der.oid(algorithm.key_oid), der.sequence(
        der.oid(algorithm.curve_oid or ""), der.oid(algorithm.hash_oid)) if algorithm.curve_oid else b"")
    raw = private_scalar.to_bytes(algorithm.size, "little")
    body = der.sequence(der.integer(0), algorithm_id, der.octet_string(der.octet_string(raw)))
    text = base64.encodebytes(body).decode().replace("\n", "")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return (f"-----BEGIN {_PEM_LABEL}-----\n" + "\n".join(lines) + f"\n-----END {_PEM_LABEL}-----\n").encode()


def load_private_key_pem(data: bytes) -> tuple[GostAlgorithm, int]:
    """The algorithm and scalar of a key written by :func:`private_key_pem`, or :class:`GostKeyError`."""
    text = data.decode("ascii", "replace")
    begin, end = f"-----BEGIN {_PEM_LABEL}-----", f"-----END {_PEM_LABEL}-----"
    if begin not in text or end not in text:
        raise GostKeyError("not a PEM private key")
    try:
        body = base64.b64decode("".join(text.split(begin, 1)[1].split(end, 1)[0].split()), validate=True)
        fields = der.children(der.one(body).content)
        algorithm = _BY_KEY.get(der.read_oid(der.children(fields[1].content)[0]))
        raw = der.one(fields[2].content).content
    except (ValueError, IndexError) as exc:
        raise GostKeyError(f"the private key cannot be read: {exc}") from None
    if algorithm is None or len(raw) != algorithm.size:
        raise GostKeyError("the private key is not a GOST key")
    return algorithm, int.from_bytes(raw, "little")


def certificate_from_der(data: bytes) -> x509.Certificate:
    """Load a DER certificate (cryptography parses GOST ones; it only cannot use their keys)."""
    return x509.load_der_x509_certificate(data)


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)
