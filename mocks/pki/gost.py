"""GOST certificates, CRLs and OCSP responses for the test PKI, signed the way NCA signs them.

THIS IS A TEST PKI. ``cryptography`` builds every structure (names, extensions, CRL entries, OCSP single
responses) but can sign only with RSA/EC keys, so each is first signed with a throwaway EC key, then its
to-be-signed part is taken apart, given the GOST algorithm (and, for a certificate, the GOST public key),
re-encoded and signed with :func:`signing.gost_x509.sign`. Nothing derived from the throwaway key survives:
key identifiers are computed from the GOST key by the callers here.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from signing import gost, gost_x509
from signing.gost import der
from signing.gost_x509 import GOST2015_512, GostAlgorithm, read_one, reencode

_OCSP_BASIC = "1.3.6.1.5.5.7.48.1.1"


@functools.cache
def _throwaway() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def new_key(algorithm: GostAlgorithm = GOST2015_512) -> tuple[int, bytes]:
    """A fresh private scalar and its public key X‖Y (little-endian each)."""
    scalar = gost.generate_private(algorithm.curve)
    return scalar, gost.public_key(algorithm.curve, scalar)


def key_identifier(point: bytes, algorithm: GostAlgorithm = GOST2015_512) -> bytes:
    """RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING (the OCTET STRING holding X‖Y)."""
    return hashlib.sha1(der.encode(der.OCTET_STRING, point), usedforsecurity=False).digest()


def certificate(builder: x509.CertificateBuilder, point: bytes, issuer_scalar: int,
                algorithm: GostAlgorithm = GOST2015_512) -> x509.Certificate:
    """The certificate ``builder`` describes, for the GOST key ``point``, signed by ``issuer_scalar``."""
    throwaway = _throwaway()
    draft = builder.public_key(throwaway.public_key()).sign(throwaway, hashes.SHA256())
    fields = [reencode(f) for f in der.children(read_one(draft.tbs_certificate_bytes).value)]
    # version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions
    fields[2] = gost_x509.algorithm_identifier(algorithm)
    fields[6] = gost_x509.subject_public_key_info(algorithm, point)
    tbs = der.sequence(*fields)
    return x509.load_der_x509_certificate(gost_x509.signed(tbs, algorithm, issuer_scalar))


def crl(builder: x509.CertificateRevocationListBuilder, issuer_scalar: int,
        algorithm: GostAlgorithm = GOST2015_512) -> bytes:
    """The DER CRL ``builder`` describes, signed by ``issuer_scalar``."""
    draft = builder.sign(_throwaway(), hashes.SHA256())
    fields = [reencode(f) for f in der.children(read_one(draft.tbs_certlist_bytes).value)]
    fields[1] = gost_x509.algorithm_identifier(algorithm)  # version, signature, issuer, ...
    return gost_x509.signed(der.sequence(*fields), algorithm, issuer_scalar)


@functools.cache
def _throwaway_certificate() -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "THROWAWAY")])
    start = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(_throwaway().public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=1))
            .sign(_throwaway(), hashes.SHA256()))


def ocsp_response(builder: ocsp.OCSPResponseBuilder, responder: x509.Certificate, signer_scalar: int,
                  certificates: Sequence[x509.Certificate] = (), algorithm: GostAlgorithm = GOST2015_512, *,
                  tamper: bool = False) -> bytes:
    """The DER OCSPResponse ``builder`` describes (without a responder ID: ``responder`` is named by key hash),
    signed by ``signer_scalar``; ``certificates`` go into the BasicOCSPResponse (a delegated responder's).
    ``tamper`` alters a signed byte."""
    draft = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, _throwaway_certificate()).sign(
        _throwaway(), hashes.SHA256())
    fields = [reencode(f) for f in der.children(read_one(draft.tbs_response_bytes).value)]
    at = 1 if fields[0][0] == 0xA0 else 0  # [0] version, then responderID
    fields[at] = der.encode(0xA2, der.encode(der.OCTET_STRING, gost_x509.key_hash(responder)))  # [2] byKey
    tbs = der.sequence(*fields)
    signature = gost_x509.sign(algorithm, signer_scalar, tbs)
    if tamper:
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    certs = der.encode(0xA0, der.sequence(*(c.public_bytes(Encoding.DER) for c in certificates))) if certificates \
        else b""
    basic = der.sequence(tbs, gost_x509.algorithm_identifier(algorithm), gost_x509.bit_string(signature), certs)
    response_bytes = der.sequence(der.encode_oid(_OCSP_BASIC), der.encode(der.OCTET_STRING, basic))
    return der.sequence(der.encode(0x0A, b"\x00"), der.encode(0xA0, response_bytes))  # successful
