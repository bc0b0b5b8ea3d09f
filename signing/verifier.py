"""Verifying an applicant's enveloped XMLDSig signature, and returning only what was signed.

The structure is checked first (exactly one Signature, a direct child of the root, one Reference
covering the whole document, allowed transforms and algorithms only), then the signer's
certificate (validity, path to a trust anchor, SIGN key usage), then the cryptography (by signxml,
with the already-validated certificate pinned). Callers must use :attr:`VerifiedDocument.signed`,
which is re-parsed from the canonical bytes that were digested: comments, unsigned siblings and
anything outside the reference never reach the application.

Security caveat: a certificate is trusted only through :class:`signing.trust.TrustStore`; KeyValue
elements are compared against the certificate, never used on their own.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from cryptography import x509
from lxml import etree

from signing.backends import CryptoFailure, CryptoFailureKind, SignatureBackend, SignatureLayout, SignxmlBackend
from signing.gost.xmldsig import GostBackend
from signing.idnumbers import mask_ids
from signing.nca import CertificateIdentity, KeyPurpose, read_identity
from signing.policy import VerificationPolicy
from signing.report import (
    ChainElement,
    Indication,
    RevocationInfo,
    SignerInfo,
    SubIndication,
    ValidationReport,
)
from signing.trust import PathValidator, TrustedPath, TrustStore, UntrustedCertificateError, fingerprint
from signing.xmlsafe import without_comments

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"ds": DS}
_ID_ATTRIBUTES = ("Id", "ID", "id")
_MEMO_SIZE = 10_000
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
GOST_KEY_OIDS = frozenset({"1.2.398.3.10.1.1.1.1", "1.2.398.3.10.1.1.2.3.1", "1.2.398.3.10.1.1.2.3.2"})
GOST_KEY_ALGORITHMS = frozenset({"gost2004", "gost2015"})

# Gateway error code for each sub-indication; a few checks refine it (see _fail callers).
ERROR_CODES: dict[SubIndication, str] = {
    SubIndication.FORMAT_FAILURE: "SIG_FORMAT_FAILURE",
    SubIndication.HASH_FAILURE: "SIG_HASH_FAILURE",
    SubIndication.SIG_CRYPTO_FAILURE: "SIG_CRYPTO_FAILURE",
    SubIndication.REVOKED: "SIG_REVOKED",
    SubIndication.REVOKED_NO_POE: "SIG_REVOKED",
    SubIndication.REVOKED_CA_NO_POE: "SIG_REVOKED",  # an intermediate CA of the path
    SubIndication.EXPIRED: "SIG_EXPIRED",
    SubIndication.OUT_OF_BOUNDS_NO_POE: "SIG_EXPIRED",
    SubIndication.NOT_YET_VALID: "SIG_NOT_YET_VALID",
    SubIndication.NO_SIGNING_CERTIFICATE_FOUND: "SIG_NO_SIGNING_CERTIFICATE_FOUND",
    SubIndication.NO_CERTIFICATE_CHAIN_FOUND: "SIG_NO_CERTIFICATE_CHAIN_FOUND",
    SubIndication.CHAIN_CONSTRAINTS_FAILURE: "SIG_CHAIN_CONSTRAINTS_FAILURE",
    SubIndication.SIG_CONSTRAINTS_FAILURE: "SIG_CONSTRAINTS_FAILURE",
    SubIndication.CRYPTO_CONSTRAINTS_FAILURE: "SIG_CRYPTO_CONSTRAINTS_FAILURE",
    SubIndication.TRY_LATER: "SIG_TRY_LATER",
    SubIndication.SIGNED_DATA_NOT_FOUND: "SIG_SIGNED_DATA_NOT_FOUND",
}
# Codes more specific than their sub-indication's, chosen by the check that failed.
REFINED_CODES: dict[str, SubIndication] = {
    "SIG_UNSUPPORTED_ALGORITHM": SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    "SIG_NOT_SIGNING_KEY": SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    "SIG_GOST_UNAVAILABLE": SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    "SIG_GOST_PATH_UNAVAILABLE": SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
}
_CRYPTO_SUB_INDICATIONS = {
    CryptoFailureKind.HASH: SubIndication.HASH_FAILURE,
    CryptoFailureKind.SIGNATURE: SubIndication.SIG_CRYPTO_FAILURE,
    CryptoFailureKind.SIGNING_CERTIFICATE: SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
    CryptoFailureKind.FORMAT: SubIndication.FORMAT_FAILURE,
}
_TOTAL_FAILED = frozenset({
    SubIndication.FORMAT_FAILURE, SubIndication.HASH_FAILURE, SubIndication.SIG_CRYPTO_FAILURE,
    SubIndication.REVOKED, SubIndication.NOT_YET_VALID,
})


class SignatureRejected(Exception):
    """Validation did not pass; :attr:`report` says why."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(f"{report.indication}/{report.sub_indication}: {'; '.join(report.errors)}")
        self.report = report


