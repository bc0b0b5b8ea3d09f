"""The GOST 34.10-2015 half of the test PKI: paths validate with the GOST primitives under the RSA path's rules,
and the GOST hierarchy's OCSP answers and CRLs are GOST-signed and checked, over real loopback sockets.

Broken paths (a flipped signature byte, a wrong issuer key, a "CA" that is no CA) are built here with the test
PKI's own GOST issuing code; every rejection asserts its exact error code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.config import SignerSettings
from mocks.backoffice.worker import CommissionDesk, WorkerSettings
from mocks.library import parse_fund_decision, parse_ticket
from mocks.pki import TestPki, gost_issue
from mocks.pki import gost as mock_gost
from mocks.pki.builder import CRL_URLS
from mocks.pki.revocation import run_revocation
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE, signed_application
from signing import gost, gost_x509
from signing.gost import der
from signing.nca import KeyPurpose, SignerRole, read_identity
from signing.policy import VerificationPolicy
from signing.revocation import RevocationChecker, RevocationSettings, RevocationUnavailable
from signing.trust import TrustStore
from signing.verifier import DS, DocumentVerifier, SignatureRejected
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    GatewayUnderTest,
    free_port,
    message_id,
    mock_control,
    rest_request_bytes,
    second_gateway,
    send_soap,
    trusting_verifier,
)

pytestmark = pytest.mark.skipif(not gost.available(), reason="the GOST provider is not installed (make gost)")


@pytest.fixture(scope="module")
def verifier(pki: TestPki) -> DocumentVerifier:
    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    return DocumentVerifier(VerificationPolicy(), trust, gost_paths=trust)


def gost_cert(pki: TestPki, handle: str, purpose: str = "sign") -> x509.Certificate:
    files = getattr(pki.person(handle), f"gost_{purpose}")
    assert files is not None
    return files.load_certificate()


def gost_ca(pki: TestPki, name: str) -> gost_issue.GostCa:
    files = pki.authorities[name]
    cert = files.load_certificate()
    return gost_issue.GostCa(name, cert, files.load_private_scalar(), gost_x509.key_hash(cert))


def rejected_code(verifier: DocumentVerifier, cert: x509.Certificate, untrusted: list[x509.Certificate] = (),
                  because: str = "") -> str:
    with pytest.raises(SignatureRejected) as caught:
        verifier.check_certificate(cert, list(untrusted))
    code, errors = caught.value.report.error_code, "; ".join(caught.value.report.errors)
    assert code is not None and because in errors, errors
    return code


def test_the_gost_profile_matches_nca(pki: TestPki) -> None:
    cert = gost_cert(pki, "kitap-signer")
    assert cert.signature_algorithm_oid.dotted_string == "1.2.398.3.10.1.1.2.3.2"
    assert cert.public_key_algorithm_oid.dotted_string == "1.2.398.3.10.1.1.2.2"
    algorithm, point = gost_x509.public_key(cert)
    assert algorithm is gost_x509.GOST2015_512 and len(point) == 128
    # SPKI parameters: SEQUENCE { the Kazakh TC26-512-A OID, Streebog-512 }
    spki = cert.tbs_certificate_bytes
    assert der.encode_oid("1.2.398.3.10.1.1.2.2.1") + der.encode_oid("1.2.398.3.10.1.3.3") in spki
    identity = read_identity(cert)
    person = pki.person("kitap-signer")
    assert (identity.iin, identity.bin, identity.key_purpose) == (person.iin, person.bin, KeyPurpose.SIGN)
    assert identity.roles == {SignerRole.ORGANISATION, SignerRole.CAN_SIGN}
    assert identity.policies == ("1.2.398.3.3.2.1",)
    assert read_identity(gost_cert(pki, "aigerim", "auth")).key_purpose is KeyPurpose.AUTH
    assert read_identity(gost_cert(pki, "aigerim")).policies == ("1.2.398.3.3.2.3",)


def test_a_gost_chain_validates_to_the_gost_root(pki: TestPki, verifier: DocumentVerifier) -> None:
    checked = verifier.check_certificate(gost_cert(pki, "kitap-signer"))
    subjects = [c.subject for c in checked.path.certificates]
    assert subjects == [gost_cert(pki, "kitap-signer").subject, pki.authorities["gost-nca"].load_certificate().subject,
                        pki.authorities["gost-root"].load_certificate().subject]
    assert verifier.check_certificate(gost_cert(pki, "kitap-signer")).path is checked.path  # a good path is cached
    # The RSA path still goes through cryptography.x509.verification beside it.
    assert len(verifier.check_certificate(pki.person("kitap-signer").sign.load_certificate()).path.certificates) == 3


def test_a_trusted_gost_intermediate_is_an_anchor_on_its_own(pki: TestPki) -> None:
    nca = pki.authorities["gost-nca"].load_certificate()
    alone = DocumentVerifier(VerificationPolicy(), TrustStore([nca]), gost_paths=TrustStore([nca]))
    assert alone.check_certificate(gost_cert(pki, "saule")).path.certificates[-1] == nca


def test_a_flipped_byte_in_a_gost_signature_fails(pki: TestPki, verifier: DocumentVerifier) -> None:
    good = gost_cert(pki, "murager-signer").public_bytes(Encoding.DER)
    signature = gost_cert(pki, "murager-signer").signature
    at = good.rindex(signature) + 7
    flipped = x509.load_der_x509_certificate(good[:at] + bytes([good[at] ^ 0x01]) + good[at + 1:])
    assert rejected_code(verifier, flipped, because="GOST signature") == "SIG_NO_CERTIFICATE_CHAIN_FOUND"


def test_a_gost_certificate_signed_by_another_key_under_the_nca_name_fails(pki: TestPki,
                                                                         verifier: DocumentVerifier) -> None:
    real = gost_ca(pki, "gost-nca")
    impostor = gost_issue.GostCa("impostor", real.cert, gost.generate_private(gost.CURVE_512A), real.key_id)
    now = datetime.now(UTC)
    cert, _ = gost_issue.issue_leaf(impostor, CRL_URLS["gost-nca"], gost_cert(pki, "aigerim").subject, "sign",
                                    False, (SignerRole.INDIVIDUAL,), now - timedelta(days=1), now + timedelta(days=9))
    assert rejected_code(verifier, cert, because="does not verify") == "SIG_NO_CERTIFICATE_CHAIN_FOUND"


def test_an_expired_gost_certificate_fails(pki: TestPki, verifier: DocumentVerifier) -> None:
    assert rejected_code(verifier, gost_cert(pki, "expired")) == "SIG_EXPIRED"


@pytest.mark.parametrize("broken", ["not_a_ca", "no_key_cert_sign", "expired_ca"])
def test_an_intermediate_that_may_not_issue_breaks_the_path(pki: TestPki, verifier: DocumentVerifier,
                                                            broken: str) -> None:
    root, now = gost_ca(pki, "gost-root"), datetime.now(UTC)
    start, end = (now - timedelta(days=30), now - timedelta(days=1)) if broken == "expired_ca" else (
        now - timedelta(days=1), now + timedelta(days=30))
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"GOST {broken} TEST")])
    middle = gost_issue.make_ca("middle", subject, root, start, end, ca=broken != "not_a_ca",
                                key_cert_sign=broken != "no_key_cert_sign")
    leaf, _ = gost_issue.issue_leaf(middle, CRL_URLS["gost-nca"], gost_cert(pki, "aigerim").subject, "sign", False,
                                    (SignerRole.INDIVIDUAL,), now - timedelta(hours=1), now + timedelta(days=9))
    because = {"not_a_ca": "is not a CA", "no_key_cert_sign": "keyCertSign", "expired_ca": "is not valid at"}[broken]
    assert rejected_code(verifier, leaf, [middle.cert], because) == "SIG_NO_CERTIFICATE_CHAIN_FOUND"


def test_path_length_of_the_gost_intermediate_is_enforced(pki: TestPki, verifier: DocumentVerifier) -> None:
    nca, now = gost_ca(pki, "gost-nca"), datetime.now(UTC)  # pathLen 0: no CA below it
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "GOST SUB CA TEST")])
    sub = gost_issue.make_ca("sub", subject, nca, now - timedelta(days=1), now + timedelta(days=30))
    leaf, _ = gost_issue.issue_leaf(sub, CRL_URLS["gost-nca"], gost_cert(pki, "aigerim").subject, "sign", False,
                                    (SignerRole.INDIVIDUAL,), now - timedelta(hours=1), now + timedelta(days=9))
    assert rejected_code(verifier, leaf, [sub.cert], "allows 0 CAs below it") == "SIG_NO_CERTIFICATE_CHAIN_FOUND"


def test_an_rsa_certificate_does_not_chain_to_a_gost_anchor(pki: TestPki) -> None:
    trust = TrustStore.from_files([pki.authorities["gost-root"].cert], [pki.authorities["gost-nca"].cert])
    gost_only = DocumentVerifier(VerificationPolicy(), trust, gost_paths=trust)
    assert rejected_code(gost_only, pki.person("aigerim").sign.load_certificate()) == "SIG_NO_CERTIFICATE_CHAIN_FOUND"


# --- revocation of the GOST hierarchy: GOST-signed OCSP answers and CRLs ------------------------------------


@pytest_asyncio.fixture(scope="module")
async def responder(pki: TestPki) -> AsyncIterator[str]:
    port = free_port()
    runner = await run_revocation(pki, port=port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(autouse=True)
async def fresh(responder: str, http: aiohttp.ClientSession) -> None:
    await mock_control(http, responder, "reset")


def checker(http: aiohttp.ClientSession, responder: str, **settings: Any) -> RevocationChecker:
    settings = {"ocsp_url": f"{responder}/ocsp",
                "crl_urls": (f"{responder}/crl/gost-nca.crl", f"{responder}/crl/gost-root.crl"),
                "timeout_seconds": 2.0, **settings}
    return RevocationChecker(RevocationSettings(**settings), http)


def pair(pki: TestPki, handle: str = "kitap-signer") -> tuple[x509.Certificate, x509.Certificate]:
    return gost_cert(pki, handle), pki.authorities["gost-nca"].load_certificate()


async def test_gost_signed_ocsp_good_and_revoked(pki: TestPki, http: aiohttp.ClientSession, responder: str) -> None:
    info = await checker(http, responder).check(*pair(pki))
    assert (info.status, info.source) == ("good", "ocsp")
    await mock_control(http, responder, "revoke", {"person": "kitap-signer", "gost": True, "reason": "key_compromise"})
    info = await checker(http, responder).check(*pair(pki))
    assert (info.status, info.source, info.reason) == ("revoked", "ocsp", "key_compromise")


async def test_a_delegated_gost_ocsp_responder_is_accepted(pki: TestPki, http: aiohttp.ClientSession,
                                                           responder: str) -> None:
    await mock_control(http, responder, "ocsp", {"signer": "delegated"})
    info = await checker(http, responder).check(*pair(pki, "aigerim"))
    assert (info.status, info.source) == ("good", "ocsp")


@pytest.mark.parametrize(("fault", "why"), [({"tamper": True}, "does not verify"),
                                            ({"signer": "foreign"}, "not issued by the cert's issuer")])
async def test_a_gost_ocsp_answer_not_signed_by_the_issuer_is_no_answer(pki: TestPki, http: aiohttp.ClientSession,
                                                                        responder: str, fault: dict[str, Any],
                                                                        why: str) -> None:
    await mock_control(http, responder, "ocsp", fault)
    await mock_control(http, responder, "crl", {"down": True})
    with pytest.raises(RevocationUnavailable) as caught:
        await checker(http, responder).check(*pair(pki))
    assert why in caught.value.reason


async def test_a_gost_crl_lists_a_revoked_certificate(pki: TestPki, http: aiohttp.ClientSession,
                                                      responder: str) -> None:
    await mock_control(http, responder, "revoke", {"person": "murager-head", "gost": True, "where": "crl_only"})
    await mock_control(http, responder, "ocsp", {"down": True})
    info = await checker(http, responder).check(*pair(pki, "murager-head"))
    assert (info.status, info.source) == ("revoked", "crl")
    good = await checker(http, responder).check(*pair(pki, "murager-signer"))
    assert (good.status, good.source) == ("good", "crl")


async def test_the_whole_gost_path_is_checked_and_a_revoked_gost_intermediate_is_found(
        pki: TestPki, http: aiohttp.ClientSession, responder: str, verifier: DocumentVerifier) -> None:
    path = verifier.check_certificate(gost_cert(pki, "saule")).path.certificates
    answers = await checker(http, responder).check_path(path)
    assert [(a.status, a.source) for a in answers] == [("good", "ocsp"), ("good", "ocsp")]  # type: ignore[union-attr]
    await mock_control(http, responder, "revoke", {"ca": "gost-nca", "where": "crl_only"})
    await mock_control(http, responder, "ocsp", {"down": True})
    answers = await checker(http, responder).check_path(path)
    assert [(a.status, a.source) for a in answers] == [("good", "crl"), ("revoked", "crl")]  # type: ignore[union-attr]


async def test_an_rsa_signed_crl_is_no_answer_for_a_gost_certificate(pki: TestPki, http: aiohttp.ClientSession,
                                                                     responder: str) -> None:
    await mock_control(http, responder, "ocsp", {"down": True})
    with pytest.raises(RevocationUnavailable) as caught:
        await checker(http, responder, crl_urls=(f"{responder}/crl/nca.crl",)).check(*pair(pki))
    assert "is not signed by the certificate's issuer" in caught.value.reason


# --- end to end: GOST-signed applications through the real gateway over its sockets ---------------------------

GOST_2015_METHOD = "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:gostr34102015-gostr34112015-512"


def signature_method(document: etree._Element) -> str | None:
    return document.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod").get("Algorithm")


async def test_an_organisation_application_signed_with_gost_passes_and_is_decided(gw: GatewayUnderTest, shep,
                                                                                  http: aiohttp.ClientSession) -> None:
    signer = gw.pki.person("kitap-signer")
    document = signed_application(signer, FUND_SUBMISSION_SERVICE, key="gost-sign")
    assert signature_method(document) == GOST_2015_METHOD
    mid = message_id()
    result = await send_soap(shep, document, service_id=FUND_SUBMISSION_SERVICE, message_id=mid)
    assert result.ok, result
    assert trusting_verifier(gw.pki).verify(result.document).identity.common_name == "gateway"  # the receipt
    desk = CommissionDesk(WorkerSettings(gateway_url=gw.url, library_url=gw.library_url, sender=DESK,
                                         password=DESK_PASSWORD, poll_wait=5))
    async with desk:
        assert await desk.run_once()
    async with http.get(f"{gw.url}/api/v1/cabinet/{signer.bin}/applications/{mid}", headers=gw.auth()) as response:
        item = await response.json()
    assert item["status"] == "completed", item
    report = item["validationReport"]
    assert (report["indication"], report["signature_algorithm"]) == ("TOTAL_PASSED", GOST_2015_METHOD)
    assert report["signer"]["bin"] == signer.bin and report["signer"]["key_purpose"] == "sign"
    assert (report["revocation"]["status"], report["revocation"]["source"]) == ("good", "ocsp")  # GOST-signed OCSP
    assert "GOST" in report["chain"][-1]["subject"]
    decision = trusting_verifier(gw.pki).verify(etree.fromstring(item["result"].encode()))
    assert decision.identity.common_name == "library"
    assert parse_fund_decision(decision.signed)["decision"] == "include"


async def test_a_citizen_application_signed_with_gost_comes_back_signed(gw: GatewayUnderTest, shep) -> None:
    aigerim = gw.pki.person("aigerim")
    result = await send_soap(shep, signed_application(aigerim, READER_TICKET_SERVICE, key="gost-sign"))
    assert result.ok, result
    assert parse_ticket(trusting_verifier(gw.pki).verify(result.document).signed)["iin"] == aigerim.iin


@pytest.mark.parametrize(("handle", "key", "code"), [
    ("aigerim", "gost-auth", "SIG_NOT_SIGNING_KEY"),
    ("expired", "gost-sign", "SIG_EXPIRED"),
])
async def test_gost_signatures_the_gateway_refuses(gw: GatewayUnderTest, shep, handle: str, key: str,
                                                   code: str) -> None:
    calls = gw.library_calls
    result = await send_soap(shep, signed_application(gw.pki.person(handle), READER_TICKET_SERVICE, key=key))
    assert (result.ok, result.status_code) == (False, code), result
    assert gw.library_calls == calls


async def test_a_revoked_gost_certificate_is_refused_by_the_gateway(gw: GatewayUnderTest, shep,
                                                                    http: aiohttp.ClientSession,
                                                                    revocation_url: str) -> None:
    await mock_control(http, revocation_url, "revoke", {"person": "saule", "gost": True, "reason": "key_compromise"})
    result = await send_soap(shep, signed_application(gw.pki.person("saule"), READER_TICKET_SERVICE, key="gost-sign"))
    assert (result.ok, result.status_code) == (False, "SIG_REVOKED"), result
    assert result.error_data["subIndication"] == "REVOKED"


async def test_a_gateway_with_a_gost_key_signs_its_results_with_gost(gw: GatewayUnderTest, tmp_path: Path,
                                                                     http: aiohttp.ClientSession) -> None:
    keys = gw.pki.gost_systems["gateway"]
    runner, url = await second_gateway(gw, tmp_path, signer=SignerSettings(cert=keys.cert, key=keys.key))
    try:
        document = signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE, key="gost-sign")
        async with http.post(f"{url}/api/v1/requests", data=rest_request_bytes(document),
                             headers={"Content-Type": "application/json"}) as response:
            body = await response.json()
    finally:
        await runner.cleanup()
    assert response.status == 200, body
    signed = etree.fromstring(body["responseData"]["data"].encode())
    assert signature_method(signed) == GOST_2015_METHOD
    verified = trusting_verifier(gw.pki).verify(signed)
    assert verified.identity.common_name == "gateway" and verified.identity.public_key_algorithm == "gost2015"
    assert parse_ticket(verified.signed)["iin"] == gw.pki.person("aigerim").iin


def test_an_older_gost_2004_chain_validates_too() -> None:
    """GOST 34.310-2004 (CryptoPro-A, GOST R 34.11-94): NCA's older hierarchy, still met in archives."""
    now, algorithm = datetime.now(UTC), gost_x509.GOST2004
    root_scalar, root_point = mock_gost.new_key(algorithm)
    _, leaf_point = mock_gost.new_key(algorithm)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "GOST 2004 ROOT TEST")])
    start, end = now - timedelta(days=1), now + timedelta(days=30)
    root = mock_gost.certificate(
        x509.CertificateBuilder().subject_name(name).issuer_name(name).serial_number(1)
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(gost_issue.ca_usage(), critical=True), root_point, root_scalar, algorithm)
    leaf = mock_gost.certificate(
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "LEAF")]))
        .issuer_name(name).serial_number(2).not_valid_before(start).not_valid_after(end), leaf_point, root_scalar,
        algorithm)
    assert leaf.signature_algorithm_oid.dotted_string == "1.2.398.3.10.1.1.1.2"
    assert gost_x509.public_key(leaf) == (algorithm, leaf_point)
    trust = TrustStore([root])
    assert trust.validate(leaf, [], now).certificates == (leaf, root)
