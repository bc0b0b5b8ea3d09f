"""Cryptographic backends: the part of verification that depends on the key algorithm.

The verifier checks structure, policy and the certificate path itself, then hands the cryptography to
the first backend that supports the signer's key algorithm. The default backend is signxml (RSA and
ECDSA over ``cryptography``); GOST keys go to :class:`signing.gost.xmldsig.GostBackend`. The common RSA case
(one Reference ``URI=""``, enveloped-signature then one C14N, no XAdES, no KeyValue) is first tried by a lean
check of its own (:meth:`SignxmlBackend._lean`); it only ever passes a signature, returning the re-parse of the very
bytes whose digest matched and whose SignedInfo the certificate's key verified; anything else, and every signature
it does not pass, goes to signxml, so refusals and their reasons are signxml's as before. The one exception is a
document the caller hands over (``consume``): once its SignedInfo verifies, a digest that does not match, or signed
bytes that do not parse, are refused by the lean check itself (the tree it worked on in place is not signxml's to
read again). A backend that cannot
work on this machine (a missing C library) says so through ``unavailable()``, and its signatures come out
INDETERMINATE with the reason, never passed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature as InvalidRsaSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from signing.policy import ENVELOPED_TRANSFORM, VerificationPolicy
from signing.xmlsafe import UnsafeXmlError, canonical_bytes, parse_canonical

_DS = "{http://www.w3.org/2000/09/xmldsig#}"
_LEAN_C14N = {  # URI -> (exclusive, with comments): read literally, as signxml does
    CanonicalizationMethod.CANONICAL_XML_1_0.value: (False, False),
    CanonicalizationMethod.CANONICAL_XML_1_0_WITH_COMMENTS.value: (False, True),
    CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value: (True, False),
    CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0_WITH_COMMENTS.value: (True, True),
}
_LEAN_RSA: dict[str, hashes.HashAlgorithm] = {
    SignatureMethod.RSA_SHA256.value: hashes.SHA256(), SignatureMethod.RSA_SHA384.value: hashes.SHA384(),
    SignatureMethod.RSA_SHA512.value: hashes.SHA512()}
_LEAN_DIGESTS = {DigestAlgorithm.SHA256.value: "sha256", DigestAlgorithm.SHA384.value: "sha384",
                 DigestAlgorithm.SHA512.value: "sha512"}


class CryptoFailureKind(StrEnum):
    HASH = "hash"
    "A reference digest does not match: the signed data changed."
    SIGNATURE = "signature"
    "The signature value does not verify with the certificate's key."
    SIGNING_CERTIFICATE = "signing_certificate"
    "Signed properties identify a different certificate than the one that verifies."
    FORMAT = "format"
    "The signature cannot be processed (malformed, KeyValue not matching the certificate, ...)."


class CryptoFailure(Exception):
    """The backend refused the signature."""

    def __init__(self, kind: CryptoFailureKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class SignatureLayout:
    """What the verifier found out about the signature before the cryptography."""

    signature: etree._Element
    "The ds:Signature element."
    references: int
    "How many References SignedInfo holds."
    data_index: int
    "Which of them covers the whole document."
    xades: bool
    "Whether a XAdES SignedProperties reference is present."


@dataclass(frozen=True)
class SignedData:
    """What a signature that verifies covers."""

    element: etree._Element
    "The signed data, re-parsed from :attr:`canonical` (a tree of its own, never the input's)."
    canonical: bytes
    "The canonical bytes whose digest matched: exactly what was signed."


class SignatureBackend(Protocol):
    name: str

    def supports(self, key_algorithm: str) -> bool:
        """Whether this backend can verify signatures made with keys of ``key_algorithm``."""
        ...

    def unavailable(self) -> str | None:
        """Why this backend cannot verify anything on this machine (e.g. a missing library); None when it can."""
        ...

    def verify(self, document: etree._Element, certificate: x509.Certificate, layout: SignatureLayout,
               at: datetime, *, consume: bool = False) -> SignedData:
        """Check digests, signature value and signed properties; return the signed data (the canonical bytes that
        were digested and their re-parse), or raise :class:`CryptoFailure`. With ``consume`` the backend may empty
        ``document`` once a signature passes (:meth:`DocumentVerifier.verify`), and a refused one may come back with
        its Signature's prefix changed; without it, ``document`` is never changed."""
        ...


def _own_root(data: object) -> etree._Element | None:
    """``data`` when it is the root of a tree of its own (no parent, no top-level siblings), else None."""
    if isinstance(data, etree._Element) and data.getparent() is None and data.getprevious() is None \
            and data.getnext() is None:
        return data
    return None


