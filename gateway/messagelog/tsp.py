"""RFC 3161 time-stamping: the request the sealer sends, and the checks on the answer and on a stored token.

``cryptography`` has no TSP support; asn1crypto (its ``tsp`` and ``cms`` modules) reads and writes the ASN.1,
and ``cryptography`` checks the signature and the TSA certificate's path. A token is accepted only when: the
status is granted, the content is id-ct-TSTInfo, the TSTInfo's messageImprint is SHA-256 of what was stamped,
the nonce is the one sent (at request time), the signed attributes' message-digest is the TSTInfo's, the CMS
signature verifies with the signer's certificate, which carries the id-kp-timeStamping EKU and chains to the
trust store at the stamp's genTime.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from signing.trust import TrustStore, UntrustedCertificateError

CONTENT_TYPE_QUERY = "application/timestamp-query"
CONTENT_TYPE_REPLY = "application/timestamp-reply"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha384": hashes.SHA384,
                                                  "sha512": hashes.SHA512}


class TimestampError(ValueError):
    """A time-stamp response or token that cannot be accepted; the message says which check failed."""


@dataclass(frozen=True)
class Stamp:
    """A checked time-stamp token."""

    token: bytes = field(repr=False)
    "The TimeStampToken (CMS ContentInfo), DER."
    gen_time: datetime
    "When the TSA says it stamped (TSTInfo genTime, UTC)."
    serial: int
    "The TSA's serial number of the token."
    tsa: str
    "Subject of the TSA certificate (RFC 4514)."


def request_for(digest: bytes) -> tuple[bytes, int]:
    """A TimeStampReq over a SHA-256 ``digest`` (with a random nonce, certReq true): DER and the nonce."""
    nonce = secrets.randbits(63)
    request = tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
        "nonce": nonce, "cert_req": True})
    return request.dump(), nonce


def check_response(der: bytes, digest: bytes, nonce: int, trust: TrustStore) -> Stamp:
    """The token of a TimeStampResp to :func:`request_for`'s request, checked in full."""
    try:
        response = tsp.TimeStampResp.load(der)
        status = response["status"]["status"].native
        token = response["time_stamp_token"]
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"not a TimeStampResp: {exc}") from None
    if status not in ("granted", "granted_with_mods"):
        text = response["status"]["status_string"].native
        raise TimestampError(f"the TSA refused: {status} {text or ''}".strip())
    if token.native is None:
        raise TimestampError("the response holds no token")
    stamp = verify_token(token.dump(), digest, trust)
    if _tst_info(token)["nonce"].native != nonce:
        raise TimestampError("the token's nonce is not the one sent")
    return stamp


def verify_token(token_der: bytes, digest: bytes, trust: TrustStore) -> Stamp:
    """Check a stored TimeStampToken over ``digest`` (everything but the nonce, known only at request time)."""
    try:
        token = cms.ContentInfo.load(token_der)
        if token["content_type"].native != "signed_data":
            raise TimestampError("the token is not CMS SignedData")
        signed = token["content"]
        info = _tst_info(token)
        imprint = info["message_imprint"]
        algorithm, hashed = imprint["hash_algorithm"]["algorithm"].native, imprint["hashed_message"].native
        gen_time: datetime = info["gen_time"].native
        serial = int(info["serial_number"].native)
        signer_info = signed["signer_infos"][0]
        certificate = _signer_certificate(signed, signer_info)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise TimestampError(f"the token cannot be read: {exc}") from None
    if algorithm != "sha256" or hashed != digest:
        raise TimestampError("the token's message imprint is not SHA-256 of what was stamped")
    _check_signature(signed, signer_info, certificate)
    _check_tsa(certificate, signed, trust, gen_time)
    return Stamp(token_der, gen_time, serial, certificate.subject.rfc4514_string())


def _tst_info(token: cms.ContentInfo) -> Any:
    encap = token["content"]["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TimestampError("the token's content is not a TSTInfo")
    return encap["content"].parsed


def _signer_certificate(signed: Any, signer_info: Any) -> x509.Certificate:
    sid = signer_info["sid"]
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            match = (cert.issuer == sid.chosen["issuer"] and cert.serial_number == sid.chosen["serial_number"].native)
        else:
            match = cert.key_identifier == sid.chosen.native
        if match:
            return x509.load_der_x509_certificate(cert.dump())
    raise TimestampError("the token does not carry its TSA's certificate (certReq was set)")


def _check_signature(signed: Any, signer_info: Any, certificate: x509.Certificate) -> None:
    attrs = signer_info["signed_attrs"]
    if not attrs:
        raise TimestampError("the token has no signed attributes")
    values = {attr["type"].native: attr["values"][0].native for attr in attrs}
    content = signed["encap_content_info"]["content"].contents
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise TimestampError(f"unsupported digest {digest_name}")
    if values.get("content_type") != "tst_info":
        raise TimestampError("the signed content type is not TSTInfo")
    hasher = hashlib.new(digest_name, content)
    if values.get("message_digest") != hasher.digest():
        raise TimestampError("the signed message-digest is not the TSTInfo's (the token was changed)")
    data = b"\x31" + attrs.dump()[1:]  # signed over as a SET OF, not the [0] IMPLICIT it is stored as
    signature = signer_info["signature"].native
    key = certificate.public_key()
    hash_algorithm = _HASHES[digest_name]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
        else:
            raise TimestampError(f"unsupported TSA key {type(key).__name__}")
    except InvalidSignature:
        raise TimestampError("the token's signature does not verify") from None


def _check_tsa(certificate: x509.Certificate, signed: Any, trust: TrustStore, at: datetime) -> None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or ExtendedKeyUsageOID.TIME_STAMPING not in usage:
        raise TimestampError("the signer's certificate is not a TSA's (no id-kp-timeStamping EKU)")
    others = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"] or []
              if c.name == "certificate"]
    try:
        trust.validate(certificate, others, at)
    except UntrustedCertificateError as exc:
        raise TimestampError(f"the TSA's certificate is not trusted: {exc}") from None


def digest_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


__all__ = ["CONTENT_TYPE_QUERY", "CONTENT_TYPE_REPLY", "Stamp", "TimestampError", "check_response",
           "digest_of", "request_for", "verify_token"]
