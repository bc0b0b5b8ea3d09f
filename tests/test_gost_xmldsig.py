"""GOST XMLDSig through the real verifier: Kalkan's layout, both key generations, every refusal with its code,
and comments that can never cut a value.

The certificates are the test PKI's with a GOST key put in (their own RSA signature no longer matches); their
paths are accepted by a pinned validator standing in for the GOST path validation of the gost-pki branch, so
these tests exercise exactly the signature cryptography and the verifier's rules.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from datetime import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import CanonicalizationMethod

from mocks.pki import Person, TestPki
from mocks.portal.applicant import reader_registration
from signing import gost
from signing.applicant import ApplicantPolicy, check_applicant
from signing.gost import native
from signing.gost.keys import certificate_key, encode_spki, new_public_key, read_spki
from signing.gost.xmldsig import (
    C14N_1_0,
    C14N_1_0_COMMENTS,
    DIGEST_STREEBOG512,
    SIGNATURE_2004,
    SIGNATURE_2015_512,
)
from signing.gost.xmldsig_sign import GostDocumentSigner, GostKeyError, GostSigningKey
from signing.nca import read_identity
from signing.policy import ENVELOPED_TRANSFORM, VerificationPolicy
from signing.report import Indication, SubIndication, ValidationReport
from signing.signer import SigningKey
from signing.trust import TrustedPath, TrustStore, UntrustedCertificateError, fingerprint
from signing.verifier import DS, DocumentVerifier, SignatureRejected
from signing.xmlsafe import parse_untrusted
from tests.der import der_replace_spki

NS = {"ds": DS}
REG = "urn:egov:kazneb:reader-registration:v1"
S, FAILED, INDET = SubIndication, Indication.TOTAL_FAILED, Indication.INDETERMINATE


class PinnedGostPaths:
    """Accepts exactly the certificates it was given (stand-in for the GOST path validator)."""

    def __init__(self, *certificates: x509.Certificate) -> None:
        self._pinned = {fingerprint(c) for c in certificates}

    def validate(self, leaf: x509.Certificate, untrusted: Sequence[x509.Certificate], at: datetime,
                 *, leaf_fingerprint: bytes | None = None) -> TrustedPath:
        if fingerprint(leaf) not in self._pinned:
            raise UntrustedCertificateError("not pinned")
        return TrustedPath((leaf,), leaf.not_valid_before_utc, leaf.not_valid_after_utc)


def gost_key_for(person: Person, curve: gost.Curve) -> GostSigningKey:
    """``person``'s SIGN certificate carrying a fresh GOST key on ``curve``."""
    private = gost.generate_private(curve)
    spki = encode_spki(new_public_key(curve, gost.public_key(curve, private)))
    der = der_replace_spki(person.sign.load_certificate().public_bytes(Encoding.DER), spki)
    return GostSigningKey(private, x509.load_der_x509_certificate(der))


@pytest.fixture(scope="module")
def aigerim(pki: TestPki) -> Person:
    return pki.person("aigerim")


@pytest.fixture(scope="module")
def key512(aigerim: Person) -> GostSigningKey:
    return gost_key_for(aigerim, gost.CURVE_512A)


@pytest.fixture(scope="module")
def key2004(aigerim: Person) -> GostSigningKey:
    return gost_key_for(aigerim, gost.CURVE_CRYPTOPRO_A)


@pytest.fixture(scope="module")
def verifier(pki: TestPki, key512: GostSigningKey, key2004: GostSigningKey) -> DocumentVerifier:
    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    return DocumentVerifier(VerificationPolicy(), trust,
                            gost_paths=PinnedGostPaths(key512.certificate, key2004.certificate))


@pytest.fixture
def signed(aigerim: Person, key512: GostSigningKey) -> etree._Element:
    return GostDocumentSigner(key512).sign(reader_registration(aigerim))