class _XMLVerifier(XMLVerifier):
    """signxml's verifier without its first copy of the document: signxml serialises and re-parses its input
    (``get_root``) only to detach it from a parent's namespaces; the verifier hands it a detached root (a big
    document would cost another serialisation and another tree, on top of the copy each reference check makes
    itself). signxml does not change that tree (the reference checks work on copies of their own)."""

    def get_root(self, data: object) -> etree._Element:
        root = _own_root(data)
        return root if root is not None else super().get_root(data)  # type: ignore[no-untyped-call]


class _XAdESVerifier(XAdESVerifier):
    def get_root(self, data: object) -> etree._Element:
        root = _own_root(data)
        return root if root is not None else super().get_root(data)  # type: ignore[no-untyped-call]


class SignxmlBackend:
    """RSA and ECDSA through signxml, with the algorithm allow-list of the policy."""

    name = "signxml"

    def __init__(self, policy: VerificationPolicy) -> None:
        self._policy = policy
        self._xml_verifier = _XMLVerifier()
        self._xades_verifier = _XAdESVerifier()
        self._config = SignatureConfiguration(
            require_x509=True,
            location="./",
            expect_references=1,
            # The policy also names other backends' algorithms (GOST): signxml gets the ones it knows.
            signature_methods=frozenset(m for m in SignatureMethod if m.value in policy.signature_methods),
            digest_algorithms=frozenset(d for d in DigestAlgorithm if d.value in policy.digest_algorithms),
            ignore_ambiguous_key_info=False,
        )

    def supports(self, key_algorithm: str) -> bool:
        return key_algorithm in ("rsa", "ec")

    def unavailable(self) -> str | None:
        return None

    def verify(self, document: etree._Element, certificate: x509.Certificate, layout: SignatureLayout,
               at: datetime, *, consume: bool = False) -> SignedData:
        passed = self._lean(document, certificate, layout, consume)
        if passed is not None:
            return passed
        try:
            result = self._verify(document, certificate, layout, at)
        except InvalidDigest as exc:
            if "certificate digest" in str(exc):  # XAdES SigningCertificateV2 names another certificate
                raise CryptoFailure(CryptoFailureKind.SIGNING_CERTIFICATE,
                                    "the signed properties identify a different signing certificate") from None
            raise CryptoFailure(CryptoFailureKind.HASH, f"signed data was changed: {exc}") from None
        except InvalidCertificate as exc:
            raise CryptoFailure(CryptoFailureKind.FORMAT, str(exc)) from None
        except InvalidSignature as exc:
            raise CryptoFailure(CryptoFailureKind.SIGNATURE, f"signature value does not verify: {exc}") from None
        except (InvalidInput, ValueError, etree.LxmlError) as exc:
            raise CryptoFailure(CryptoFailureKind.FORMAT, f"signature cannot be processed: {exc}") from None
        if result.signed_xml is None:
            raise CryptoFailure(CryptoFailureKind.FORMAT, "the signed data is not XML")
        return SignedData(result.signed_xml, result.signed_data)

    def _lean(self, document: etree._Element, certificate: x509.Certificate,
              layout: SignatureLayout, consume: bool = False) -> SignedData | None:
        """The signed data of an RSA signature of the common shape that verifies; None for any other signature
        (another shape, a bad digest or signature value: signxml then decides, and says why).

        The verifier has checked the structure (one Signature, a child of the root; this Reference covers the whole
        document; transforms and methods allowed by the policy) and the certificate (validity at ``at``, its path).
        What is returned is the re-parse of exactly the canonical bytes whose digest matched, as signxml returns.
        With ``consume`` the enveloped-signature transform takes the Signature out of ``document`` itself for the
        canonicalisation (and puts it back) instead of copying the whole tree, and a signature that passes leaves
        ``document`` emptied before the re-parse (see :meth:`DocumentVerifier.verify`)."""
        public_key = certificate.public_key()
        signature = layout.signature
        if (layout.xades or layout.references != 1 or signature.getparent() is not document
                or not isinstance(public_key, rsa.RSAPublicKey)):
            return None
        if signature.find(f"{_DS}KeyInfo/{_DS}KeyValue") is not None:
            return None  # signxml compares it with the certificate
        signed_info = signature.find(f"{_DS}SignedInfo")
        if signed_info is None:
            return None
        c14n_method = signed_info.find(f"{_DS}CanonicalizationMethod")
        method = signed_info.find(f"{_DS}SignatureMethod")
        reference = signed_info.find(f"{_DS}Reference")
        if c14n_method is None or len(c14n_method) or method is None or reference is None:
            return None
        c14n = _LEAN_C14N.get(c14n_method.get("Algorithm", ""))
        hash_algorithm = _LEAN_RSA.get(method.get("Algorithm", ""))
        digest_method = reference.find(f"{_DS}DigestMethod")
        digest_name = _LEAN_DIGESTS.get(digest_method.get("Algorithm", "")) if digest_method is not None else None
        transforms = reference.findall(f"{_DS}Transforms/{_DS}Transform")
        if (c14n is None or hash_algorithm is None or digest_name is None or reference.get("URI") != ""
                or len(transforms) != 2 or transforms[0].get("Algorithm") != ENVELOPED_TRANSFORM
                or any(len(transform) for transform in transforms)):
            return None
        data_c14n = _LEAN_C14N.get(transforms[1].get("Algorithm", ""))
        if data_c14n is None:
            return None
        try:
            value = base64.b64decode("".join(signature.findtext(f"{_DS}SignatureValue", "").split()), validate=True)
            expected = base64.b64decode("".join(reference.findtext(f"{_DS}DigestValue", "").split()), validate=True)
        except binascii.Error:
            return None
        exclusive, comments = c14n
        signed_info_bytes = etree.tostring(signed_info, method="c14n", exclusive=exclusive, with_comments=comments)
        try:
            public_key.verify(value, signed_info_bytes, padding.PKCS1v15(), hash_algorithm)
        except (InvalidRsaSignature, ValueError):
            return None
        exclusive, comments = data_c14n
        if consume:
            with _enveloped(document, signature):
                data = canonical_bytes(document, exclusive=exclusive, with_comments=comments)
        else:
            data = canonical_bytes(_without(document, signature), exclusive=exclusive, with_comments=comments)
        if not hmac.compare_digest(hashlib.new(digest_name, data).digest(), expected):
            if consume:  # signxml would find the same: lxml may rename the put-back Signature's prefix (see _enveloped)
                raise CryptoFailure(CryptoFailureKind.HASH, "signed data was changed: the digest does not match")
            return None
        if consume:
            document.clear(keep_tail=True)  # the caller gave it up: gone before its re-parse is built
        try:
            return SignedData(parse_canonical(data), data)
        except UnsafeXmlError as exc:
            if consume:  # nothing is left for signxml to look at: refused here
                raise CryptoFailure(CryptoFailureKind.FORMAT, f"the signed data is not XML: {exc}") from None
            return None

    def _verify(self, document: etree._Element, certificate: x509.Certificate, layout: SignatureLayout,
                at: datetime) -> VerifyResult:
        options = {f.name: getattr(self._config, f.name) for f in dataclass_fields(SignatureConfiguration)}
        options.update(expect_references=layout.references, verification_time=at)
        if not layout.xades:
            config = SignatureConfiguration(**options)
            verified = self._xml_verifier.verify(document, x509_cert=certificate, expect_config=config)
            # signxml returns one result when one reference is expected, a list otherwise.
            return verified if isinstance(verified, VerifyResult) else verified[layout.data_index]
        # signxml's XAdES signer digests Transform-less property references with the SignedInfo's
        # canonicalisation; verify them the same way (signxml's verifier would default to C14N 1.1).
        method = layout.signature.find(
            "{http://www.w3.org/2000/09/xmldsig#}SignedInfo/{http://www.w3.org/2000/09/xmldsig#}CanonicalizationMethod")
        if method is not None and method.get("Algorithm") in self._policy.transforms:
            options["default_reference_c14n_method"] = CanonicalizationMethod(method.get("Algorithm"))
        results = self._xades_verifier.verify(document, x509_cert=certificate,
                                              expect_config=XAdESSignatureConfiguration(**options))
        return results[layout.data_index]


