"""XAdES-BES: the gateway can sign results as XAdES, and the verifier checks the signed properties."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, SignatureMethod
from signxml.xades import XAdESSigner

from signing.policy import VerificationPolicy
from signing.signer import DocumentSigner, SigningKey
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier, SignatureRejected
from tests.helpers import DS, XADES, trusting_verifier


@pytest.fixture(scope="module")
def xades_signer(pki) -> DocumentSigner:
    files = pki.systems["gateway"]
    return DocumentSigner(SigningKey.from_pem(files.cert, files.key), xades=True)


@pytest.fixture(scope="module")
def verifier(pki) -> DocumentVerifier:
    return trusting_verifier(pki)


def ticket() -> etree._Element:
    return etree.fromstring(b'<t:Ticket xmlns:t="urn:test"><t:number>42</t:number></t:Ticket>')


def test_xades_signature_verifies_with_signing_time(xades_signer, verifier) -> None:
    signed = xades_signer.sign(ticket())
    assert signed.find(f".//{{{XADES}}}SigningCertificateV2") is not None
    verified = verifier.verify(signed)
    assert verified.report.signature_format == "XAdES-BES"
    assert verified.report.claimed_signing_time is not None
    assert etree.QName(verified.signed).localname == "Ticket"
    assert verified.signed.find(f"{{{DS}}}Signature") is None


def test_tampered_signed_properties_fail(xades_signer, verifier) -> None:
    signed = xades_signer.sign(ticket())
    signed.find(f".//{{{XADES}}}SigningTime").text = "2001-01-01T00:00:00+00:00"
    with pytest.raises(SignatureRejected) as refused:
        verifier.verify(signed)
    assert refused.value.report.error_code == "SIG_HASH_FAILURE"


def test_signing_certificate_digest_must_be_the_signers(pki, verifier) -> None:
    """Correctly signed properties that name another certificate: the signer is not who they claim."""
    other = base64.b64encode(pki.systems["library"].load_certificate().fingerprint(hashes.SHA256())).decode()

    class LyingSigner(XAdESSigner):
        def add_signing_certificate(self, signed_signature_properties, sig_root, signing_settings):  # type: ignore[no-untyped-def]
            super().add_signing_certificate(signed_signature_properties, sig_root, signing_settings)
            signed_signature_properties.find(f".//{{{DS}}}DigestValue").text = other

    files = pki.systems["gateway"]
    signer = DocumentSigner(SigningKey.from_pem(files.cert, files.key), xades=True)
    signer._signer = LyingSigner(signature_algorithm=SignatureMethod.RSA_SHA256,
                                 c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    with pytest.raises(SignatureRejected) as refused:
        verifier.verify(signer.sign(ticket()))
    assert refused.value.report.error_code == "SIG_NO_SIGNING_CERTIFICATE_FOUND"
    assert refused.value.report.sub_indication == "NO_SIGNING_CERTIFICATE_FOUND"


def test_policy_can_refuse_xades(xades_signer, pki) -> None:
    strict = DocumentVerifier(VerificationPolicy(allow_xades=False),
                              TrustStore.from_files(pki.trust_anchors, pki.intermediates))
    with pytest.raises(SignatureRejected) as refused:
        strict.verify(xades_signer.sign(ticket()))
    assert refused.value.report.error_code == "SIG_CONSTRAINTS_FAILURE"


def test_signer_does_not_accumulate_state(xades_signer) -> None:
    for _ in range(5):
        xades_signer.sign(ticket())
    assert not xades_signer._signer._tokens_used