def rejected(verifier: DocumentVerifier, document: etree._Element, code: str, sub: SubIndication,
             indication: Indication) -> ValidationReport:
    with pytest.raises(SignatureRejected) as caught:
        verifier.verify(document)
    report = caught.value.report
    assert (report.error_code, report.sub_indication, report.indication) == (code, sub, indication), report.errors
    return report


def reparsed(document: etree._Element) -> etree._Element:
    """The document as it arrives: serialised and parsed by the gateway's parser."""
    return parse_untrusted(etree.tostring(document))


# ------------------------------------------------------------------------------------------------ passing

@pytest.mark.parametrize("generation", ["2015-512", "2004"])
def test_gost_signature_passes(verifier: DocumentVerifier, aigerim: Person, key512: GostSigningKey,
                               key2004: GostSigningKey, generation: str) -> None:
    key, method = (key512, SIGNATURE_2015_512) if generation == "2015-512" else (key2004, SIGNATURE_2004)
    document = GostDocumentSigner(key).sign(reader_registration(aigerim))
    verified = verifier.verify(reparsed(document))
    assert verified.report.passed
    assert verified.report.signature_algorithm == method
    assert verified.signed.find(f"{{{DS}}}Signature") is None
    assert verified.signed.findtext(f"{{{REG}}}iin") == aigerim.iin
    assert verified.identity.public_key_algorithm == ("gost2015" if generation == "2015-512" else "gost2004")


def test_the_signature_is_laid_out_as_kalkan_lays_it_out(signed: etree._Element, key512: GostSigningKey) -> None:
    info = signed.find("ds:Signature/ds:SignedInfo", NS)
    assert info.find("ds:CanonicalizationMethod", NS).get("Algorithm") == C14N_1_0
    assert info.find("ds:SignatureMethod", NS).get("Algorithm") == SIGNATURE_2015_512
    reference = info.find("ds:Reference", NS)
    assert reference.get("URI") == ""
    assert [t.get("Algorithm") for t in reference.iterfind("ds:Transforms/ds:Transform", NS)] == [
        ENVELOPED_TRANSFORM, C14N_1_0_COMMENTS]
    assert reference.find("ds:DigestMethod", NS).get("Algorithm") == DIGEST_STREEBOG512
    assert len(base64.b64decode(reference.findtext("ds:DigestValue", namespaces=NS))) == 64  # raw hash bytes
    value = base64.b64decode(signed.findtext("ds:Signature/ds:SignatureValue", namespaces=NS))
    assert len(value) == 128  # raw r‖s, not DER


def test_byte_orders_round_trip_through_the_kazakh_encodings(signed: etree._Element, key512: GostSigningKey) -> None:
    """SignatureValue r‖s LE over Streebog-512 (read LE) of the canonical SignedInfo, key X‖Y LE from the SPKI."""
    info = signed.find("ds:Signature/ds:SignedInfo", NS)
    value = base64.b64decode(signed.findtext("ds:Signature/ds:SignatureValue", namespaces=NS))
    h = gost.streebog512(etree.tostring(info, method="c14n"))
    key = certificate_key(key512.certificate)
    assert read_spki(encode_spki(key)) == key
    assert gost.verify(gost.CURVE_512A, key.xy_le, h, value)
    # Any other reading of the orders fails: digest big-endian, s‖r.
    assert not gost.verify(gost.CURVE_512A, key.xy_le, h[::-1], value)
    assert not gost.verify(gost.CURVE_512A, key.xy_le, h, value[64:] + value[:64])
    q = gost.CURVE_512A.q
    r, s = int.from_bytes(value[:64], "little"), int.from_bytes(value[64:], "little")
    assert 0 < r < q and 0 < s < q


# ------------------------------------------------------------------------------------------------ refused

def test_changed_content_is_a_hash_failure(verifier: DocumentVerifier, signed: etree._Element) -> None:
    signed.find(f"{{{REG}}}email").text = "someone@else.kz"
    rejected(verifier, signed, "SIG_HASH_FAILURE", S.HASH_FAILURE, FAILED)


