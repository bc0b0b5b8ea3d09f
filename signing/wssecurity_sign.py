"""Signing a SOAP 1.1 envelope with WS-Security (X.509 token profile), the shape :mod:`signing.wssecurity` accepts.

A ``wsse:Security`` header (``mustUnderstand="1"``) gets a ``wsu:Timestamp``, the signer's certificate as a
``BinarySecurityToken`` and a ``ds:Signature`` over the Body and the Timestamp (by ``wsu:Id``, exclusive C14N,
SHA-256). Used by the mock portal (its SHEP requests) and the SOAP connector (calls to providers).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from signing.signer import SigningKey
from signing.wssecurity import BASE64_BINARY, DS, EXC_C14N, SECURITY, SOAP11, WSSE, WSU, WSU_ID, X509_TOKEN

_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def sign_envelope(envelope: etree._Element, key: SigningKey, *, lifetime: timedelta = timedelta(minutes=5),
                  now: datetime | None = None) -> etree._Element:
    """Add a signed WS-Security header to ``envelope`` (changed in place, and returned)."""
    now = now or datetime.now(UTC)
    S = etree.SubElement
    body = envelope.find(f"{{{SOAP11}}}Body")
    if body is None:
        raise ValueError("the envelope has no soap:Body")
    header = envelope.find(f"{{{SOAP11}}}Header")
    if header is None:
        header = etree.Element(f"{{{SOAP11}}}Header")
        envelope.insert(0, header)
    suffix = uuid.uuid4().hex
    ids = {"body": f"Body-{suffix}", "ts": f"TS-{suffix}", "token": f"X509-{suffix}"}
    body.set(WSU_ID, ids["body"])
    security = etree.Element(SECURITY, nsmap={"wsse": WSSE, "wsu": WSU})
    security.set(f"{{{SOAP11}}}mustUnderstand", "1")
    header.insert(0, security)
    timestamp = S(security, f"{{{WSU}}}Timestamp", {WSU_ID: ids["ts"]})
    S(timestamp, f"{{{WSU}}}Created").text = _time(now)
    S(timestamp, f"{{{WSU}}}Expires").text = _time(now + lifetime)
    token = S(security, f"{{{WSSE}}}BinarySecurityToken",
              {WSU_ID: ids["token"], "ValueType": X509_TOKEN, "EncodingType": BASE64_BINARY})
    token.text = base64.b64encode(key.certificate.public_bytes(Encoding.DER)).decode()
    signature = S(security, f"{{{DS}}}Signature", nsmap={"ds": DS})
    signed_info = S(signature, f"{{{DS}}}SignedInfo")
    S(signed_info, f"{{{DS}}}CanonicalizationMethod", Algorithm=EXC_C14N)
    is_rsa = isinstance(key.private_key, rsa.RSAPrivateKey)
    S(signed_info, f"{{{DS}}}SignatureMethod", Algorithm=_RSA_SHA256 if is_rsa else _ECDSA_SHA256)
    for target, target_id in ((body, ids["body"]), (timestamp, ids["ts"])):
        reference = S(signed_info, f"{{{DS}}}Reference", URI=f"#{target_id}")
        S(S(reference, f"{{{DS}}}Transforms"), f"{{{DS}}}Transform", Algorithm=EXC_C14N)
        S(reference, f"{{{DS}}}DigestMethod", Algorithm=_SHA256)
        S(reference, f"{{{DS}}}DigestValue").text = base64.b64encode(hashlib.sha256(_c14n(target)).digest()).decode()
    value = S(signature, f"{{{DS}}}SignatureValue")
    data = _c14n(signed_info)
    if isinstance(key.private_key, rsa.RSAPrivateKey):
        raw = key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.private_key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (key.private_key.curve.key_size + 7) // 8
        raw = r.to_bytes(size) + s.to_bytes(size)
    value.text = base64.b64encode(raw).decode()
    reference = S(S(S(signature, f"{{{DS}}}KeyInfo"), f"{{{WSSE}}}SecurityTokenReference"), f"{{{WSSE}}}Reference")
    reference.set("URI", f"#{ids['token']}")
    reference.set("ValueType", X509_TOKEN)
    return envelope
