"""Verifying a WS-Security (OASIS WSS 1.1, X.509 token profile) signature over a SOAP 1.1 envelope.

Accepted, and nothing else: one ``wsse:Security`` header for us (no actor, or ours) holding exactly one
``wsu:Timestamp`` (Created, Expires), one X.509v3 ``BinarySecurityToken`` and one ``ds:Signature``; the
signature's SignedInfo references exactly the envelope's own ``soap:Body`` and that Timestamp, each by a
``wsu:Id`` that occurs once in the whole envelope; exclusive C14N only; signature and digest methods from the
document :class:`~signing.policy.VerificationPolicy`; KeyInfo is a ``SecurityTokenReference`` to that token.
The token's certificate is validated by :meth:`signing.verifier.DocumentVerifier.check_certificate` (the
documents' path builder, trust store and clock skew); revocation is the caller's next step
(:func:`signing.revocation.apply_revocation` on :attr:`VerifiedEnvelope.document`).

Wrapping defence: references are resolved by exact Id and the resolved element must *be* the envelope's Body
or the Timestamp of this header (object identity), so a signed Body moved elsewhere and a different Body
processed is refused. Replay is bounded here (Timestamp lifetime, freshness) and detected by the caller with
:attr:`VerifiedEnvelope.replay_key`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from signing.nca import KeyPurpose, SignerRole
from signing.policy import GOST_SIGNATURE_METHODS
from signing.report import Indication, RevocationInfo, ValidationReport
from signing.trust import fingerprint
from signing.verifier import DocumentVerifier, SignatureRejected, VerifiedDocument

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
X509_TOKEN = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
NEXT_ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"
SECURITY = f"{{{WSSE}}}Security"
WSU_ID = f"{{{WSU}}}Id"
_ENVELOPE, _HEADER, _BODY = f"{{{SOAP11}}}Envelope", f"{{{SOAP11}}}Header", f"{{{SOAP11}}}Body"
_TIMESTAMP, _TOKEN, _SIGNATURE = f"{{{WSU}}}Timestamp", f"{{{WSSE}}}BinarySecurityToken", f"{{{DS}}}Signature"
_INCLUSIVE = f"{{{EXC_C14N}}}InclusiveNamespaces"
_ID_NAMES = ("Id", "ID", "id")
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512(),
}
_DIGESTS = {"http://www.w3.org/2001/04/xmlenc#sha256": "sha256", "http://www.w3.org/2001/04/xmldsig-more#sha384":
            "sha384", "http://www.w3.org/2001/04/xmlenc#sha512": "sha512"}


class WsSecurityRejected(Exception):
    """The header is not acceptable. ``code`` is the gateway error code; ``report`` is set for certificate
    and cryptographic failures (the documents' validation report)."""

    def __init__(self, code: str, reason: str, report: ValidationReport | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code, self.reason, self.report = code, reason, report


@dataclass(frozen=True)
class WsSecurityPolicy:
    """What a WS-Security header must satisfy beyond the documents' algorithm policy and trust store."""

    max_lifetime: timedelta = timedelta(minutes=5)
    "Longest Expires − Created accepted; also how old Created may be (the replay window is this plus the skew)."
    clock_skew: timedelta = timedelta(minutes=5)
    "How far in the future Created may be (the sender's clock running ahead)."
    actor: str | None = None
    "Our SOAP 1.1 actor URI; a Security header with another actor is not ours (None: only headers without one)."
    key_purposes: frozenset[KeyPurpose] = frozenset({KeyPurpose.SIGN, KeyPurpose.AUTH})
    "Key purposes a system certificate may authenticate with."


@dataclass(frozen=True)
class VerifiedEnvelope:
    """A WS-Security signature that passed (certificate path included, revocation not yet)."""

    body: etree._Element
    "The envelope's soap:Body exactly as verified: the caller must read the operation from it and nothing else."
    document: VerifiedDocument
    "The signer's identity, path and report, in the shape revocation checking takes (``signed`` is the Body)."
    created: datetime
    "Timestamp Created."
    expires: datetime
    "Timestamp Expires."
    replay_key: bytes
    "SHA-256 over the certificate's fingerprint and the signature value: seen twice means replayed."


def security_headers(envelope: etree._Element, actor: str | None) -> list[etree._Element]:
    """The envelope's wsse:Security header blocks addressed to us (no actor, SOAP 1.1's ``next``, or ``actor``)."""
    found: list[etree._Element] = []
    for header in envelope.iterchildren(_HEADER):
        for block in header.iterchildren(SECURITY):
            target = block.get(f"{{{SOAP11}}}actor")
            if target is None or target == NEXT_ACTOR or (actor is not None and target == actor):
                found.append(block)
    return found


class EnvelopeVerifier:
    """Verifies WS-Security signatures with the documents' verifier (policy, trust, clock). CPU-bound: run it
    off the event loop for callers that are not yet authenticated."""

    def __init__(self, verifier: DocumentVerifier, policy: WsSecurityPolicy,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.verifier = verifier
        self.policy = policy
        self.clock = clock or verifier.clock

    def verify(self, envelope: etree._Element) -> VerifiedEnvelope:
        """Verify the one Security header of ``envelope`` or raise :class:`WsSecurityRejected`."""
        now = self.clock()
        if envelope.tag != _ENVELOPE:
            raise _invalid("not a SOAP 1.1 envelope")
        bodies = list(envelope.iterchildren(_BODY))
        headers = list(envelope.iterchildren(_HEADER))
        if len(bodies) != 1 or len(headers) > 1:
            raise _invalid("exactly one soap:Body and at most one soap:Header are required")
        blocks = security_headers(envelope, self.policy.actor)
        if len(blocks) != 1:
            raise _invalid(f"{len(blocks)} wsse:Security headers for this gateway; exactly one is required")
        body, security = bodies[0], blocks[0]
        timestamp, token, signature = _parts(security)
        created, expires = self._check_timestamp(timestamp, now)
        signed_info = _one(signature, f"{{{DS}}}SignedInfo")
        ids = _ids(envelope)
        self._check_references(signed_info, ids, {body: "soap:Body", timestamp: "wsu:Timestamp"})
        certificate = _token_certificate(signature, token, ids)
        value = _signature_value(signature)
        method = _one(signed_info, f"{{{DS}}}SignatureMethod").get("Algorithm", "")
        if method not in self.verifier.policy.signature_methods or method in GOST_SIGNATURE_METHODS:
            # GOST is verified for documents (signing/gost), not (yet) for WS-Security envelopes.
            raise WsSecurityRejected("SIG_CRYPTO_CONSTRAINTS_FAILURE", f"signature method {method} is not allowed")
        try:
            checked = self.verifier.check_certificate(certificate, (), now=now)
        except SignatureRejected as rejected:
            raise WsSecurityRejected(rejected.report.error_code or "SIG_NO_CERTIFICATE_CHAIN_FOUND",
                                     "; ".join(rejected.report.errors), rejected.report) from None
        identity = checked.identity
        if identity.key_purpose not in self.policy.key_purposes:
            raise WsSecurityRejected("SIG_CHAIN_CONSTRAINTS_FAILURE", f"key purpose {identity.key_purpose}")
        if not identity.bin or SignerRole.ORGANISATION not in identity.roles or identity.iin:
            raise WsSecurityRejected("CLIENT_WSS_NOT_SYSTEM_CERTIFICATE",
                                     "a system certificate of an organisation (OU=BIN…, organisation role) is needed")
        _check_signature_value(certificate, method, _c14n(signed_info), value)
        report = ValidationReport(
            indication=Indication.TOTAL_PASSED, sub_indication=None, error_code=None, validation_time=now,
            signer=checked.signer, chain=checked.chain, signature_algorithm=method,
            digest_algorithm=signed_info.find(f"{{{DS}}}Reference/{{{DS}}}DigestMethod").get("Algorithm"),  # type: ignore[union-attr]
            revocation=RevocationInfo(status="not_checked", source="none", checked_at=None),
            warnings=("revocation status was not checked (revocation mode is off)",), signature_format="WS-Security",
        )
        key = hashlib.sha256(fingerprint(certificate) + b"\0" + value).digest()
        return VerifiedEnvelope(body, VerifiedDocument(body, report, identity, checked.path), created, expires, key)

    def _check_timestamp(self, timestamp: etree._Element, now: datetime) -> tuple[datetime, datetime]:
        children = [c for c in timestamp if isinstance(c.tag, str)]
        if [c.tag for c in children] != [f"{{{WSU}}}Created", f"{{{WSU}}}Expires"]:
            raise WsSecurityRejected("CLIENT_WSS_TIMESTAMP_INVALID", "the Timestamp must hold Created, then Expires")
        created, expires = (_instant(c.text) for c in children)
        if created > now + self.policy.clock_skew:
            raise WsSecurityRejected("CLIENT_WSS_TIMESTAMP_INVALID", "the Timestamp was created in the future")
        if expires <= created or expires - created > self.policy.max_lifetime:
            raise WsSecurityRejected("CLIENT_WSS_TIMESTAMP_INVALID",
                                     f"the Timestamp's lifetime must be positive and at most "
                                     f"{int(self.policy.max_lifetime.total_seconds())} s")
        if expires <= now or created < now - self.policy.max_lifetime - self.policy.clock_skew:
            raise WsSecurityRejected("CLIENT_WSS_TIMESTAMP_EXPIRED", f"the Timestamp expired at {expires.isoformat()}")
        return created, expires

    def _check_references(self, signed_info: etree._Element, ids: dict[str, list[etree._Element]],
                          expected: dict[etree._Element, str]) -> None:
        children = [c for c in signed_info if isinstance(c.tag, str)]
        method = _one(signed_info, f"{{{DS}}}CanonicalizationMethod")
        _check_c14n(method)
        references = signed_info.findall(f"{{{DS}}}Reference")
        if len(references) != 2 or len(children) != 4:
            raise _invalid("SignedInfo must reference exactly the soap:Body and the wsu:Timestamp, nothing else")
        covered: set[str] = set()
        for reference in references:
            uri = reference.get("URI") or ""
            if not uri.startswith("#") or len(ids.get(uri[1:], ())) != 1:
                raise _invalid(f"reference {uri[:80]!r} does not name exactly one element by Id")
            target = ids[uri[1:]][0]
            if target not in expected or target.get(WSU_ID) != uri[1:]:
                raise _invalid(f"reference {uri[:80]!r} is neither the envelope's Body nor this header's Timestamp")
            covered.add(expected[target])
            transforms = reference.findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
            for transform in transforms:
                _check_c14n(transform)
            digest_method = _one(reference, f"{{{DS}}}DigestMethod").get("Algorithm", "")
            if digest_method not in self.verifier.policy.digest_algorithms or digest_method not in _DIGESTS:
                raise WsSecurityRejected("SIG_CRYPTO_CONSTRAINTS_FAILURE", f"digest method {digest_method}")
            prefixes = _prefixes(transforms[-1]) if transforms else ()
            actual = hashlib.new(_DIGESTS[digest_method], _c14n(target, prefixes)).digest()
            if not hmac.compare_digest(actual, _b64(_one(reference, f"{{{DS}}}DigestValue").text, "DigestValue")):
                raise WsSecurityRejected("SIG_HASH_FAILURE", f"the signed {expected[target]} was changed")
        if len(covered) != 2:
            raise _invalid("SignedInfo must reference both the soap:Body and the wsu:Timestamp")


def _parts(security: etree._Element) -> tuple[etree._Element, etree._Element, etree._Element]:
    """The Security header's Timestamp, token and Signature: one each, nothing else (no second signature)."""
    children = [c for c in security if isinstance(c.tag, str)]
    tags = [c.tag for c in children]
    if sorted(tags) != sorted([_TIMESTAMP, _TOKEN, _SIGNATURE]):
        raise _invalid("the Security header must hold one Timestamp, one BinarySecurityToken and one Signature")
    if len(security.findall(f".//{_SIGNATURE}")) != 1:
        raise _invalid("only one ds:Signature may appear in the Security header")
    by_tag = dict(zip(tags, children, strict=True))
    return by_tag[_TIMESTAMP], by_tag[_TOKEN], by_tag[_SIGNATURE]


def _ids(envelope: etree._Element) -> dict[str, list[etree._Element]]:
    """Every Id-like attribute value of the envelope (wsu:Id, Id, ID, id, xml:id): each must be unique."""
    ids: dict[str, list[etree._Element]] = {}
    for element in envelope.iter():
        if isinstance(element.tag, str):
            for name, value in element.items():
                if etree.QName(name).localname in _ID_NAMES:
                    ids.setdefault(value, []).append(element)
    repeated = sorted(value for value, holders in ids.items() if len(holders) > 1)
    if repeated:
        raise _invalid(f"Id {repeated[0][:80]!r} appears more than once in the envelope")
    return ids


def _token_certificate(signature: etree._Element, token: etree._Element,
                       ids: dict[str, list[etree._Element]]) -> x509.Certificate:
    key_info = _one(signature, f"{{{DS}}}KeyInfo")
    references = key_info.findall(f"{{{WSSE}}}SecurityTokenReference/{{{WSSE}}}Reference")
    if len([c for c in key_info if isinstance(c.tag, str)]) != 1 or len(references) != 1:
        raise _invalid("KeyInfo must hold one SecurityTokenReference to the BinarySecurityToken")
    uri = references[0].get("URI") or ""
    token_id = token.get(WSU_ID)
    if not token_id or uri != f"#{token_id}" or ids.get(token_id) != [token]:
        raise _invalid("the SecurityTokenReference does not name this header's BinarySecurityToken")
    if references[0].get("ValueType", X509_TOKEN) != X509_TOKEN or token.get("ValueType") != X509_TOKEN:
        raise _invalid("only X.509v3 BinarySecurityTokens are accepted")
    if token.get("EncodingType", BASE64_BINARY) != BASE64_BINARY:
        raise _invalid("the BinarySecurityToken must be Base64Binary")
    try:
        return x509.load_der_x509_certificate(_b64(token.text, "BinarySecurityToken"))
    except ValueError:
        raise _invalid("the BinarySecurityToken is not an X.509 certificate") from None


def _signature_value(signature: etree._Element) -> bytes:
    tags = [c.tag for c in signature if isinstance(c.tag, str)]
    if tags != [f"{{{DS}}}SignedInfo", f"{{{DS}}}SignatureValue", f"{{{DS}}}KeyInfo"]:
        raise _invalid("the Signature must hold SignedInfo, SignatureValue and KeyInfo only")
    return _b64(_one(signature, f"{{{DS}}}SignatureValue").text, "SignatureValue")


def _check_signature_value(certificate: x509.Certificate, method: str, data: bytes, value: bytes) -> None:
    algorithm = _HASHES.get(method.rsplit("-", 1)[-1].rsplit("#", 1)[-1])
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):  # e.g. a GOST key: cryptography cannot load it
        raise WsSecurityRejected("SIG_CRYPTO_CONSTRAINTS_FAILURE", f"{method} does not fit the certificate's key") \
            from None
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None and "rsa" in method:
            key.verify(value, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None and "ecdsa" in method:
            half = len(value) // 2  # XMLDSig ECDSA values are r || s, cryptography wants DER
            der = encode_dss_signature(int.from_bytes(value[:half]), int.from_bytes(value[half:]))
            key.verify(der, data, ec.ECDSA(algorithm))
        else:
            raise WsSecurityRejected("SIG_CRYPTO_CONSTRAINTS_FAILURE", f"{method} does not fit the certificate's key")
    except InvalidSignature:
        raise WsSecurityRejected("SIG_CRYPTO_FAILURE", "the signature value does not verify") from None


def _check_c14n(element: etree._Element) -> None:
    """Exclusive C14N without comments, with at most an InclusiveNamespaces PrefixList."""
    extra = [c for c in element if isinstance(c.tag, str) and c.tag != _INCLUSIVE]
    if element.get("Algorithm") != EXC_C14N or extra or len(element) > 1:
        raise _invalid(f"only exclusive C14N is allowed, not {str(element.get('Algorithm'))[:80]}")


def _prefixes(element: etree._Element) -> tuple[str, ...]:
    inclusive = element.find(_INCLUSIVE)
    return tuple((inclusive.get("PrefixList") or "").split()) if inclusive is not None else ()


def _c14n(element: etree._Element, prefixes: tuple[str, ...] | None = None) -> bytes:
    if prefixes is None:
        method = element.find(f"{{{DS}}}CanonicalizationMethod")
        prefixes = _prefixes(method) if method is not None else ()
    prefix_list = [p for p in prefixes if p != "#default"] or None
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False,
                          inclusive_ns_prefixes=prefix_list)


def _one(parent: etree._Element, tag: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise _invalid(f"{etree.QName(parent).localname} must hold exactly one {etree.QName(tag).localname}")
    return found[0]


def _instant(text: str | None) -> datetime:
    try:
        value = datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise WsSecurityRejected("CLIENT_WSS_TIMESTAMP_INVALID", "Timestamp times must be xsd:dateTime in UTC")
    return value.astimezone(UTC)


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except binascii.Error:
        raise _invalid(f"{what} is not base64") from None


def _invalid(reason: str) -> WsSecurityRejected:
    return WsSecurityRejected("CLIENT_WSS_INVALID", reason)