@dataclass(frozen=True)
class VerifiedDocument:
    """A signature that passed, and the data it covers."""

    signed: etree._Element
    "The business document exactly as signed (signature removed, re-parsed from canonical form)."
    report: ValidationReport
    "The TOTAL_PASSED report."
    identity: CertificateIdentity
    "Everything read from the signer's certificate."
    path: TrustedPath
    "The validated certificate path, signer first, trust anchor last (revocation needs the issuer)."
    canonical: bytes | None = None
    """The canonical bytes ``signed`` was parsed from (what the signature's digest covers), when they hold no comment
    or processing instruction, as ``signed`` holds none: the document to store and pass on, with no serialisation
    of its own. None otherwise (serialise ``signed``: the comments must not reach a reader)."""


@dataclass(frozen=True)
class CheckedCertificate:
    """A certificate that has a valid path to a trust anchor (:meth:`DocumentVerifier.check_certificate`)."""

    identity: CertificateIdentity
    "Everything read from the certificate."
    path: TrustedPath
    "The validated path, the certificate first, the trust anchor last."
    signer: SignerInfo
    "The report's view of the certificate's holder."
    chain: tuple[ChainElement, ...]
    "The report's view of the path."


def _is_signature_property(target: etree._Element, signature: etree._Element) -> bool:
    """A XAdES SignedProperties or the KeyInfo, inside this very Signature."""
    inside = any(ancestor is signature for ancestor in target.iterancestors())
    return inside and etree.QName(target).localname in ("SignedProperties", "KeyInfo")


class _Found(TypedDict, total=False):
    """What verification learned before it passed or failed: the report carries it either way."""

    signer: SignerInfo
    chain: tuple[ChainElement, ...]
    signature_algorithm: str
    digest_algorithm: str | None
    signature_format: str
    claimed_signing_time: datetime | None


