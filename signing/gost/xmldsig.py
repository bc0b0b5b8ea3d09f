"""GOST in XMLDSig: the algorithm URIs Kalkan (NCA's SDK) writes, canonicalisation, and the verification backend.

The verifier (signing/verifier.py) has already checked the structure (one Signature, a direct child of the
root, one Reference over the whole document, allowed transforms), the certificate path and the key purpose;
this backend does the GOST cryptography and hands back only the bytes that were digested, re-parsed.

Comments: Kalkan's Reference uses the enveloped-signature transform followed by inclusive C14N 1.0
*WithComments*. Read literally (as signxml does) the comments are digested; the XMLDSig recommendation says a
same-document reference (``URI=""``) yields the node-set minus comments, and Apache Santuario follows that.
Both readings are tried (the second only when the document has comments) and the document returned is the
re-parse of exactly the bytes whose digest matched, so an unsigned comment never reaches the application.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree

from signing.backends import CryptoFailure, CryptoFailureKind, SignatureLayout, SignedData
from signing.gost import ecc, hashes, keys
from signing.gost.native import GostUnavailable, native
from signing.policy import ENVELOPED_TRANSFORM, VerificationPolicy
from signing.xmlsafe import UnsafeXmlError, parse_canonical

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"ds": DS}
_KZ = "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:"
SIGNATURE_2015_512 = _KZ + "gostr34102015-gostr34112015-512"
"GOST 34.10-2015 (512) with Streebog-512: what NCA's keys sign with today."
SIGNATURE_2015_256 = _KZ + "gostr34102015-gostr34112015-256"
"GOST 34.10-2015 with Streebog-256 (defined, not issued by NCA)."
SIGNATURE_2004 = "http://www.w3.org/2001/04/xmldsig-more#gost34310-gost34311"
"GOST 34.310-2004 with GOST 34.311-95: the older keys, still in circulation."
DIGEST_STREEBOG512 = _KZ + "gostr34112015-512"
"Streebog-512."
DIGEST_STREEBOG256 = _KZ + "gostr34112015-256"
"Streebog-256."
DIGEST_GOST94 = "http://www.w3.org/2001/04/xmldsig-more#gost34311"
"GOST 34.311-95 (GOST R 34.11-94, Test S-box)."

C14N_1_0 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_1_0_COMMENTS = C14N_1_0 + "#WithComments"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = EXC_C14N + "WithComments"
_C14N = {C14N_1_0: (False, False), C14N_1_0_COMMENTS: (False, True),
         EXC_C14N: (True, False), EXC_C14N_COMMENTS: (True, True)}
"Canonicalisations this backend performs: URI -> (exclusive, with comments)."


@dataclass(frozen=True)
class GostMethod:
    """What a GOST SignatureMethod URI means."""

    hash_name: str
    "The hash of SignedInfo (a :mod:`signing.gost.hashes` name)."
    key_algorithm: str
    "The SPKI algorithm OID the signer's key must have."
    digest_size: int
    "Bytes of the hash; the curve's size must match."


SIGNATURE_METHODS = {
    SIGNATURE_2015_512: GostMethod(hashes.STREEBOG512, keys.KEY_2015, 64),
    SIGNATURE_2015_256: GostMethod(hashes.STREEBOG256, keys.KEY_2015, 32),
    SIGNATURE_2004: GostMethod(hashes.GOST94_TEST, keys.KEY_2004, 32),
}
DIGEST_METHODS = {DIGEST_STREEBOG512: hashes.STREEBOG512, DIGEST_STREEBOG256: hashes.STREEBOG256,
                  DIGEST_GOST94: hashes.GOST94_TEST}


def digest(hash_name: str, data: bytes) -> bytes:
    hasher = hashes.new_hash(hash_name)
    hasher.update(data)
    return hasher.digest()


def canonical(element: etree._Element, algorithm: str, *, comments: bool | None = None) -> bytes:
    """``element`` canonicalised by ``algorithm`` (``comments`` overrides whether comments are kept)."""
    exclusive, with_comments = _C14N[algorithm]
    return etree.tostring(element, method="c14n", exclusive=exclusive,
                          with_comments=with_comments if comments is None else comments)


def without_signature(document: etree._Element, signature: etree._Element) -> etree._Element:
    """A copy of ``document`` with the (direct child) ``signature`` removed: the enveloped-signature transform."""
    index = list(document).index(signature)
    clone = copy.deepcopy(document)
    removed = clone[index]
    tail = removed.tail
    previous = removed.getprevious()
    clone.remove(removed)
    if tail:  # the text after the Signature is not part of it: keep it where it was
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            clone.text = (clone.text or "") + tail
    return clone


def _reference_bytes(document: etree._Element, layout: SignatureLayout,
                     reference: etree._Element) -> list[bytes]:
    """The candidate octets of the data reference after its transforms (see the module docstring)."""
    algorithms = [t.get("Algorithm", "") for t in reference.iterfind("ds:Transforms/ds:Transform", NS)]
    node = document
    c14n = C14N_1_0
    for position, algorithm in enumerate(algorithms):
        if algorithm == ENVELOPED_TRANSFORM:
            node = without_signature(node, layout.signature) if node is document else node
        elif algorithm in _C14N and position == len(algorithms) - 1:
            c14n = algorithm
        else:
            raise CryptoFailure(CryptoFailureKind.FORMAT, f"transform {algorithm} is not supported with GOST")
    literal = canonical(node, c14n)
    if not _C14N[c14n][1] or not node.xpath("boolean(//comment())"):
        return [literal]
    return [literal, canonical(node, c14n, comments=False)]


def _base64(element: etree._Element | None, what: str) -> bytes:
    text = "".join(element.itertext()) if element is not None else ""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CryptoFailure(CryptoFailureKind.FORMAT, f"{what} is not base64") from None


def signing_key_of(certificate: x509.Certificate, method_uri: str) -> tuple[GostMethod, keys.GostPublicKey]:
    """The method named by ``method_uri`` and the certificate's key, checked to belong together."""
    method = SIGNATURE_METHODS.get(method_uri)
    if method is None:
        raise CryptoFailure(CryptoFailureKind.FORMAT, f"{method_uri} is not a GOST signature method")
    try:
        key = keys.certificate_key(certificate)
    except keys.UnsupportedGostKey as exc:
        raise CryptoFailure(CryptoFailureKind.FORMAT, str(exc)) from None
    if key.algorithm != method.key_algorithm or key.curve.size != method.digest_size:
        raise CryptoFailure(CryptoFailureKind.FORMAT,
                            f"the signature method {method_uri} does not fit the certificate's key "
                            f"({key.algorithm} on {key.curve.name})")
    return method, key