def test_changed_signature_value_is_a_crypto_failure(verifier: DocumentVerifier, signed: etree._Element) -> None:
    element = signed.find("ds:Signature/ds:SignatureValue", NS)
    raw = bytearray(base64.b64decode(element.text))
    raw[10] ^= 0x40
    element.text = base64.b64encode(bytes(raw)).decode()
    rejected(verifier, signed, "SIG_CRYPTO_FAILURE", S.SIG_CRYPTO_FAILURE, FAILED)


def test_signature_by_another_key_is_a_crypto_failure(verifier: DocumentVerifier, aigerim: Person,
                                                      key512: GostSigningKey) -> None:
    other = gost_key_for(aigerim, gost.CURVE_512A)
    document = GostDocumentSigner(other).sign(reader_registration(aigerim))
    certificate = document.find("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
    certificate.text = base64.b64encode(key512.certificate.public_bytes(Encoding.DER)).decode()
    rejected(verifier, document, "SIG_CRYPTO_FAILURE", S.SIG_CRYPTO_FAILURE, FAILED)


def test_method_that_does_not_fit_the_key_is_refused(verifier: DocumentVerifier, aigerim: Person,
                                                     key2004: GostSigningKey) -> None:
    document = GostDocumentSigner(key2004).sign(reader_registration(aigerim))
    document.find("ds:Signature/ds:SignedInfo/ds:SignatureMethod", NS).set("Algorithm", SIGNATURE_2015_512)
    report = rejected(verifier, document, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)
    assert "does not fit the certificate's key" in report.errors[0]


def test_rsa_method_with_a_gost_key_is_refused(verifier: DocumentVerifier, signed: etree._Element) -> None:
    signed.find("ds:Signature/ds:SignedInfo/ds:SignatureMethod", NS).set(
        "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_key_value_beside_the_certificate_is_refused(verifier: DocumentVerifier, signed: etree._Element) -> None:
    key_info = signed.find("ds:Signature/ds:KeyInfo", NS)
    etree.SubElement(key_info, f"{{{DS}}}KeyValue").text = "AAAA"
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_hardening_rules_hold_for_gost(verifier: DocumentVerifier, signed: etree._Element) -> None:
    """One signature, one whole-document reference, no wrapping: the verifier's rules before any GOST code."""
    twice = reparsed(signed)
    twice.append(reparsed(signed).find("ds:Signature", NS))
    rejected(verifier, twice, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)
    partial = reparsed(signed)
    partial.find(f"{{{REG}}}email").set("Id", "e")
    partial.find("ds:Signature/ds:SignedInfo/ds:Reference", NS).set("URI", "#e")
    rejected(verifier, partial, "SIG_CONSTRAINTS_FAILURE", S.SIG_CONSTRAINTS_FAILURE, INDET)


def test_two_end_entity_certificates_are_refused(verifier: DocumentVerifier, signed: etree._Element,
                                                 key2004: GostSigningKey) -> None:
    data = signed.find("ds:Signature/ds:KeyInfo/ds:X509Data", NS)
    etree.SubElement(data, f"{{{DS}}}X509Certificate").text = base64.b64encode(
        key2004.certificate.public_bytes(Encoding.DER)).decode()
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_unpinned_gost_certificate_has_no_path(verifier: DocumentVerifier, aigerim: Person) -> None:
    document = GostDocumentSigner(gost_key_for(aigerim, gost.CURVE_512A)).sign(reader_registration(aigerim))
    rejected(verifier, document, "SIG_NO_CERTIFICATE_CHAIN_FOUND", S.NO_CERTIFICATE_CHAIN_FOUND, INDET)


def test_without_a_gost_path_validator_a_valid_gost_signature_is_indeterminate(
        pki: TestPki, signed: etree._Element) -> None:
    plain = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(pki.trust_anchors, pki.intermediates))
    report = rejected(plain, signed, "SIG_GOST_PATH_UNAVAILABLE", S.NO_CERTIFICATE_CHAIN_FOUND, INDET)
    assert "no GOST path validator" in report.errors[0]


@pytest.fixture
def without_gost_library(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(native.PROVIDER_ENV, "/nonexistent/gostprov.so")
    native.reset()
    yield
    monkeypatch.undo()
    native.reset()


def test_missing_gost_library_is_indeterminate_with_its_own_code(verifier: DocumentVerifier,
                                                                 signed: etree._Element,
                                                                 without_gost_library: None) -> None:
    assert not gost.available()
    report = rejected(verifier, signed, "SIG_GOST_UNAVAILABLE", S.CRYPTO_CONSTRAINTS_FAILURE, INDET)
    assert "libengine-gost-openssl" in report.errors[0]


def test_a_private_key_must_match_its_certificate(key512: GostSigningKey, key2004: GostSigningKey) -> None:
    with pytest.raises(GostKeyError):
        GostDocumentSigner(GostSigningKey(key2004.private_scalar, key512.certificate))
    assert str(key512.private_scalar) not in repr(key512)


# ------------------------------------------------------------------------------------------------ comments

def _registration_with_comment_in_iin(person: Person) -> etree._Element:
    document = reader_registration(person)
    iin = document.find(f"{{{REG}}}iin")
    iin.text = person.iin[:4]
    comment = etree.Comment(" x ")
    comment.tail = person.iin[4:]
    iin.append(comment)
    return document


def _read_iin(verified_signed: etree._Element, person: Person) -> str:
    identity = read_identity(person.sign.load_certificate())
    applicant = check_applicant(ApplicantPolicy(), verified_signed, identity)
    assert verified_signed.findtext(f"{{{REG}}}iin") == applicant.iin
    return applicant.iin


def test_a_signed_comment_inside_the_iin_never_cuts_it(verifier: DocumentVerifier, aigerim: Person,
                                                       key512: GostSigningKey) -> None:
    document = GostDocumentSigner(key512).sign(_registration_with_comment_in_iin(aigerim))
    arrived = reparsed(document)
    assert arrived.findtext(f"{{{REG}}}iin") == aigerim.iin[:4], "a naive reader of the raw document is cut"
    verified = verifier.verify(arrived)
    assert _read_iin(verified.signed, aigerim) == aigerim.iin
    assert not verified.signed.xpath("//comment()")


def test_a_comment_added_after_signing_never_reaches_the_application(verifier: DocumentVerifier,
                                                                     signed: etree._Element,
                                                                     aigerim: Person) -> None:
    """The truncation attack: the comment is not in the bytes whose digest matched, so it is not in the result."""
    iin = signed.find(f"{{{REG}}}iin")
    comment = etree.Comment("cut")
    comment.tail = iin.text[4:]
    iin.text = iin.text[:4]
    iin.append(comment)
    verified = verifier.verify(reparsed(signed))
    assert _read_iin(verified.signed, aigerim) == aigerim.iin


def test_rsa_with_comments_c14n_is_accepted_and_comments_never_cut(pki: TestPki, aigerim: Person) -> None:
    key = SigningKey.from_pem(aigerim.sign.cert, aigerim.sign.key)
    signer = XMLSigner(c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0_WITH_COMMENTS)
    document = signer.sign(_registration_with_comment_in_iin(aigerim), key=key.private_key,
                           cert=[key.certificate])
    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    verifier = DocumentVerifier(VerificationPolicy(), trust)
    verified = verifier.verify(reparsed(document))
    assert _read_iin(verified.signed, aigerim) == aigerim.iin
    # signxml digests the comments literally: one inserted later breaks the digest.
    tampered = reparsed(document)
    tampered.find(f"{{{REG}}}email").append(etree.Comment("late"))
    rejected(verifier, tampered, "SIG_HASH_FAILURE", S.HASH_FAILURE, FAILED)