class _Failure(Exception):
    def __init__(self, sub: SubIndication, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.sub, self.reason, self.code = sub, reason, code


class DocumentVerifier:
    """Verifies enveloped signatures against one policy and trust store (both loaded once).

    ``trust`` validates RSA/ECDSA certificate paths; ``gost_paths`` validates GOST ones (``cryptography`` cannot
    check GOST certificate signatures). Without ``gost_paths`` a GOST signer's path cannot be validated, and the
    answer is INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND (SIG_GOST_PATH_UNAVAILABLE), never a pass.
    """

    def __init__(
        self,
        policy: VerificationPolicy,
        trust: TrustStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        backends: Sequence[SignatureBackend] = (),
        gost_paths: PathValidator | None = None,
    ) -> None:
        self.policy = policy
        self.trust = trust
        self.gost_paths = gost_paths
        self.clock = clock
        self.backends: tuple[SignatureBackend, ...] = (
            tuple(backends) if backends else (SignxmlBackend(policy), GostBackend(policy)))
        self._identities: dict[bytes, CertificateIdentity] = {}
        self._certificates: dict[bytes, tuple[x509.Certificate, bool]] = {}
        "Parsed KeyInfo certificates by their DER bytes, each with whether it is a CA (parsed once, not per request)."
        self._chains: dict[bytes, tuple[TrustedPath, tuple[ChainElement, ...]]] = {}

    def verify(self, document: etree._Element, *, consume: bool = False) -> VerifiedDocument:
        """Verify ``document`` (the root of a standalone tree) or raise :class:`SignatureRejected`.

        ``consume``: the caller hands the tree over and reads nothing of it afterwards but its tag. A signature that
        passes may then leave it emptied, once the signed bytes are taken from it, so a big document is not held
        three times (received, canonical, re-parsed) while the re-parse runs. Without it the tree is left as it
        came, whatever the outcome."""
        now = self.clock()
        found: _Found = {}
        try:
            return self._verify(document, now, found, consume)
        except _Failure as failure:
            raise SignatureRejected(_failed_report(failure, now, found)) from None

    def check_certificate(self, certificate: x509.Certificate, untrusted: Sequence[x509.Certificate] = (),
                          *, now: datetime | None = None) -> CheckedCertificate:
        """A signer's certificate read and validated as :meth:`verify` does it (validity, path to a trust anchor,
        the same memos), for signatures that are not enveloped documents (WS-Security); raises
        :class:`SignatureRejected`. The key purpose is left to the caller."""
        now = now or self.clock()
        found: _Found = {}
        try:
            leaf_fingerprint = fingerprint(certificate)
            identity = self._identity(certificate, leaf_fingerprint)
            found["signer"] = _signer_info(identity)
            path, _ = self._trusted_path(certificate, untrusted, leaf_fingerprint, now,
                                         identity.public_key_algorithm)
            found["chain"] = self._chain(path, leaf_fingerprint)
        except _Failure as failure:
            raise SignatureRejected(_failed_report(failure, now, found)) from None
        return CheckedCertificate(identity, path, found["signer"], found["chain"])

    def _verify(self, document: etree._Element, now: datetime, found: _Found, consume: bool) -> VerifiedDocument:
        structure = self._check_structure(document)
        signature = structure.signature
        signed_info = _required(signature, "ds:SignedInfo")
        method = _required(signed_info, "ds:SignatureMethod").get("Algorithm", "")
        digest = signed_info.find("ds:Reference/ds:DigestMethod", NS)
        found["signature_algorithm"] = method
        found["digest_algorithm"] = digest.get("Algorithm") if digest is not None else None

        signer_cert, untrusted = self._signing_certificate(signature)
        leaf_fingerprint = fingerprint(signer_cert)
        identity = self._identity(signer_cert, leaf_fingerprint)
        found["signer"] = _signer_info(identity)
        backend = self._backend(identity, signed_info, method)
        path, at = self._trusted_path(signer_cert, untrusted, leaf_fingerprint, now, identity.public_key_algorithm)
        found["chain"] = self._chain(path, leaf_fingerprint)  # in the report even when the key purpose is wrong
        if identity.key_purpose is not self.policy.required_key_purpose:
            raise _Failure(SubIndication.CHAIN_CONSTRAINTS_FAILURE,
                           f"certificate key purpose is {identity.key_purpose}, "
                           f"{self.policy.required_key_purpose} is required",
                           "SIG_NOT_SIGNING_KEY" if identity.key_purpose is KeyPurpose.AUTH else None)

        try:
            data = backend.verify(document, signer_cert, structure, at, consume=consume)
        except CryptoFailure as failure:
            raise _Failure(_CRYPTO_SUB_INDICATIONS[failure.kind], failure.detail) from None
        # No reader can be cut short by a comment (signed with-comments C14N). In canonical XML a "<" in text or an
        # attribute is always escaped, so these two searches find only real comments and processing instructions.
        canonical = data.canonical if b"<!--" not in data.canonical and b"<?" not in data.canonical else None
        signed = without_comments(data.element)
        if etree.QName(signed).text != etree.QName(document).text:
            raise _Failure(SubIndication.SIGNED_DATA_NOT_FOUND, "the signature does not cover the document")

        if structure.xades:
            found["signature_format"] = "XAdES-BES"
            found["claimed_signing_time"] = _signing_time(signature)
        report = ValidationReport(
            indication=Indication.TOTAL_PASSED,
            sub_indication=None,
            error_code=None,
            validation_time=now,
            revocation=RevocationInfo(status="not_checked", source="none", checked_at=None),
            warnings=("revocation status was not checked (revocation mode is off)",),
            **found,
        )
        return VerifiedDocument(signed=signed, report=report, identity=identity, path=path, canonical=canonical)

    def _backend(self, identity: CertificateIdentity, signed_info: etree._Element, method: str) -> SignatureBackend:
        """The backend for the signer's key, once the policy allows the signature's method and digests."""
        backend = next((b for b in self.backends if b.supports(identity.public_key_algorithm)), None)
        if backend is None:
            algorithm = identity.public_key_algorithm
            label = "GOST 34.310" if algorithm.startswith("gost") or algorithm in GOST_KEY_OIDS else algorithm
            raise _Failure(SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                           f"{label} signatures are not supported by this verification backend",
                           "SIG_UNSUPPORTED_ALGORITHM")
        reason = backend.unavailable()
        if reason is not None:
            gost = identity.public_key_algorithm in GOST_KEY_ALGORITHMS
            raise _Failure(SubIndication.CRYPTO_CONSTRAINTS_FAILURE, f"the {backend.name} backend cannot run here: "
                           f"{reason}", "SIG_GOST_UNAVAILABLE" if gost else "SIG_UNSUPPORTED_ALGORITHM")
        if method not in self.policy.signature_methods:
            raise _Failure(SubIndication.CRYPTO_CONSTRAINTS_FAILURE, f"signature method {method} is not allowed")
        for digest_method in signed_info.iterfind("ds:Reference/ds:DigestMethod", NS):
            if digest_method.get("Algorithm") not in self.policy.digest_algorithms:
                raise _Failure(SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                               f"digest method {digest_method.get('Algorithm')} is not allowed")
        return backend

    def _trusted_path(self, signer_cert: x509.Certificate, untrusted: Sequence[x509.Certificate],
                      leaf_fingerprint: bytes, now: datetime, key_algorithm: str) -> tuple[TrustedPath, datetime]:
        """The signer's path to a trust anchor, and the instant (within the validity period) it was validated at."""
        validator: PathValidator = self.trust
        if key_algorithm in GOST_KEY_ALGORITHMS:
            if self.gost_paths is None:
                raise _Failure(SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                               "GOST certificate paths cannot be validated here yet (no GOST path validator is "
                               "configured), so this GOST signature is not accepted", "SIG_GOST_PATH_UNAVAILABLE")
            validator = self.gost_paths
        skew = self.policy.clock_skew
        if now + skew < signer_cert.not_valid_before_utc:
            raise _Failure(SubIndication.NOT_YET_VALID,
                           f"certificate is valid only from {signer_cert.not_valid_before_utc.isoformat()}")
        if now - skew > signer_cert.not_valid_after_utc:
            raise _Failure(SubIndication.OUT_OF_BOUNDS_NO_POE,
                           f"certificate expired on {signer_cert.not_valid_after_utc.isoformat()}")
        # Within the skew allowance, validate as of the nearest instant the certificate was valid.
        at = min(max(now, signer_cert.not_valid_before_utc), signer_cert.not_valid_after_utc)
        try:
            path = validator.validate(signer_cert, untrusted, at, leaf_fingerprint=leaf_fingerprint)
        except UntrustedCertificateError as exc:
            # The library's text names certificate subjects, which carry IINs: mask them.
            raise _Failure(SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                           f"no path to a trust anchor: {mask_ids(str(exc))}") from None
        return path, at

    def _check_structure(self, document: etree._Element) -> SignatureLayout:
        if etree.QName(document).namespace == DS:
            raise _Failure(SubIndication.FORMAT_FAILURE, "the document root must not be an XMLDSig element")
        # Every ds:Signature in the document (as //ds:Signature), without compiling an XPath per request.
        signatures = list(document.getroottree().getroot().iter(f"{{{DS}}}Signature"))
        if not signatures:
            raise _Failure(SubIndication.FORMAT_FAILURE, "the document is not signed")
        if len(signatures) > 1:
            raise _Failure(SubIndication.FORMAT_FAILURE, f"{len(signatures)} Signature elements; exactly one allowed")
        signature = signatures[0]
        if signature.getparent() is not document:
            raise _Failure(SubIndication.FORMAT_FAILURE, "the Signature must be a direct child of the document root")
        signed_info = signature.find("ds:SignedInfo", NS)
        if signed_info is None or signed_info.find("ds:SignatureMethod", NS) is None:
            raise _Failure(SubIndication.FORMAT_FAILURE, "the Signature has no SignedInfo/SignatureMethod")
        references = signed_info.findall("ds:Reference", NS)
        data_index: int | None = None
        xades = False
        for index, reference in enumerate(references):
            target = self._reference_target(document, reference.get("URI"))
            if target is document:
                if data_index is not None:
                    raise _Failure(SubIndication.SIG_CONSTRAINTS_FAILURE, "two References cover the document")
                data_index = index
            elif self.policy.allow_xades and _is_signature_property(target, signature):
                # XAdES signs its own SignedProperties (and often KeyInfo): inside the Signature, not data.
                xades = xades or reference.get("Type") == SIGNED_PROPERTIES_TYPE
            else:
                raise _Failure(SubIndication.SIG_CONSTRAINTS_FAILURE,
                               "the reference must cover the whole document, not one element of it")
            for transform in reference.iterfind("ds:Transforms/ds:Transform", NS):
                if transform.get("Algorithm") not in self.policy.transforms or len(transform):
                    raise _Failure(SubIndication.SIG_CONSTRAINTS_FAILURE,
                                   f"transform {transform.get('Algorithm')} is not allowed")
        if data_index is None:
            raise _Failure(SubIndication.SIG_CONSTRAINTS_FAILURE,
                           f"{len(references)} References and none covers the whole document")
        return SignatureLayout(signature, len(references), data_index, xades)

    @staticmethod
    def _reference_target(document: etree._Element, uri: str | None) -> etree._Element:
        if uri == "":
            return document
        if uri is None or not uri.startswith("#") or uri.startswith("#xpointer("):
            raise _Failure(SubIndication.SIGNED_DATA_NOT_FOUND,
                           f"reference URI {uri!r} does not point into this document")
        wanted = uri[1:]
        # signxml resolves the URI by attribute local name in any namespace (so also xml:id, x:Id): match the same.
        holders = [el for el in document.iter() if isinstance(el.tag, str) and any(
            value == wanted and etree.QName(name).localname in _ID_ATTRIBUTES for name, value in el.items())]
        if len(holders) != 1:
            raise _Failure(SubIndication.FORMAT_FAILURE, f"Id {wanted!r} appears {len(holders)} times")
        return holders[0]

    def _signing_certificate(
        self, signature: etree._Element
    ) -> tuple[x509.Certificate, list[x509.Certificate]]:
        elements = signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
        if not elements:
            raise _Failure(SubIndication.NO_SIGNING_CERTIFICATE_FOUND, "no X509Certificate in KeyInfo")
        if len(elements) > self.policy.max_certificates:
            raise _Failure(SubIndication.FORMAT_FAILURE, f"more than {self.policy.max_certificates} certificates")
        parsed = [self._certificate(element.text) for element in elements]
        certificates = [certificate for certificate, _ in parsed]
        end_entities = [certificate for certificate, ca in parsed if not ca]
        if len(end_entities) != 1:
            raise _Failure(SubIndication.FORMAT_FAILURE,
                           f"{len(end_entities)} end-entity certificates in KeyInfo; exactly one is required")
        signer = end_entities[0]
        return signer, [c for c in certificates if c is not signer]

    def _certificate(self, text: str | None) -> tuple[x509.Certificate, bool]:
        """One X509Certificate element's certificate and whether it is a CA, parsed once per distinct DER."""
        try:
            der = base64.b64decode("".join((text or "").split()), validate=True)
        except binascii.Error:
            raise _Failure(SubIndication.FORMAT_FAILURE, "an X509Certificate cannot be decoded") from None
        known = self._certificates.get(der)
        if known is None:
            try:
                certificate = x509.load_der_x509_certificate(der)
            except ValueError:
                raise _Failure(SubIndication.FORMAT_FAILURE, "an X509Certificate cannot be decoded") from None
            if len(self._certificates) > _MEMO_SIZE:
                self._certificates.clear()
            known = self._certificates[der] = (certificate, _is_ca(certificate))
        return known

    def _identity(self, certificate: x509.Certificate, key: bytes) -> CertificateIdentity:
        identity = self._identities.get(key)
        if identity is None:
            if len(self._identities) > _MEMO_SIZE:
                self._identities.clear()
            identity = self._identities[key] = read_identity(certificate)
        return identity

    def _chain(self, path: TrustedPath, key: bytes) -> tuple[ChainElement, ...]:
        """The report's view of a path, rendered once per path (subject strings are not free)."""
        cached = self._chains.get(key)
        if cached is None or cached[0] is not path:
            if len(self._chains) > _MEMO_SIZE:
                self._chains.clear()
            cached = self._chains[key] = (path, _chain(path))
        return cached[1]


def _failed_report(failure: _Failure, now: datetime, found: _Found) -> ValidationReport:
    return ValidationReport(
        indication=Indication.TOTAL_FAILED if failure.sub in _TOTAL_FAILED else Indication.INDETERMINATE,
        sub_indication=failure.sub,
        error_code=failure.code or ERROR_CODES[failure.sub],
        validation_time=now,
        errors=(failure.reason,),
        **found,
    )


def _required(parent: etree._Element, path: str) -> etree._Element:
    """The child at ``path`` (checked by ``_check_structure`` already; this keeps the check next to the use)."""
    child = parent.find(path, NS)
    if child is None:
        raise _Failure(SubIndication.FORMAT_FAILURE, f"the Signature has no {path}")
    return child


def _signing_time(signature: etree._Element) -> datetime | None:
    """The XAdES SigningTime the signer claims (not proof of time: no timestamp authority is involved)."""
    text = signature.findtext(f".//{{{XADES}}}SignedSignatureProperties/{{{XADES}}}SigningTime")
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _signer_info(identity: CertificateIdentity) -> SignerInfo:
    return SignerInfo(
        iin=identity.iin,
        bin=identity.bin,
        name=identity.common_name,
        organisation=identity.organisation,
        roles=tuple(sorted(identity.roles)),
        policies=identity.policies,
        key_purpose=str(identity.key_purpose),
        certificate_serial=format(identity.serial_number, "x"),
    )


def _chain(path: TrustedPath) -> tuple[ChainElement, ...]:
    return tuple(
        ChainElement(
            subject=c.subject.rfc4514_string(),
            issuer=c.issuer.rfc4514_string(),
            serial=format(c.serial_number, "x"),
            not_before=c.not_valid_before_utc,
            not_after=c.not_valid_after_utc,
            sha256=fingerprint(c).hex(),
        )
        for c in path.certificates
    )
