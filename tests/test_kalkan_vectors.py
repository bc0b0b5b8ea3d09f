"""Real GOST documents and certificates made by Kalkan and NCA, not by our own signer (tests/vectors/kalkan/,
sources in its README): the 2015-512 documents verify with NCA's GOST test intermediate as the only trust
anchor, at a time inside the signer's validity; one changed byte of their content is HASH_FAILURE; the real
NCA CA certificates (2015-512 and a 2004 root), a CRL of the root and an answer of NCA's test OCSP responder
are accepted by our certificate, path and revocation-signature code.

Our own test PKI proves that our reading matches our writing; these prove it matches Kalkan's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from signing import gost, gost_x509
from signing.nca import KeyPurpose, SignerRole, read_identity
from signing.policy import VerificationPolicy
from signing.report import Indication, SubIndication
from signing.revocation_signatures import issued_by, signature_problem
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier, SignatureRejected
from signing.xmlsafe import parse_untrusted
from tests.helpers import CLI, ROOT

pytestmark = pytest.mark.skipif(not gost.available(), reason="the GOST provider is not installed (make gost)")

VECTORS = ROOT / "tests" / "vectors" / "kalkan"
NCA_TEST = VECTORS / "nca_gost2022_test.pem"
ROOT_TEST = VECTORS / "root_test_gost_2022.pem"
ROOT_2004 = VECTORS / "root_gost_test_2004.pem"
METHOD_2015_512 = "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:gostr34102015-gostr34112015-512"


@dataclass(frozen=True)
class KalkanDocument:
    """One real Kalkan-signed document and what we know about it."""

    path: Path
    "The signed document as Kalkan wrote it."
    at: str
    "A time inside the signer certificate's validity (when its signer also signed a CMS with a timestamp)."
    content: bytes
    "A signed text value of the document..."
    changed: bytes
    "...and the same value with one byte changed."
    iin: str
    "The signer's (test) IIN."
    bin: str | None
    "The signer's (test) BIN, for an organisation's key."
    roles: frozenset[SignerRole]
    "The roles its certificate's extended key usage gives."


ORGANISATION = KalkanDocument(VECTORS / "kalkan-2015-organisation.xml", "2023-10-11T09:31:15Z",
                              b"<message>Hello</message>", b"<message>Hallo</message>", "123456789011",
                              "123456789021", frozenset({SignerRole.FIRST_HEAD, SignerRole.ORGANISATION}))
INDIVIDUAL = KalkanDocument(VECTORS / "kalkan-2015-individual.xml", "2024-07-22T12:32:50Z",
                            b"<xml>test<", b"<xml>tast<", "123456789011", None, frozenset({SignerRole.INDIVIDUAL}))
DOCUMENTS = pytest.mark.parametrize("doc", [ORGANISATION, INDIVIDUAL], ids=["organisation", "individual"])


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def changed(doc: KalkanDocument) -> bytes:
    data = doc.path.read_bytes()
    assert data.count(doc.content) == 1 and len(doc.content) == len(doc.changed)
    return data.replace(doc.content, doc.changed)


def verifier(doc: KalkanDocument, anchors: Sequence[Path], intermediates: Sequence[Path] = (),
             at: str | None = None) -> DocumentVerifier:
    trust = TrustStore.from_files(anchors, intermediates)
    moment = datetime.fromisoformat(at or doc.at)
    return DocumentVerifier(VerificationPolicy(), trust, clock=lambda: moment, gost_paths=trust)


def rejected(verifier_: DocumentVerifier, data: bytes) -> tuple[Indication, SubIndication | None, str | None]:
    with pytest.raises(SignatureRejected) as caught:
        verifier_.verify(parse_untrusted(data))
    report = caught.value.report
    return report.indication, report.sub_indication, report.error_code


def run_verify(document: Path, at: str, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    """`egov-gateway verify` as a tester runs it, with every Python warning an error (see signing/__init__.py)."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run([*CLI, "verify", "--in", str(document), "--trust", str(NCA_TEST), "--at", at, "--json"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert done.stdout, done.stderr  # nothing printed: the process died (a warning raised, under -W error)
    return done.returncode, json.loads(done.stdout), done.stderr