@contextmanager
def _enveloped(document: etree._Element, signature: etree._Element) -> Iterator[None]:
    """``document`` without its (direct child) ``signature`` while the block runs, then with it back: the
    enveloped-signature transform of :func:`_without`, in place. The text after the signature stays in place
    meanwhile (lxml takes an element's tail out with it). Put back, the Signature may take an ancestor's prefix for
    its namespace (lxml reconciles declarations by URI), so nothing may check it again afterwards."""
    previous, tail = signature.getprevious(), signature.tail
    index = document.index(signature)
    before = previous.tail if previous is not None else document.text
    document.remove(signature)
    if tail:
        if previous is not None:
            previous.tail = (before or "") + tail
        else:
            document.text = (before or "") + tail
    try:
        yield
    finally:
        if previous is not None:
            previous.tail = before
        else:
            document.text = before
        document.insert(index, signature)
        signature.tail = tail


def _without(document: etree._Element, signature: etree._Element) -> etree._Element:
    """A copy of ``document`` without its (direct child) ``signature``, the text after it kept in place: the
    enveloped-signature transform, as signxml applies it."""
    index = list(document).index(signature)
    clone = copy.deepcopy(document)
    removed = clone[index]
    tail, previous = removed.tail, removed.getprevious()
    clone.remove(removed)
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            clone.text = (clone.text or "") + tail
    return clone
