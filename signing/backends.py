"""Cryptographic backends: the part of verification that depends on the key algorithm.

The verifier checks structure, policy and the certificate path itself, then hands the cryptography to
the first backend that supports the signer's key algorithm. The default backend is signxml (RSA and
ECDSA over ``cryptography``); GOST keys go to :class:`signing.gost.xmldsig.GostBackend`. A backend that cannot
work on this machine (a missing C library) says so through ``unavailable()``, and its signatures come out
INDETERMINATE with the reason, never passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from cryptography import x509
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from signing.policy import VerificationPolicy


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


class SignatureBackend(Protocol):
    name: str

    def supports(self, key_algorithm: str) -> bool:
        """Whether this backend can verify signatures made with keys of ``key_algorithm``."""
        ...

    def unavailable(self) -> str | None:
        """Why this backend cannot verify anything on this machine (e.g. a missing library); None when it can."""
        ...

    def verify(self, document: etree._Element, certificate: x509.Certificate, layout: SignatureLayout,
               at: datetime) -> etree._Element:
        """Check digests, signature value and signed properties; return the signed data (re-parsed from the
        canonical bytes that were digested), or raise :class:`CryptoFailure`."""
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
               at: datetime) -> etree._Element:
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
        return result.signed_xml

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
