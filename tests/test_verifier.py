"""DocumentVerifier: the enveloped-signature rules and the attacks listed in docs/validation.md, one test each.

Every rejection asserts the exact (error_code, sub_indication, indication) triple of the report, and
that the rejection carries none of the business document (only the report travels).
"""

from __future__ import annotations

import base64
import copy
import datetime
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import CanonicalizationMethod

from mocks.pki import Person, TestPki
from mocks.portal.applicant import reader_registration, signer_for
from signing.backends import SignxmlBackend
from signing.policy import VerificationPolicy
from signing.report import Indication, SubIndication, ValidationReport
from signing.signer import DocumentSigner, SigningKey
from signing.trust import TrustStore, fingerprint
from signing.verifier import DS, DocumentVerifier, SignatureRejected
from signing.xmlsafe import UnsafeXmlError, parse_untrusted
from tests.der import der_replace_oid

NS = {"ds": DS}
REG = "urn:egov:kazneb:reader-registration:v1"
EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"

FAILED, INDET = Indication.TOTAL_FAILED, Indication.INDETERMINATE
S = SubIndication


# --------------------------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def trust(pki: TestPki) -> TrustStore:
    return TrustStore.from_files(pki.trust_anchors, pki.intermediates)


@pytest.fixture(scope="module")
def verifier(trust: TrustStore) -> DocumentVerifier:
    return DocumentVerifier(VerificationPolicy(), trust)


@pytest.fixture(scope="module")
def aigerim(pki: TestPki) -> Person:
    return pki.person("aigerim")


@pytest.fixture(scope="module")
def aigerim_signer(aigerim: Person) -> DocumentSigner:
    return signer_for(aigerim)


@pytest.fixture(scope="module")
def aigerim_key(aigerim: Person) -> SigningKey:
    return SigningKey.from_pem(aigerim.sign.cert, aigerim.sign.key)


@pytest.fixture
def signed(aigerim: Person, aigerim_signer: DocumentSigner) -> etree._Element:
    """A fresh, valid signed application by aigerim (tests may mutate it)."""
    return aigerim_signer.sign(reader_registration(aigerim))


def rejected(verifier: DocumentVerifier, document: etree._Element, code: str, sub: SubIndication,
             indication: Indication) -> ValidationReport:
    """Assert ``document`` is refused with exactly this triple; return the report."""
    email = document.findtext(f"{{{REG}}}email")
    result = None
    with pytest.raises(SignatureRejected) as caught:
        result = verifier.verify(document)
    assert result is None  # nothing was returned to the caller
    report = caught.value.report
    assert (report.error_code, report.sub_indication, report.indication) == (code, sub, indication), report.errors
    assert report.indication is not Indication.TOTAL_PASSED and not report.passed
    assert report.errors and all(isinstance(e, str) and e for e in report.errors)
    if email:  # the business data never travels with a rejection
        assert email not in repr(report.to_dict()) and email not in str(caught.value)
    return report


def raw_sign(key: SigningKey, document: etree._Element, signer: XMLSigner | None = None,
             **kwargs: object) -> etree._Element:
    signer = signer or XMLSigner(c14n_algorithm=EXC_C14N)
    return signer.sign(document, key=key.private_key, cert=[key.certificate], **kwargs)


def signature_of(document: etree._Element) -> etree._Element:
    return document.find("ds:Signature", NS)


def add_transform(document: etree._Element, algorithm: str, xpath: str | None = None) -> None:
    transforms = document.find("ds:Signature/ds:SignedInfo/ds:Reference/ds:Transforms", NS)
    transform = etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=algorithm)
    if xpath is not None:
        etree.SubElement(transform, f"{{{DS}}}XPath").text = xpath


