"""The lean RSA check in front of signxml (signing/backends.py, ``SignxmlBackend._lean``): it passes exactly what
signxml passes for the common shape, returns the same signed data, and leaves every other signature to signxml."""

from __future__ import annotations

import pytest
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from mocks.pki import TestPki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from signing import backends
from signing.backends import SignxmlBackend, _enveloped, _without
from signing.policy import VerificationPolicy
from signing.signer import SigningKey
from signing.verifier import DS, DocumentVerifier, SignatureRejected
from signing.xmlsafe import UnsafeXmlError
from tests.helpers import trusting_verifier

NS = {"ds": DS}


class Counting(SignxmlBackend):
    """Counts the signatures the lean check passed."""

    passed = 0

    def _lean(self, *args):  # type: ignore[no-untyped-def]
        result = super()._lean(*args)
        type(self).passed += result is not None
        return result


def _verifier(pki: TestPki) -> DocumentVerifier:
    plain = trusting_verifier(pki)
    return DocumentVerifier(VerificationPolicy(), plain.trust, backends=(Counting(VerificationPolicy()),))


def _signxml_signed(pki: TestPki, c14n: CanonicalizationMethod, *, with_comment: bool = False) -> bytes:
    person = pki.person("aigerim")
    document = signed_application(person, READER_TICKET_SERVICE)
    document.remove(document.find("ds:Signature", NS))
    if with_comment:
        document[0].append(etree.Comment(" a comment "))
    key = SigningKey.from_pem(person.sign.cert, person.sign.key)
    signer = XMLSigner(signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=c14n)
    return etree.tostring(signer.sign(document, key=key.private_key, cert=[key.certificate]))


@pytest.mark.parametrize(("c14n", "comment"), [
    (CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0, False),
    (CanonicalizationMethod.CANONICAL_XML_1_0, False),
    (CanonicalizationMethod.CANONICAL_XML_1_0_WITH_COMMENTS, True),
    (CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0_WITH_COMMENTS, True),
])
def test_the_lean_check_returns_what_signxml_returns(pki: TestPki, c14n: CanonicalizationMethod,
                                                       comment: bool) -> None:
    raw = _signxml_signed(pki, c14n, with_comment=comment)
    verifier = _verifier(pki)
    before = Counting.passed
    verified = verifier.verify(etree.fromstring(raw))
    assert Counting.passed == before + 1
    certificate = pki.person("aigerim").sign.load_certificate()
    reference = XMLVerifier().verify(raw, x509_cert=certificate, expect_config=SignatureConfiguration(location="./"))
    assert reference.signed_xml is not None
    backend = Counting(VerificationPolicy())
    document = etree.fromstring(raw)
    lean = backend._lean(document, certificate, verifier._check_structure(document))
    assert lean is not None
    assert etree.tostring(lean.element) == etree.tostring(reference.signed_xml).replace(b"<!-- a comment -->", b"")
    assert lean.canonical == reference.signed_data  # the very bytes digested
    # What the gateway stores and sends: those bytes, unless they hold a comment the verified tree does not.
    assert verified.canonical == (None if comment else reference.signed_data)
    assert verified.report.passed


def test_the_portals_signature_passes_the_lean_check(pki: TestPki) -> None:
    document = signed_application(pki.person("aigerim"), READER_TICKET_SERVICE)
    before = Counting.passed
    assert _verifier(pki).verify(document).identity.iin == pki.person("aigerim").iin
    assert Counting.passed == before + 1


@pytest.mark.parametrize(("tamper", "code"), [
    ("content", "SIG_HASH_FAILURE"),
    ("signature", "SIG_CRYPTO_FAILURE"),
    ("digest", "SIG_CRYPTO_FAILURE"),
])
def test_what_the_lean_check_refuses_is_signxmls_refusal(pki: TestPki, tamper: str, code: str) -> None:
    document = signed_application(pki.person("aigerim"), READER_TICKET_SERVICE)
    if tamper == "content":
        document[0].text = (document[0].text or "") + "x"
    elif tamper == "signature":
        value = document.find("ds:Signature/ds:SignatureValue", NS)
        value.text = ("A" if value.text[0] != "A" else "B") + value.text[1:]
    else:
        value = document.find("ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestValue", NS)
        value.text = ("A" if value.text[0] != "A" else "B") + value.text[1:]
    before = Counting.passed
    with pytest.raises(SignatureRejected) as raised:
        _verifier(pki).verify(document)
    assert Counting.passed == before  # left to signxml, which gives the reason as before
    assert raised.value.report.error_code == code