def test_the_cli_passes_kalkans_document_and_a_changed_byte_is_hash_failure(tmp_path: Path) -> None:
    code, report, stderr = run_verify(ORGANISATION.path, ORGANISATION.at, tmp_path)
    assert (code, report["indication"], stderr) == (0, "TOTAL_PASSED", ""), (report["errors"], stderr)
    assert report["signature_algorithm"] == METHOD_2015_512
    assert (report["signer"]["iin"], report["signer"]["bin"]) == (ORGANISATION.iin, ORGANISATION.bin)
    assert [c["sha256"] for c in report["chain"][1:]] == [load(NCA_TEST).fingerprint(hashes.SHA256()).hex()]

    tampered = tmp_path / "changed.xml"
    tampered.write_bytes(changed(ORGANISATION))
    code, report, stderr = run_verify(tampered, ORGANISATION.at, tmp_path)
    assert (code, report["indication"], report["sub_indication"], report["error_code"]) == (
        1, "TOTAL_FAILED", "HASH_FAILURE", "SIG_HASH_FAILURE"), report["errors"]
    assert stderr == ""


@DOCUMENTS
def test_the_verifier_passes_kalkans_document_with_the_nca_intermediate_as_anchor(doc: KalkanDocument) -> None:
    verified = verifier(doc, [NCA_TEST]).verify(parse_untrusted(doc.path.read_bytes()))
    assert verified.report.indication is Indication.TOTAL_PASSED, verified.report.errors
    assert verified.report.signature_algorithm == METHOD_2015_512
    assert (verified.identity.iin, verified.identity.bin) == (doc.iin, doc.bin)
    assert verified.identity.roles == doc.roles and verified.identity.key_purpose is KeyPurpose.SIGN
    assert [c.subject for c in verified.path.certificates[1:]] == [load(NCA_TEST).subject]


@DOCUMENTS
def test_one_changed_byte_of_kalkans_content_is_hash_failure(doc: KalkanDocument) -> None:
    assert rejected(verifier(doc, [NCA_TEST]), changed(doc)) == (
        Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE, "SIG_HASH_FAILURE")


def test_a_changed_byte_of_kalkans_signature_value_is_crypto_failure() -> None:
    data = ORGANISATION.path.read_bytes()
    value = b"ffmEea/KPaqJ"
    assert data.count(value) == 1
    assert rejected(verifier(ORGANISATION, [NCA_TEST]), data.replace(value, b"ffmEeb/KPaqJ")) == (
        Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE, "SIG_CRYPTO_FAILURE")


def test_the_path_runs_through_ncas_real_intermediate_to_its_root() -> None:
    """NCA's own certificate signatures (root over intermediate, intermediate over leaf) verify with our code."""
    verified = verifier(ORGANISATION, [ROOT_TEST], [NCA_TEST]).verify(parse_untrusted(ORGANISATION.path.read_bytes()))
    assert verified.report.indication is Indication.TOTAL_PASSED, verified.report.errors
    assert [c.subject for c in verified.path.certificates[1:]] == [load(NCA_TEST).subject, load(ROOT_TEST).subject]


def test_the_root_alone_is_no_path_without_the_intermediate() -> None:
    assert rejected(verifier(ORGANISATION, [ROOT_TEST]), ORGANISATION.path.read_bytes()) == (
        Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND, "SIG_NO_CERTIFICATE_CHAIN_FOUND")


def test_kalkans_document_after_its_signers_certificate_expired_is_refused() -> None:
    assert rejected(verifier(ORGANISATION, [NCA_TEST], at="2024-06-01T00:00:00Z"),
                    ORGANISATION.path.read_bytes()) == (
        Indication.INDETERMINATE, SubIndication.OUT_OF_BOUNDS_NO_POE, "SIG_EXPIRED")