def rsa_key_value(numbers: rsa.RSAPublicNumbers) -> etree._Element:
    def b64(value: int) -> str:
        return base64.b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).decode()

    key_value = etree.Element(f"{{{DS}}}KeyValue")
    rsa_value = etree.SubElement(key_value, f"{{{DS}}}RSAKeyValue")
    etree.SubElement(rsa_value, f"{{{DS}}}Modulus").text = b64(numbers.n)
    etree.SubElement(rsa_value, f"{{{DS}}}Exponent").text = b64(numbers.e)
    return key_value


def c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n")


class _Sha1Signer(XMLSigner):
    """signxml refuses to *produce* SHA-1 signatures; an attacker's tool would not."""

    def check_deprecated_methods(self) -> None:
        pass


# ---------------------------------------------------------------------------------------- the valid case

def test_valid_signature_passes_with_full_report(
    verifier: DocumentVerifier, signed: etree._Element, aigerim: Person, pki: TestPki
) -> None:
    before = c14n(signed)
    result = verifier.verify(signed)
    report = result.report
    assert report.indication is Indication.TOTAL_PASSED and report.passed
    assert report.sub_indication is None and report.error_code is None and report.errors == ()
    # only the business document comes back: no signature, same root, same content as signed
    assert result.signed.find(f".//{{{DS}}}Signature") is None
    assert result.signed.tag == f"{{{REG}}}ReaderRegistration"
    assert result.signed.findtext(f"{{{REG}}}iin") == aigerim.iin
    assert c14n(signed) == before  # the input was not modified
    assert report.signer is not None and report.signer.iin == aigerim.iin and result.identity.iin == aigerim.iin
    assert report.signer.key_purpose == "sign"
    leaf = aigerim.sign.load_certificate()
    nca = pki.authorities["nca"].load_certificate()
    root = pki.authorities["root"].load_certificate()
    assert [c.sha256 for c in report.chain] == [fingerprint(c).hex() for c in (leaf, nca, root)]
    assert report.chain[1].subject == nca.subject.rfc4514_string()
    assert report.chain[2].subject == report.chain[2].issuer == root.subject.rfc4514_string()
    assert report.signature_algorithm == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert report.digest_algorithm == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert report.revocation is not None and report.revocation.status == "not_checked"
    assert any("revocation" in w and "not checked" in w for w in report.warnings)
    assert aigerim.iin not in report.log_summary()


def test_valid_signature_with_intermediate_in_keyinfo_passes(
    verifier: DocumentVerifier, aigerim: Person, aigerim_key: SigningKey, pki: TestPki
) -> None:
    nca = pki.authorities["nca"].load_certificate()
    signer = DocumentSigner(SigningKey(aigerim_key.private_key, aigerim_key.certificate, (nca,)))
    document = signer.sign(reader_registration(aigerim))
    assert len(document.findall(".//ds:X509Certificate", NS)) == 2
    assert verifier.verify(document).report.passed


def test_reference_to_root_by_id_passes(
    verifier: DocumentVerifier, aigerim: Person, aigerim_key: SigningKey
) -> None:
    document = reader_registration(aigerim)
    document.set("Id", "application")
    assert verifier.verify(raw_sign(aigerim_key, document, reference_uri="#application")).report.passed


# --------------------------------------------------------------------------------- integrity and crypto

def test_text_changed_after_signing(verifier: DocumentVerifier, signed: etree._Element) -> None:
    signed.find(f"{{{REG}}}email").text = "attacker@example.kz"
    rejected(verifier, signed, "SIG_HASH_FAILURE", S.HASH_FAILURE, FAILED)