def test_other_shapes_go_to_signxml(pki: TestPki) -> None:
    document = signed_application(pki.person("aigerim"), READER_TICKET_SERVICE)
    key_info = document.find("ds:Signature/ds:KeyInfo", NS)
    etree.SubElement(key_info, f"{{{DS}}}KeyName").text = "k"  # harmless: still lean
    certificate = pki.person("aigerim").sign.load_certificate()
    verifier = _verifier(pki)
    backend = Counting(VerificationPolicy())
    layout = verifier._check_structure(document)
    assert backend._lean(document, certificate, layout) is not None
    signed_info = document.find("ds:Signature/ds:SignedInfo", NS)
    reference = signed_info.find("ds:Reference", NS)
    reference.set("URI", "#nothing")  # not URI="": signxml's to decide
    assert backend._lean(document, certificate, layout) is None
    reference.set("URI", "")
    etree.SubElement(key_info, f"{{{DS}}}KeyValue")  # signxml compares a KeyValue with the certificate
    assert backend._lean(document, certificate, layout) is None


@pytest.mark.parametrize("c14n", [CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
                                  CanonicalizationMethod.CANONICAL_XML_1_0])
def test_a_consumed_document_gives_the_same_signed_data_and_is_left_empty(pki: TestPki,
                                                                          c14n: CanonicalizationMethod) -> None:
    raw = _signxml_signed(pki, c14n)
    kept = _verifier(pki).verify(etree.fromstring(raw))
    document = etree.fromstring(raw)
    before = Counting.passed
    consumed = _verifier(pki).verify(document, consume=True)
    assert Counting.passed == before + 1
    assert consumed.canonical is not None and consumed.canonical == kept.canonical
    assert etree.tostring(consumed.signed) == etree.tostring(kept.signed)
    assert (len(document), document.text, document.tag) == (0, None, etree.fromstring(raw).tag)


@pytest.mark.parametrize("tamper", ["content", "signature"])
def test_a_consumed_document_that_fails_is_left_as_it_came(pki: TestPki, tamper: str) -> None:
    document = signed_application(pki.person("aigerim"), READER_TICKET_SERVICE)
    if tamper == "content":
        document[0].text = (document[0].text or "") + "x"
    else:
        value = document.find("ds:Signature/ds:SignatureValue", NS)
        value.text = ("A" if value.text[0] != "A" else "B") + value.text[1:]
    before = etree.tostring(document)
    with pytest.raises(SignatureRejected) as raised:
        _verifier(pki).verify(document, consume=True)
    assert raised.value.report.error_code == ("SIG_HASH_FAILURE" if tamper == "content" else "SIG_CRYPTO_FAILURE")
    assert etree.tostring(document) == before  # signxml had the whole tree to give its reason


@pytest.mark.parametrize("xml", [
    b'<r xmlns="urn:a" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">t0<a>1</a>t1<ds:Signature><ds:SignedInfo/>'
    b'</ds:Signature>t2<b/>t3</r>',
    b'<r><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>after</r>',
    b'<r>before<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></r>',
    b'<r><a/><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></r>',
])
@pytest.mark.parametrize("exclusive", [True, False])
def test_the_in_place_enveloped_transform_is_the_copys_and_puts_everything_back(xml: bytes, exclusive: bool) -> None:
    root = etree.fromstring(xml)
    signature = root.find("ds:Signature", NS)
    expected = etree.tostring(_without(root, signature), method="c14n", exclusive=exclusive)
    with _enveloped(root, signature):
        assert root.find("ds:Signature", NS) is None
        assert etree.tostring(root, method="c14n", exclusive=exclusive) == expected
    assert etree.tostring(root) == xml


def test_a_consumed_document_whose_signed_bytes_do_not_parse_is_refused_not_passed_on(
        pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    def unparsable(data: bytes) -> etree._Element:  # the one step after the tree is emptied, failing
        raise UnsafeXmlError("malformed", "not well-formed")

    monkeypatch.setattr(backends, "parse_canonical", unparsable)
    document = signed_application(pki.person("aigerim"), READER_TICKET_SERVICE)
    with pytest.raises(SignatureRejected) as raised:
        _verifier(pki).verify(document, consume=True)
    assert raised.value.report.error_code == "SIG_FORMAT_FAILURE"
    assert any("the signed data is not XML" in error for error in raised.value.report.errors), \
        "refused here, not by signxml handed an emptied tree"
