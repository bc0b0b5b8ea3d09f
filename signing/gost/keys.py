"""GOST public keys in certificates, the Kazakh way (NCA profile).

SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }, where the
BIT STRING holds an OCTET STRING of X‖Y, each coordinate little-endian. The algorithm is
``1.2.398.3.10.1.1.2.2`` (GOST 34.10-2015) with parameters SEQUENCE { curve OID, hash OID }, e.g.
{``1.2.398.3.10.1.1.2.2.1`` (TC26 512 paramSetA), ``1.2.398.3.10.1.3.3`` (Streebog-512)}, or
``1.2.398.3.10.1.1.1.1`` (GOST 34.310-2004, on CryptoPro-A).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from signing.gost import der
from signing.gost.curves import CURVE_512A, CURVE_CRYPTOPRO_A, Curve

KEY_2015 = "1.2.398.3.10.1.1.2.2"
"GOST 34.10-2015 public key algorithm."
KEY_2004 = "1.2.398.3.10.1.1.1.1"
"GOST 34.310-2004 public key algorithm."
CURVE_512A_OID = "1.2.398.3.10.1.1.2.2.1"
"The Kazakh OID of TC26 512 paramSetA."
HASH_GOST94 = "1.2.398.3.10.1.3.1"
"GOST 34.311-95 (GOST R 34.11-94, Test S-box)."
HASH_STREEBOG256 = "1.2.398.3.10.1.3.2"
"GOST 34.11-2015, 256 bits (Streebog-256)."
HASH_STREEBOG512 = "1.2.398.3.10.1.3.3"
"GOST 34.11-2015, 512 bits (Streebog-512)."
SIGNATURE_2015_512 = "1.2.398.3.10.1.1.2.3.2"
"Certificate/CRL/OCSP signature: GOST 34.10-2015 with Streebog-512."
SIGNATURE_2015_256 = "1.2.398.3.10.1.1.2.3.1"
"Certificate signature: GOST 34.10-2015 with Streebog-256 (not issued by NCA)."
SIGNATURE_2004 = "1.2.398.3.10.1.1.1.2"
"Certificate signature: GOST 34.310-2004 with GOST 34.311-95."

_CURVES_2015 = {CURVE_512A_OID: CURVE_512A}


class UnsupportedGostKey(ValueError):
    """The certificate's key is not a GOST key this code knows (algorithm, curve or encoding)."""


@dataclass(frozen=True)
class GostPublicKey:
    """A GOST public key read from a SubjectPublicKeyInfo."""

    algorithm: str
    "The SPKI algorithm OID (KEY_2015 or KEY_2004)."
    curve: Curve
    "The curve the key lives on."
    xy_le: bytes
    "X‖Y, each little-endian: what :func:`signing.gost.verify` takes."
    parameters: tuple[str, ...]
    "The OIDs of the algorithm parameters, as found (empty when absent)."


def _spki_of(tbs: bytes) -> bytes:
    fields = der.children(der.expect(der.read(tbs), der.SEQUENCE, "TBSCertificate"))
    index = 1 if fields and fields[0].tag == 0xA0 else 0  # [0] version is optional
    if len(fields) < index + 6:
        raise der.DerError("TBSCertificate is too short")
    spki = fields[index + 5]
    der.expect(spki, der.SEQUENCE, "SubjectPublicKeyInfo")
    return der.encode(spki.tag, spki.value)


def read_spki(spki: bytes) -> GostPublicKey:
    """The GOST key of a DER SubjectPublicKeyInfo; raises :class:`UnsupportedGostKey`."""
    try:
        algorithm_id, bits = der.children(der.expect(der.read(spki), der.SEQUENCE, "SubjectPublicKeyInfo"))
        algorithm_fields = der.children(der.expect(algorithm_id, der.SEQUENCE, "AlgorithmIdentifier"))
        algorithm = der.decode_oid(der.expect(algorithm_fields[0], der.OID, "algorithm"))
        parameters: tuple[str, ...] = ()
        if len(algorithm_fields) > 1 and algorithm_fields[1].tag == der.SEQUENCE:
            parameters = tuple(der.decode_oid(der.expect(p, der.OID, "parameter"))
                               for p in der.children(algorithm_fields[1].value))
        bit_string = der.expect(bits, der.BIT_STRING, "subjectPublicKey")
        if not bit_string or bit_string[0] != 0:
            raise der.DerError("the key BIT STRING has unused bits")
        point = der.expect(der.read(bit_string[1:]), der.OCTET_STRING, "public key")
    except (der.DerError, ValueError, IndexError) as exc:
        raise UnsupportedGostKey(f"the GOST public key cannot be read: {exc}") from None
    curve = _curve(algorithm, parameters)
    if len(point) != 2 * curve.size:
        raise UnsupportedGostKey(f"the public key is {len(point)} bytes, {2 * curve.size} expected on {curve.name}")
    return GostPublicKey(algorithm=algorithm, curve=curve, xy_le=point, parameters=parameters)


def _curve(algorithm: str, parameters: tuple[str, ...]) -> Curve:
    if algorithm == KEY_2004:
        return CURVE_CRYPTOPRO_A
    if algorithm == KEY_2015:
        curve = _CURVES_2015.get(parameters[0]) if parameters else None
        if curve is None:
            raise UnsupportedGostKey(f"GOST 34.10-2015 key parameters {parameters} name no known curve")
        return curve
    raise UnsupportedGostKey(f"{algorithm} is not a GOST public key algorithm")


def certificate_key(certificate: x509.Certificate) -> GostPublicKey:
    """The GOST public key of ``certificate`` (read from the TBS bytes: ``public_key()`` raises on GOST)."""
    try:
        spki = _spki_of(certificate.tbs_certificate_bytes)
    except (der.DerError, ValueError, IndexError) as exc:
        raise UnsupportedGostKey(f"the certificate cannot be read: {exc}") from None
    return read_spki(spki)


def encode_spki(key: GostPublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key`` (for making test certificates)."""
    algorithm = der.encode_oid(key.algorithm)
    if key.parameters:
        algorithm += der.sequence(*(der.encode_oid(p) for p in key.parameters))
    point = der.encode(der.OCTET_STRING, key.xy_le)
    return der.sequence(der.sequence(algorithm), der.encode(der.BIT_STRING, b"\0" + point))


def new_public_key(curve: Curve, xy_le: bytes) -> GostPublicKey:
    """The NCA-profile key description for a point on ``curve`` (512A: 2015 key; CryptoPro-A: 2004 key)."""
    if curve == CURVE_512A:
        return GostPublicKey(KEY_2015, curve, xy_le, (CURVE_512A_OID, HASH_STREEBOG512))
    if curve == CURVE_CRYPTOPRO_A:
        return GostPublicKey(KEY_2004, curve, xy_le, ())
    raise UnsupportedGostKey(f"no NCA key algorithm for {curve.name}")