def test_ncas_real_ca_certificates_are_read_and_their_signatures_verify() -> None:
    root, nca, root_2004 = load(ROOT_TEST), load(NCA_TEST), load(ROOT_2004)
    assert gost_x509.public_key(root)[0].signature_oid == gost_x509.public_key(nca)[0].signature_oid == (
        "1.2.398.3.10.1.1.2.3.2")
    assert gost_x509.issued_by(root, root) and gost_x509.issued_by(nca, root)
    assert not gost_x509.issued_by(root, nca)
    # The 2004 root: GOST 34.310-2004 with GOST 34.311-95 (Test S-box) over a real NCA self-signature.
    assert gost_x509.public_key(root_2004)[0].signature_oid == "1.2.398.3.10.1.1.1.2"
    assert gost_x509.issued_by(root_2004, root_2004)
    signature = bytearray(root_2004.signature)
    signature[0] ^= 1
    assert not gost_x509.verify_signature(root_2004, root_2004.signature_algorithm_oid.dotted_string,
                                          bytes(signature), root_2004.tbs_certificate_bytes)


@DOCUMENTS
def test_kalkans_signer_certificates_are_read_as_ncas(doc: KalkanDocument) -> None:
    document = parse_untrusted(doc.path.read_bytes())
    text = document.findtext(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate")
    assert text is not None
    leaf = x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    identity = read_identity(leaf)
    assert (identity.iin, identity.bin, identity.roles) == (doc.iin, doc.bin, doc.roles)
    assert identity.public_key_algorithm == "gost2015" and identity.key_purpose is KeyPurpose.SIGN
    assert gost_x509.issued_by(leaf, load(NCA_TEST))


def test_ncas_real_crl_is_the_roots_and_its_signature_verifies() -> None:
    crl = x509.load_der_x509_crl((VECTORS / "root_test_gost_2022.crl").read_bytes())
    root, nca = load(ROOT_TEST), load(NCA_TEST)
    assert crl.issuer == root.subject and len(list(crl)) == 0
    assert signature_problem(root, crl, crl.tbs_certlist_bytes, "the CRL") is None
    assert signature_problem(nca, crl, crl.tbs_certlist_bytes, "the CRL") == "the signature of the CRL does not verify"
    tbs = bytearray(crl.tbs_certlist_bytes)
    tbs[-1] ^= 1
    assert signature_problem(root, crl, bytes(tbs), "the CRL") == "the signature of the CRL does not verify"


def test_ncas_real_ocsp_answer_names_the_intermediate_as_we_hash_it_and_its_signature_verifies() -> None:
    """NCA's test responder (a delegated OCSP certificate of the intermediate) answered GOOD for a leaf of it."""
    answer = ocsp.load_der_ocsp_response((VECTORS / "ocsp_good_nca_gost2022_test.der").read_bytes())
    nca = load(NCA_TEST)
    assert (answer.response_status, answer.certificate_status) == (
        ocsp.OCSPResponseStatus.SUCCESSFUL, ocsp.OCSPCertStatus.GOOD)
    # The CertID as our checker computes it for a GOST issuer (RFC 6960 over the BIT STRING's bytes).
    assert answer.issuer_key_hash == gost_x509.key_hash(nca)
    assert answer.issuer_name_hash == hashlib.sha1(nca.subject.public_bytes(), usedforsecurity=False).digest()
    (responder,) = answer.certificates
    assert issued_by(responder, nca) and not issued_by(responder, load(ROOT_TEST))
    assert signature_problem(responder, answer, answer.tbs_response_bytes, "the answer") is None
    assert signature_problem(nca, answer, answer.tbs_response_bytes, "the answer") == (
        "the signature of the answer does not verify")