class GostBackend:
    """GOST 34.10-2015 (512) and GOST 34.310-2004 enveloped signatures, as Kalkan makes them."""

    name = "gost"

    def __init__(self, policy: VerificationPolicy) -> None:
        self._policy = policy

    def supports(self, key_algorithm: str) -> bool:
        return key_algorithm in ("gost2015", "gost2004")

    def unavailable(self) -> str | None:
        try:
            native()
        except GostUnavailable as exc:
            return str(exc)
        return None

    def verify(self, document: etree._Element, certificate: x509.Certificate, layout: SignatureLayout,
               at: datetime, *, consume: bool = False) -> SignedData:
        if layout.references != 1:
            raise CryptoFailure(CryptoFailureKind.FORMAT, "GOST signatures with signed properties (XAdES) or "
                                                          "several references are not supported")
        signature = layout.signature
        if signature.find("ds:KeyInfo/ds:KeyValue", NS) is not None:
            raise CryptoFailure(CryptoFailureKind.FORMAT, "a KeyValue beside the certificate is ambiguous: refused")
        signed_info = signature.find("ds:SignedInfo", NS)
        assert signed_info is not None  # the verifier checked the structure
        method_element = signed_info.find("ds:SignatureMethod", NS)
        method, key = signing_key_of(certificate, method_element.get("Algorithm", "") if method_element is not None
                                     else "")
        c14n_element = signed_info.find("ds:CanonicalizationMethod", NS)
        c14n = c14n_element.get("Algorithm", "") if c14n_element is not None else ""
        if c14n not in _C14N or c14n not in self._policy.transforms or (c14n_element is not None and len(c14n_element)):
            raise CryptoFailure(CryptoFailureKind.FORMAT, f"SignedInfo canonicalisation {c14n!r} is not supported")
        value = _base64(signature.find("ds:SignatureValue", NS), "SignatureValue")
        try:
            valid = ecc.verify(key.curve, key.xy_le, digest(method.hash_name, canonical(signed_info, c14n)), value)
        except GostUnavailable as exc:
            raise CryptoFailure(CryptoFailureKind.FORMAT, str(exc)) from None
        if not valid:
            raise CryptoFailure(CryptoFailureKind.SIGNATURE, "signature value does not verify with the certificate's "
                                                             "GOST key")
        return self._signed_data(document, layout, signed_info)

    def _signed_data(self, document: etree._Element, layout: SignatureLayout,
                     signed_info: etree._Element) -> SignedData:
        reference = signed_info.findall("ds:Reference", NS)[layout.data_index]
        digest_method = reference.find("ds:DigestMethod", NS)
        hash_name = DIGEST_METHODS.get(digest_method.get("Algorithm", "") if digest_method is not None else "")
        if hash_name is None:
            raise CryptoFailure(CryptoFailureKind.FORMAT, "the reference's DigestMethod is not a GOST hash")
        expected = _base64(reference.find("ds:DigestValue", NS), "DigestValue")
        for candidate in _reference_bytes(document, layout, reference):
            if hmac.compare_digest(digest(hash_name, candidate), expected):
                try:
                    return SignedData(parse_canonical(candidate), candidate)
                except UnsafeXmlError as exc:
                    raise CryptoFailure(CryptoFailureKind.FORMAT, f"the signed data is not XML: {exc}") from None
        raise CryptoFailure(CryptoFailureKind.HASH, "signed data was changed: the GOST digest does not match")
