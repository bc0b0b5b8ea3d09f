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

from signing import gost
from signing.gost import der, keys

GOST2015_SIGNATURE = keys.SIGNATURE_2015_512
GOST2015_KEY = keys.KEY_2015
GOST2015_CURVE = keys.CURVE_512A_OID  # TC26 512 paramSetA under NCA's arc
STREEBOG512 = keys.HASH_STREEBOG512
GOST2004_SIGNATURE = keys.SIGNATURE_2004
GOST2004_KEY = keys.KEY_2004
GOST94_TEST = keys.HASH_GOST94
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


def read_one(data: bytes) -> der.Tlv:
    """The single element ``data`` holds (nothing may follow it)."""
    element = der.read(data)
    if element.end != len(data):
        raise der.DerError("trailing bytes after the element")
    return element


def reencode(element: der.Tlv) -> bytes:
    """The element re-encoded (DER is canonical: the bytes it was read from)."""
    return der.encode(element.tag, element.value)


def subject_public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's bytes (what OCSP key hashes and key identifiers are computed over)."""
    try:
        tbs = der.children(der.expect(read_one(certificate.tbs_certificate_bytes), der.SEQUENCE, "TBSCertificate"))
        fields = tbs[1:] if tbs and tbs[0].tag == 0xA0 else tbs  # [0] version
        spki = der.children(der.expect(fields[5], der.SEQUENCE, "SubjectPublicKeyInfo"))
        bits = der.expect(spki[1], der.BIT_STRING, "subjectPublicKey")
    except (der.DerError, IndexError) as exc:
        raise GostKeyError(f"the certificate's public key cannot be read: {exc}") from None
    if not bits or bits[0] != 0:
        raise GostKeyError("the certificate's public key BIT STRING has unused bits")
    return bits[1:]


def key_hash(certificate: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey (RFC 6960 issuerKeyHash and ResponderID byKey; RFC 5280 key identifier)."""
    return hashlib.sha1(subject_public_key_bits(certificate), usedforsecurity=False).digest()


def public_key(certificate: x509.Certificate) -> tuple[GostAlgorithm, bytes]:
    """The certificate's GOST algorithm and public key X‖Y (little-endian each), or :class:`GostKeyError`
    (read by :func:`signing.gost.keys.certificate_key`, which refuses a key naming another curve)."""
    try:
        key = keys.certificate_key(certificate)
    except keys.UnsupportedGostKey as exc:
        raise GostKeyError(str(exc)) from None
    algorithm = _BY_KEY.get(key.algorithm)
    if algorithm is None or key.curve != algorithm.curve:
        raise GostKeyError(f"the certificate's key ({key.algorithm} on {key.curve.name}) is not one NCA issues")
    return algorithm, key.xy_le


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
    return der.sequence(der.encode_oid(algorithm.signature_oid))


def subject_public_key_info(algorithm: GostAlgorithm, point: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a GOST key X‖Y (little-endian each), in the NCA profile."""
    return keys.encode_spki(keys.new_public_key(algorithm.curve, point))


def bit_string(value: bytes) -> bytes:
    return der.encode(der.BIT_STRING, b"\x00" + value)  # no unused bits


def signed(tbs: bytes, algorithm: GostAlgorithm, private_scalar: int) -> bytes:
    """A signed structure as X.509 lays them out: SEQUENCE { tbs, signatureAlgorithm, signatureValue }."""
    return der.sequence(tbs, algorithm_identifier(algorithm), bit_string(sign(algorithm, private_scalar, tbs)))


def private_key_pem(algorithm: GostAlgorithm, private_scalar: int) -> bytes:
    """A PKCS#8 PrivateKeyInfo PEM: the scalar as a little-endian OCTET STRING (as GOST PKCS#8 keys store it)."""
    params = der.sequence(der.encode_oid(algorithm.curve_oid), der.encode_oid(algorithm.hash_oid)) \
        if algorithm.curve_oid else b""
    algorithm_id = der.sequence(der.encode_oid(algorithm.key_oid), params)
    raw = der.encode(der.OCTET_STRING, private_scalar.to_bytes(algorithm.size, "little"))
    body = der.sequence(der.encode(der.INTEGER, b"\x00"), algorithm_id, der.encode(der.OCTET_STRING, raw))
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
        fields = der.children(der.expect(read_one(body), der.SEQUENCE, "PrivateKeyInfo"))
        algorithm_id = der.children(der.expect(fields[1], der.SEQUENCE, "AlgorithmIdentifier"))
        algorithm = _BY_KEY.get(der.decode_oid(der.expect(algorithm_id[0], der.OID, "algorithm")))
        raw = der.expect(read_one(der.expect(fields[2], der.OCTET_STRING, "privateKey")), der.OCTET_STRING, "scalar")
    except (ValueError, IndexError) as exc:
        raise GostKeyError(f"the private key cannot be read: {exc}") from None
    if algorithm is None or len(raw) != algorithm.size:
        raise GostKeyError("the private key is not a GOST key")
    return algorithm, int.from_bytes(raw, "little")