def test_signature_value_altered(verifier: DocumentVerifier, signed: etree._Element) -> None:
    value = signed.find("ds:Signature/ds:SignatureValue", NS)
    raw = bytearray(base64.b64decode(value.text))
    raw[len(raw) // 2] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    rejected(verifier, signed, "SIG_CRYPTO_FAILURE", S.SIG_CRYPTO_FAILURE, FAILED)


def test_signature_of_another_document_moved_here(
    verifier: DocumentVerifier, signed: etree._Element, aigerim: Person, aigerim_signer: DocumentSigner,
    pki: TestPki
) -> None:
    other = aigerim_signer.sign(reader_registration(pki.person("daniyar")))
    assert verifier.verify(copy.deepcopy(other)).report.passed  # it is a good signature where it was
    signed.remove(signature_of(signed))
    signed.append(signature_of(other))
    rejected(verifier, signed, "SIG_HASH_FAILURE", S.HASH_FAILURE, FAILED)


# ---------------------------------------------------------------------------------- signature placement

def test_no_signature(verifier: DocumentVerifier, signed: etree._Element) -> None:
    signed.remove(signature_of(signed))
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_empty_signature_element(verifier: DocumentVerifier, signed: etree._Element) -> None:
    signature = signature_of(signed)
    for child in list(signature):
        signature.remove(child)
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_two_signature_elements(verifier: DocumentVerifier, signed: etree._Element) -> None:
    signed.append(copy.deepcopy(signature_of(signed)))
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_second_signature_hidden_deeper(verifier: DocumentVerifier, signed: etree._Element) -> None:
    signed.find(f"{{{REG}}}phone").append(copy.deepcopy(signature_of(signed)))
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_signature_nested_below_root(verifier: DocumentVerifier, signed: etree._Element) -> None:
    signed.find(f"{{{REG}}}email").append(signature_of(signed))
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_signature_as_root_enveloping(verifier: DocumentVerifier, signed: etree._Element) -> None:
    signature = copy.deepcopy(signature_of(signed))
    rejected(verifier, signature, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


# ------------------------------------------------------------------------------------------- references

def test_two_references(verifier: DocumentVerifier, aigerim: Person, aigerim_key: SigningKey) -> None:
    document = reader_registration(aigerim)
    document.set("Id", "application")
    document.find(f"{{{REG}}}email").set("Id", "mail")
    signed = raw_sign(aigerim_key, document, reference_uri=["#application", "#mail"])
    assert len(signed.findall("ds:Signature/ds:SignedInfo/ds:Reference", NS)) == 2
    rejected(verifier, signed, "SIG_CONSTRAINTS_FAILURE", S.SIG_CONSTRAINTS_FAILURE, INDET)


def test_reference_to_child_element(verifier: DocumentVerifier, aigerim: Person, aigerim_key: SigningKey) -> None:
    document = reader_registration(aigerim)
    document.find(f"{{{REG}}}iin").set("Id", "iin")
    signed = raw_sign(aigerim_key, document, reference_uri="#iin")
    signed.find(f"{{{REG}}}email").text = "unsigned@example.kz"  # outside what the reference covers
    rejected(verifier, signed, "SIG_CONSTRAINTS_FAILURE", S.SIG_CONSTRAINTS_FAILURE, INDET)


def test_reference_to_duplicate_id(verifier: DocumentVerifier, aigerim: Person, aigerim_key: SigningKey) -> None:
    document = reader_registration(aigerim)
    document.set("Id", "x")
    signed = raw_sign(aigerim_key, document, reference_uri="#x")
    signed.find(f"{{{REG}}}phone").set("Id", "x")
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_reference_id_shadowed_by_namespaced_id(
    verifier: DocumentVerifier, aigerim: Person, aigerim_key: SigningKey
) -> None:
    """signxml resolves ``#doc`` by the attribute's local name in any namespace: the root's ``id`` and
    an inner element's ``evil:Id`` are the same Id to it, so the reference covers only the inner one."""
    outer = reader_registration(aigerim)
    outer.set("id", "doc")
    inner = reader_registration(aigerim)
    inner.set("{urn:evil}Id", "doc")
    outer.append(inner)
    signed = raw_sign(aigerim_key, outer, reference_uri="#doc")
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


@pytest.mark.parametrize("uri", ["http://evil.example/application.xml", "#xpointer(/)", "#xpointer(id('x'))"])
def test_reference_outside_document(verifier: DocumentVerifier, signed: etree._Element, uri: str) -> None:
    signed.find("ds:Signature/ds:SignedInfo/ds:Reference", NS).set("URI", uri)
    rejected(verifier, signed, "SIG_SIGNED_DATA_NOT_FOUND", S.SIGNED_DATA_NOT_FOUND, INDET)


# ------------------------------------------------------------------------------------ signature wrapping

def test_wrapping_signed_document_under_wrapper(
    verifier: DocumentVerifier, signed: etree._Element, pki: TestPki
) -> None:
    """Aigerim's signed application moved under a wrapper; Daniyar's unsigned one is what an application
    reading the root would see."""
    forged = reader_registration(pki.person("daniyar"))
    wrapper = etree.SubElement(forged, "{urn:evil}Wrapper")
    wrapper.append(signed)
    rejected(verifier, forged, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_wrapping_signature_moved_to_new_root(
    verifier: DocumentVerifier, signed: etree._Element, pki: TestPki
) -> None:
    forged = reader_registration(pki.person("daniyar"))
    forged.append(signature_of(signed))
    wrapper = etree.SubElement(forged, "{urn:evil}Wrapper")
    wrapper.append(signed)  # the original signed content, now without its signature
    rejected(verifier, forged, "SIG_HASH_FAILURE", S.HASH_FAILURE, FAILED)


def test_wrapping_by_id_reference(
    verifier: DocumentVerifier, aigerim: Person, aigerim_key: SigningKey, pki: TestPki
) -> None:
    """Classic XSW: signed by Id; the Id-bearing signed element moves into a wrapper, the root is replaced."""
    document = reader_registration(aigerim)
    document.set("Id", "application")
    signed = raw_sign(aigerim_key, document, reference_uri="#application")
    forged = reader_registration(pki.person("daniyar"))
    forged.append(signature_of(signed))
    etree.SubElement(forged, "{urn:evil}Wrapper").append(signed)
    rejected(verifier, forged, "SIG_CONSTRAINTS_FAILURE", S.SIG_CONSTRAINTS_FAILURE, INDET)


# ----------------------------------------------------------------------------------- comment truncation

def test_comment_split_value_is_returned_whole(
    verifier: DocumentVerifier, aigerim: Person, aigerim_signer: DocumentSigner
) -> None:
    document = reader_registration(aigerim)
    iin = document.find(f"{{{REG}}}iin")
    iin.text = aigerim.iin[:4]
    comment = etree.Comment("")
    iin.append(comment)
    comment.tail = aigerim.iin[4:]
    assert iin.text == aigerim.iin[:4]  # what a naive reader of the input would see
    result = verifier.verify(aigerim_signer.sign(document))
    returned = result.signed.find(f"{{{REG}}}iin")
    assert "".join(returned.itertext()) == aigerim.iin
    assert returned.text == aigerim.iin  # one text node: no truncation possible
    assert not list(result.signed.iter(etree.Comment))


def test_comment_inserted_after_signing_verifies_but_is_dropped(
    verifier: DocumentVerifier, signed: etree._Element, aigerim: Person
) -> None:
    iin = signed.find(f"{{{REG}}}iin")
    iin.text = aigerim.iin[:4]
    comment = etree.Comment("x")
    iin.append(comment)
    comment.tail = aigerim.iin[4:]
    result = verifier.verify(signed)  # C14N without comments: the digest is unchanged
    assert result.report.passed
    assert not list(result.signed.iter(etree.Comment))
    assert result.signed.find(f"{{{REG}}}iin").text == aigerim.iin


# ------------------------------------------------------------------------------------------- algorithms

@pytest.mark.parametrize(("method", "digest"), [("rsa-sha1", "sha1"), ("rsa-sha256", "sha1"), ("rsa-sha1", "sha256")])
def test_sha1_downgrade(verifier: DocumentVerifier, aigerim: Person, aigerim_key: SigningKey,
                        method: str, digest: str) -> None:
    signer = _Sha1Signer(signature_algorithm=method, digest_algorithm=digest, c14n_algorithm=EXC_C14N)
    signed = raw_sign(aigerim_key, reader_registration(aigerim), signer)
    rejected(verifier, signed, "SIG_CRYPTO_CONSTRAINTS_FAILURE", S.CRYPTO_CONSTRAINTS_FAILURE, INDET)


def test_hmac_signature_with_certificate(
    verifier: DocumentVerifier, aigerim: Person, signed: etree._Element
) -> None:
    hmac_signer = XMLSigner(signature_algorithm="hmac-sha256", c14n_algorithm=EXC_C14N)
    forged = hmac_signer.sign(reader_registration(aigerim), key=b"shared secret the attacker chose")
    signature_of(forged).append(copy.deepcopy(signed.find("ds:Signature/ds:KeyInfo", NS)))
    rejected(verifier, forged, "SIG_CRYPTO_CONSTRAINTS_FAILURE", S.CRYPTO_CONSTRAINTS_FAILURE, INDET)


def test_hmac_signature_alone(verifier: DocumentVerifier, aigerim: Person) -> None:
    hmac_signer = XMLSigner(signature_algorithm="hmac-sha256", c14n_algorithm=EXC_C14N)
    forged = hmac_signer.sign(reader_registration(aigerim), key=b"secret")
    rejected(verifier, forged, "SIG_NO_SIGNING_CERTIFICATE_FOUND", S.NO_SIGNING_CERTIFICATE_FOUND, INDET)


@pytest.mark.parametrize(("algorithm", "xpath"), [
    (XSLT, None),
    (XPATH, "not(ancestor-or-self::ds:Signature)"),
    (XPATH_FILTER2, None),
])
def test_forbidden_transform(verifier: DocumentVerifier, signed: etree._Element, algorithm: str,
                             xpath: str | None) -> None:
    add_transform(signed, algorithm, xpath)
    rejected(verifier, signed, "SIG_CONSTRAINTS_FAILURE", S.SIG_CONSTRAINTS_FAILURE, INDET)


def test_allowed_transform_with_parameters(verifier: DocumentVerifier, signed: etree._Element) -> None:
    transform = signed.find("ds:Signature/ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform", NS)
    etree.SubElement(transform, f"{{{DS}}}XPath").text = "self::node()"
    rejected(verifier, signed, "SIG_CONSTRAINTS_FAILURE", S.SIG_CONSTRAINTS_FAILURE, INDET)


# ---------------------------------------------------------------------------------------------- KeyInfo

def test_key_value_not_matching_certificate(
    verifier: DocumentVerifier, signed: etree._Element, pki: TestPki
) -> None:
    other = pki.person("daniyar").sign.load_certificate().public_key().public_numbers()
    signed.find("ds:Signature/ds:KeyInfo", NS).insert(0, rsa_key_value(other))
    report = rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)
    assert any("KeyValue" in e for e in report.errors)


def test_key_value_matching_certificate_is_harmless(
    verifier: DocumentVerifier, signed: etree._Element, aigerim_key: SigningKey
) -> None:
    own = aigerim_key.certificate.public_key().public_numbers()
    signed.find("ds:Signature/ds:KeyInfo", NS).append(rsa_key_value(own))
    assert verifier.verify(signed).report.passed


def test_attacker_key_with_victims_certificate(
    verifier: DocumentVerifier, aigerim: Person, pki: TestPki
) -> None:
    """Daniyar signs with his own key but presents Aigerim's certificate (and his KeyValue)."""
    daniyar = pki.person("daniyar")
    attacker_key = daniyar.sign.load_private_key()
    forged = XMLSigner(c14n_algorithm=EXC_C14N).sign(
        reader_registration(aigerim), key=attacker_key, cert=[aigerim.sign.load_certificate()],
        always_add_key_value=True)
    rejected(verifier, forged, "SIG_CRYPTO_FAILURE", S.SIG_CRYPTO_FAILURE, FAILED)


def test_certificate_from_foreign_ca(verifier: DocumentVerifier, pki: TestPki) -> None:
    stranger = pki.person("stranger")
    signed = signer_for(stranger).sign(reader_registration(stranger))
    report = rejected(verifier, signed, "SIG_NO_CERTIFICATE_CHAIN_FOUND", S.NO_CERTIFICATE_CHAIN_FOUND, INDET)
    assert report.chain == ()
    for text in (*report.errors, str(SignatureRejected(report))):
        assert stranger.iin not in text
        assert not any(len(run) == 12 for run in _digit_runs(text)), text


def test_forged_certificate_naming_the_trusted_ca(
    verifier: DocumentVerifier, aigerim: Person, pki: TestPki
) -> None:
    """A certificate with Aigerim's subject and the NCA's name as issuer, signed by the foreign CA's key."""
    genuine = aigerim.sign.load_certificate()
    nca = pki.authorities["nca"].load_certificate()
    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(nca.subject)
        .public_key(forged_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
    )
    for extension in genuine.extensions:
        if not isinstance(extension.value, x509.AuthorityKeyIdentifier | x509.SubjectKeyIdentifier):
            builder = builder.add_extension(extension.value, extension.critical)
    forged_cert = builder.sign(pki.authorities["foreign-ca"].load_private_key(), hashes.SHA256())
    signed = DocumentSigner(SigningKey(forged_key, forged_cert)).sign(reader_registration(aigerim))
    rejected(verifier, signed, "SIG_NO_CERTIFICATE_CHAIN_FOUND", S.NO_CERTIFICATE_CHAIN_FOUND, INDET)


def _digit_runs(text: str) -> list[str]:
    runs, current = [], ""
    for char in text + " ":
        if char.isdigit():
            current += char
        else:
            if current:
                runs.append(current)
            current = ""
    return runs


def test_expired_certificate(verifier: DocumentVerifier, pki: TestPki) -> None:
    person = pki.person("expired")
    signed = signer_for(person).sign(reader_registration(person))
    rejected(verifier, signed, "SIG_EXPIRED", S.OUT_OF_BOUNDS_NO_POE, INDET)


def test_not_yet_valid_certificate(verifier: DocumentVerifier, pki: TestPki) -> None:
    person = pki.person("future")
    signed = signer_for(person).sign(reader_registration(person))
    rejected(verifier, signed, "SIG_NOT_YET_VALID", S.NOT_YET_VALID, FAILED)


def test_auth_key_is_not_a_signing_key(verifier: DocumentVerifier, aigerim: Person) -> None:
    signed = signer_for(aigerim, key="auth").sign(reader_registration(aigerim))
    report = rejected(verifier, signed, "SIG_NOT_SIGNING_KEY", S.CHAIN_CONSTRAINTS_FAILURE, INDET)
    assert report.signer is not None and report.signer.key_purpose == "auth"


def test_second_end_entity_certificate(verifier: DocumentVerifier, signed: etree._Element, pki: TestPki) -> None:
    cert = pki.person("daniyar").sign.load_certificate()
    element = etree.SubElement(signed.find("ds:Signature/ds:KeyInfo/ds:X509Data", NS), f"{{{DS}}}X509Certificate")
    element.text = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


@pytest.mark.parametrize("text", ["!!not base64!!", base64.b64encode(b"not a certificate").decode(), ""])
def test_undecodable_certificate(verifier: DocumentVerifier, signed: etree._Element, text: str) -> None:
    signed.find("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS).text = text
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_too_many_certificates(verifier: DocumentVerifier, signed: etree._Element, pki: TestPki) -> None:
    x509_data = signed.find("ds:Signature/ds:KeyInfo/ds:X509Data", NS)
    leaf = x509_data.find("ds:X509Certificate", NS)
    for _ in range(VerificationPolicy().max_certificates):
        x509_data.append(copy.deepcopy(leaf))
    rejected(verifier, signed, "SIG_FORMAT_FAILURE", S.FORMAT_FAILURE, FAILED)


def test_no_x509_data(verifier: DocumentVerifier, signed: etree._Element) -> None:
    key_info = signed.find("ds:Signature/ds:KeyInfo", NS)
    key_info.remove(key_info.find("ds:X509Data", NS))
    rejected(verifier, signed, "SIG_NO_SIGNING_CERTIFICATE_FOUND", S.NO_SIGNING_CERTIFICATE_FOUND, INDET)


def test_no_x509_data_but_key_value(verifier: DocumentVerifier, signed: etree._Element,
                                    aigerim_key: SigningKey) -> None:
    key_info = signed.find("ds:Signature/ds:KeyInfo", NS)
    key_info.remove(key_info.find("ds:X509Data", NS))
    key_info.append(rsa_key_value(aigerim_key.certificate.public_key().public_numbers()))
    rejected(verifier, signed, "SIG_NO_SIGNING_CERTIFICATE_FOUND", S.NO_SIGNING_CERTIFICATE_FOUND, INDET)


# ------------------------------------------------------------------------------------------- clock skew

def _at(moment: datetime.datetime, trust: TrustStore) -> DocumentVerifier:
    return DocumentVerifier(VerificationPolicy(), trust, clock=lambda: moment)


def test_clock_skew_after_not_after(trust: TrustStore, signed: etree._Element, aigerim: Person) -> None:
    not_after = aigerim.sign.load_certificate().not_valid_after_utc
    skew = VerificationPolicy().clock_skew
    assert _at(not_after + skew - timedelta(seconds=30), trust).verify(copy.deepcopy(signed)).report.passed
    rejected(_at(not_after + skew + timedelta(seconds=30), trust), signed, "SIG_EXPIRED", S.OUT_OF_BOUNDS_NO_POE, INDET)


def test_clock_skew_before_not_before(trust: TrustStore, signed: etree._Element, aigerim: Person) -> None:
    not_before = aigerim.sign.load_certificate().not_valid_before_utc
    skew = VerificationPolicy().clock_skew
    assert _at(not_before - skew + timedelta(seconds=30), trust).verify(copy.deepcopy(signed)).report.passed
    rejected(_at(not_before - skew - timedelta(seconds=30), trust), signed, "SIG_NOT_YET_VALID",
             S.NOT_YET_VALID, FAILED)


# ------------------------------------------------------------------------------------------ trust cache

def test_trust_cache_never_remembers_a_failed_chain(pki: TestPki) -> None:
    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    verifier = DocumentVerifier(VerificationPolicy(), trust)
    stranger = pki.person("stranger")
    signer = signer_for(stranger)
    for _ in range(2):
        rejected(verifier, signer.sign(reader_registration(stranger)), "SIG_NO_CERTIFICATE_CHAIN_FOUND",
                 S.NO_CERTIFICATE_CHAIN_FOUND, INDET)
        assert len(trust._cache) == 0


def test_trust_cache_reuses_a_good_path(pki: TestPki, aigerim: Person, aigerim_signer: DocumentSigner) -> None:
    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    verifier = DocumentVerifier(VerificationPolicy(), trust)
    verifier.verify(aigerim_signer.sign(reader_registration(aigerim)))
    assert len(trust._cache) == 1
    key = fingerprint(aigerim.sign.load_certificate())
    first = trust._cache[key]
    verifier.verify(aigerim_signer.sign(reader_registration(aigerim)))
    assert len(trust._cache) == 1
    assert trust._cache[key] is first  # served from the cache, not rebuilt


# ------------------------------------------------------------------------------------ property: bit rot

@pytest.fixture(scope="module")
def signed_bytes(aigerim: Person, aigerim_signer: DocumentSigner) -> tuple[bytes, int, int, bytes]:
    data = etree.tostring(aigerim_signer.sign(reader_registration(aigerim)), encoding="UTF-8")
    start = data.index(b">", data.index(b"<ReaderRegistration")) + 1
    end = data.index(b"<ds:Signature")
    return data, start, end, c14n(etree.fromstring(data))


@settings(max_examples=60, deadline=None)
@given(position=st.floats(min_value=0, max_value=1, exclude_max=True), mask=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_in_business_data_is_caught(
    verifier: DocumentVerifier, signed_bytes: tuple[bytes, int, int, bytes], position: float, mask: int
) -> None:
    data, start, end, _ = signed_bytes
    index = start + int(position * (end - start))
    flipped = bytearray(data)
    flipped[index] ^= mask
    try:
        document = parse_untrusted(bytes(flipped))
    except UnsafeXmlError:
        return
    try:
        result = verifier.verify(document)
    except SignatureRejected as rejection:
        assert rejection.report.indication is not Indication.TOTAL_PASSED
        return
    original = verifier.verify(parse_untrusted(data)).signed
    assert c14n(result.signed) == c14n(original), f"byte {index} ^ {mask:#x} changed the content yet passed"


def test_signed_bytes_fixture_is_valid(verifier: DocumentVerifier, signed_bytes: tuple[bytes, int, int, bytes]) -> None:
    data, start, end, _ = signed_bytes
    assert 0 < start < end
    assert verifier.verify(parse_untrusted(data)).report.passed


# ------------------------------------------------------------------------------- GOST, backends, several roots
GOST_SIGNATURE_METHOD = "http://www.w3.org/2001/04/xmldsig-more#gost34310-gost34311"


@pytest.mark.parametrize("key_oid", ["1.2.398.3.10.1.1.1.1", "1.2.398.3.10.1.1.2.3.1"])
def test_gost_signature_is_indeterminate_never_passed(verifier: DocumentVerifier, signed: etree._Element,
                                                      aigerim: Person, key_oid: str) -> None:
    """Without a GOST path validator a GOST signer's path cannot be checked: INDETERMINATE with the reason."""
    der = aigerim.sign.load_certificate().public_bytes(Encoding.DER)
    gost_cert = der_replace_oid(der, "1.2.840.113549.1.1.1", key_oid)
    signed.find(f".//{{{DS}}}X509Certificate").text = base64.b64encode(gost_cert).decode()
    signed.find(f".//{{{DS}}}SignatureMethod").set("Algorithm", GOST_SIGNATURE_METHOD)
    report = rejected(verifier, signed, "SIG_GOST_PATH_UNAVAILABLE", SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                      Indication.INDETERMINATE)
    assert "GOST certificate paths cannot be validated here yet" in report.errors[0]


def test_backends_are_pluggable(pki: TestPki, signed: etree._Element) -> None:
    """A backend chosen by key algorithm does the cryptography; the verifier's checks stay the same."""
    used: list[str] = []

    class CountingBackend(SignxmlBackend):
        name = "counting"

        def verify(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            used.append(self.name)
            return super().verify(*args, **kwargs)

    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    verifier = DocumentVerifier(VerificationPolicy(), trust, backends=[CountingBackend(VerificationPolicy())])
    assert verifier.verify(signed).report.passed
    assert used == ["counting"]


def test_several_trust_anchors(pki: TestPki) -> None:
    """Two hierarchies trusted at once (as an RSA and a GOST root would be): both signers pass."""
    stranger, aigerim = pki.person("stranger"), pki.person("aigerim")
    trust = TrustStore.from_files(
        [pki.trust_anchors[0], pki.authorities["foreign-root"].cert],
        [pki.intermediates[0], pki.authorities["foreign-ca"].cert],
    )
    verifier = DocumentVerifier(VerificationPolicy(), trust)
    for person in (stranger, aigerim):
        document = signer_for(person).sign(reader_registration(person))
        assert verifier.verify(document).report.passed
