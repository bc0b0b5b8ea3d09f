"""Revocation checking against the mock PKI's OCSP responder and CRLs, over real loopback sockets.

The responder runs once per module; each test resets it, gets a fresh checker (empty cache) and revokes
or breaks things at run time through the control API. Rejections assert the exact
(error_code, sub_indication, indication) triple.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from mocks.pki import TestPki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from signing.policy import RevocationMode, VerificationPolicy
from signing.report import Indication, SubIndication, ValidationReport
from signing.revocation import RevocationChecker, RevocationSettings, RevocationUnavailable, apply_revocation
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier, SignatureRejected, VerifiedDocument
from tests.helpers import Responder, mock_control, running_responder

Mode = RevocationMode


@pytest_asyncio.fixture(scope="module")
async def responder(pki: TestPki) -> AsyncIterator[Responder]:
    async with running_responder(pki) as running:
        yield running


@pytest.fixture(scope="module")
def verified(pki: TestPki) -> VerifiedDocument:
    """aigerim's application, verified once (revocation is applied on top in each test)."""
    verifier = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(pki.trust_anchors, pki.intermediates))
    return verifier.verify(signed_application(pki.person("aigerim"), READER_TICKET_SERVICE))


@pytest.fixture(scope="module")
def serial(verified: VerifiedDocument) -> str:
    return format(verified.path.certificates[0].serial_number, "x")


@pytest_asyncio.fixture(autouse=True)
async def fresh_responder(responder: Responder, http: aiohttp.ClientSession) -> None:
    responder.clock.offset = timedelta()
    await control(http, responder, "reset")


async def control(http: aiohttp.ClientSession, responder: Responder, action: str, body: Any = None,
                  status: int = 200) -> dict[str, Any]:
    return dict(await mock_control(http, responder.url, action, body, status=status))


async def requests(http: aiohttp.ClientSession, responder: Responder) -> dict[str, int]:
    return (await control(http, responder, "state"))["requests"]


def make_checker(http: aiohttp.ClientSession, responder: Responder, **settings: Any) -> RevocationChecker:
    settings = {"ocsp_url": f"{responder.url}/ocsp",
                "crl_urls": (f"{responder.url}/crl/nca.crl", f"{responder.url}/crl/root.crl"),
                "timeout_seconds": 1.0, **settings}
    return RevocationChecker(RevocationSettings(**settings), http, clock=responder.clock)


async def rejected(verified: VerifiedDocument, checker: RevocationChecker, mode: RevocationMode, code: str,
                   sub: SubIndication, indication: Indication) -> ValidationReport:
    with pytest.raises(SignatureRejected) as caught:
        await apply_revocation(verified, checker, mode)
    report = caught.value.report
    assert (report.error_code, report.sub_indication, report.indication) == (code, sub, indication), report.errors
    assert report.signer is not None and report.signer.certificate_serial == format(
        verified.path.certificates[0].serial_number, "x")
    assert len(report.chain) == 3
    return report


def no_revocation_warning(report: ValidationReport) -> bool:
    return not any("revocation status" in warning for warning in report.warnings)


# ------------------------------------------------------------------------------------------ the checker

async def test_good_via_ocsp(http, responder, verified) -> None:
    result = await apply_revocation(verified, make_checker(http, responder), Mode.HARD_FAIL)
    report = result.report
    assert report.passed and no_revocation_warning(report)
    assert verified.report.warnings  # the verifier's "not checked" warning, now replaced
    info = report.revocation
    assert (info.status, info.source, info.url) == ("good", "ocsp", f"{responder.url}/ocsp")
    assert info.next_update - info.checked_at == timedelta(minutes=10)
    assert result.signed is verified.signed and result.path is verified.path
    assert await requests(http, responder) == {"ocsp": 2}, "the signer's certificate and the NCA intermediate"


async def test_second_check_is_served_from_cache_in_microseconds(http, responder, verified) -> None:
    checker = make_checker(http, responder)
    await apply_revocation(verified, checker, Mode.HARD_FAIL)
    again = await apply_revocation(verified, checker, Mode.HARD_FAIL)
    assert (again.report.revocation.status, again.report.revocation.source) == ("good", "cache")
    assert await requests(http, responder) == {"ocsp": 2}
    leaf, issuer = verified.path.certificates[:2]
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        await checker.check(leaf, issuer)
    assert (time.perf_counter() - started) / rounds < 50e-6
    assert await requests(http, responder) == {"ocsp": 2}


async def test_concurrent_checks_share_one_request(http, responder, verified) -> None:
    checker = make_checker(http, responder)
    answers = await asyncio.gather(*(checker.check(*verified.path.certificates[:2]) for _ in range(10)))
    assert {a.status for a in answers} == {"good"}
    assert await requests(http, responder) == {"ocsp": 1}


async def test_revoked_via_ocsp(http, responder, verified, serial) -> None:
    revocation = await control(http, responder, "revoke", {"serial": serial, "reason": "key_compromise"})
    report = await rejected(verified, make_checker(http, responder), Mode.HARD_FAIL,
                            "SIG_REVOKED", SubIndication.REVOKED, Indication.TOTAL_FAILED)
    assert (report.revocation.status, report.revocation.source, report.revocation.reason) == (
        "revoked", "ocsp", "key_compromise")
    assert report.revocation.revoked_at == datetime.fromisoformat(revocation["revoked_at"])
    assert revocation["revoked_at"] in report.errors[0] and "key_compromise" in report.errors[0]
    assert no_revocation_warning(report)


async def test_revoked_answer_is_cached_as_revoked(http, responder, verified, serial) -> None:
    checker = make_checker(http, responder)
    await control(http, responder, "revoke", {"serial": serial, "reason": "superseded"})
    for source in ("ocsp", "cache"):
        report = await rejected(verified, checker, Mode.SOFT_FAIL, "SIG_REVOKED", SubIndication.REVOKED,
                                Indication.TOTAL_FAILED)
        assert (report.revocation.source, report.revocation.reason) == (source, "superseded")


@pytest.mark.parametrize("failure", ["status", "drop"])
async def test_revoked_known_only_from_crl_while_ocsp_is_down(http, responder, verified, serial, failure) -> None:
    await control(http, responder, "revoke", {"serial": serial, "reason": "affiliation_changed", "where": "crl_only"})
    await control(http, responder, "publish-base")
    checker = make_checker(http, responder)
    assert (await checker.check(*verified.path.certificates[:2])).status == "good"  # OCSP does not know yet
    await control(http, responder, "ocsp", {"down": True, "mode": failure})
    report = await rejected(verified, make_checker(http, responder), Mode.HARD_FAIL,
                            "SIG_REVOKED", SubIndication.REVOKED, Indication.TOTAL_FAILED)
    info = report.revocation
    assert (info.status, info.source, info.reason, info.url) == (
        "revoked", "crl", "affiliation_changed", f"{responder.url}/crl/nca.crl")
    assert info.detail.startswith("OCSP: ")
    assert "affiliation_changed" in report.errors[0] and "CRL" in report.errors[0]


async def test_revoked_only_in_the_delta_crl(http, responder, verified, serial) -> None:
    await control(http, responder, "publish-base")
    await control(http, responder, "revoke", {"serial": serial, "reason": "key_compromise", "where": "crl_only"})
    await control(http, responder, "ocsp", {"down": True})
    report = await rejected(verified, make_checker(http, responder), Mode.HARD_FAIL,
                            "SIG_REVOKED", SubIndication.REVOKED, Indication.TOTAL_FAILED)
    assert (report.revocation.source, report.revocation.url) == ("crl", f"{responder.url}/crl/nca-delta.crl")
    async with http.get(f"{responder.url}/crl/nca.crl") as answer:
        base = x509.load_der_x509_crl(await answer.read())
    assert base.get_revoked_certificate_by_serial_number(int(serial, 16)) is None
    counts = await requests(http, responder)
    assert (counts["nca-delta.crl"], counts["nca.crl"]) == (1, 2)


async def test_stale_cached_base_is_fetched_again_for_a_newer_delta(http, responder, verified, serial) -> None:
    await control(http, responder, "ocsp", {"down": True})
    checker = make_checker(http, responder)
    assert (await checker.check(*verified.path.certificates[:2])).source == "crl"
    await control(http, responder, "revoke", {"serial": serial, "reason": "key_compromise", "where": "crl_only"})
    await control(http, responder, "publish-base")
    responder.clock.offset = timedelta(minutes=11)  # past the delta's nextUpdate, not the base's
    report = await rejected(verified, checker, Mode.HARD_FAIL, "SIG_REVOKED", SubIndication.REVOKED,
                            Indication.TOTAL_FAILED)
    assert report.revocation.url == f"{responder.url}/crl/nca.crl"
    counts = await requests(http, responder)
    assert (counts["nca.crl"], counts["nca-delta.crl"]) == (2, 2)


async def test_ocsp_and_crl_down_under_hard_fail(http, responder, verified) -> None:
    await control(http, responder, "ocsp", {"down": True})
    await control(http, responder, "crl", {"down": True, "mode": "drop"})
    report = await rejected(verified, make_checker(http, responder), Mode.HARD_FAIL,
                            "SIG_TRY_LATER", SubIndication.TRY_LATER, Indication.INDETERMINATE)
    assert (report.revocation.status, report.revocation.source) == ("unknown", "none")
    assert "HTTP 503" in report.errors[0] and "CRL:" in report.errors[0]


async def test_ocsp_timeout_and_crl_down_under_soft_fail(http, responder, verified) -> None:
    await control(http, responder, "ocsp", {"delay": 0.5})
    await control(http, responder, "crl", {"down": True})
    checker = make_checker(http, responder, timeout_seconds=0.2)
    result = await apply_revocation(verified, checker, Mode.SOFT_FAIL)
    report = result.report
    assert report.passed and (report.revocation.status, report.revocation.source) == ("unknown", "none")
    [warning] = report.warnings
    assert warning.startswith("revocation status could not be checked") and "within 0.2 s" in warning
    with pytest.raises(RevocationUnavailable):  # nothing was cached
        await checker.check(*verified.path.certificates[:2])


async def test_crl_of_an_issuer_with_an_unsupported_key_type_is_not_used(http, responder, verified) -> None:
    leaf, issuer = verified.path.certificates[:2]
    key = ed25519.Ed25519PrivateKey.generate()  # same issuer name, a key type CRLs are not checked with
    now = datetime.now(UTC)
    ed_issuer = (x509.CertificateBuilder().subject_name(issuer.subject).issuer_name(issuer.subject)
                 .public_key(key.public_key()).serial_number(1).not_valid_before(now - timedelta(days=1))
                 .not_valid_after(now + timedelta(days=1)).sign(key, None))
    await control(http, responder, "ocsp", {"down": True})
    with pytest.raises(RevocationUnavailable) as caught:
        await make_checker(http, responder).check(leaf, ed_issuer)
    assert "has an issuer with an unsupported key type" in caught.value.reason


async def test_require_rejects_a_crl_only_answer(http, responder, verified) -> None:
    checker = make_checker(http, responder)
    await control(http, responder, "ocsp", {"down": True})
    report = await rejected(verified, checker, Mode.REQUIRE, "SIG_TRY_LATER", SubIndication.TRY_LATER,
                            Indication.INDETERMINATE)
    assert "only a CRL answered" in report.errors[0]
    assert (await apply_revocation(verified, checker, Mode.HARD_FAIL)).report.revocation.source == "crl"
    await control(http, responder, "ocsp", {"down": False})
    assert (await apply_revocation(verified, checker, Mode.REQUIRE)).report.revocation.source == "ocsp"


async def test_response_signed_by_a_foreign_ca_is_not_trusted(http, responder, verified, serial) -> None:
    await control(http, responder, "ocsp", {"signer": "foreign"})
    checker = make_checker(http, responder)
    info = await checker.check(*verified.path.certificates[:2])
    assert info.source == "crl" and "responder certificate was not issued by the cert's issuer" in info.detail
    report = await rejected(verified, checker, Mode.REQUIRE, "SIG_TRY_LATER", SubIndication.TRY_LATER,
                            Indication.INDETERMINATE)
    assert "OCSP" in report.errors[0]


async def test_delegated_responder_is_trusted(http, responder, verified) -> None:
    await control(http, responder, "ocsp", {"signer": "delegated"})
    info = await make_checker(http, responder).check(*verified.path.certificates[:2])
    assert (info.status, info.source) == ("good", "ocsp")


async def test_tampered_response_is_not_good(http, responder, verified, serial) -> None:
    await control(http, responder, "ocsp", {"tamper": True})
    await control(http, responder, "crl", {"down": True})
    report = await rejected(verified, make_checker(http, responder), Mode.HARD_FAIL,
                            "SIG_TRY_LATER", SubIndication.TRY_LATER, Indication.INDETERMINATE)
    assert "does not verify" in report.errors[0]


async def test_nonce_is_sent_and_checked(http, responder, verified) -> None:
    info = await make_checker(http, responder, use_nonce=True).check(*verified.path.certificates[:2])
    assert (info.status, info.source) == ("good", "ocsp")


async def test_expired_cached_answer_is_refreshed(http, responder, verified, serial) -> None:
    checker = make_checker(http, responder)
    certificates = verified.path.certificates[:2]
    assert (await checker.check(*certificates)).source == "ocsp"
    assert (await checker.check(*certificates)).source == "cache"
    await control(http, responder, "revoke", {"serial": serial, "reason": "key_compromise"})
    assert (await checker.check(*certificates)).status == "good"  # cached until nextUpdate
    responder.clock.offset = timedelta(minutes=11)
    info = await checker.check(*certificates)
    assert (info.status, info.source) == ("revoked", "ocsp")
    assert await requests(http, responder) == {"ocsp": 2}


async def test_answer_without_next_update_lives_for_the_freshness_window(http, responder, verified) -> None:
    await control(http, responder, "ocsp", {"next_update": None})
    checker = make_checker(http, responder, ocsp_freshness_seconds=60)
    assert (await checker.check(*verified.path.certificates[:2])).next_update is not None
    responder.clock.offset = timedelta(seconds=61)
    assert (await checker.check(*verified.path.certificates[:2])).source == "ocsp"
    assert await requests(http, responder) == {"ocsp": 2}


async def test_ocsp_unknown_falls_back_to_crl(http, responder, pki, verified) -> None:
    nca = pki.authorities["nca"]
    issuer = nca.load_certificate()
    leaf = verified.path.certificates[0]
    # A certificate the NCA key signed but the responder never saw issued.
    stray = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(issuer.subject)
             .public_key(leaf.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(leaf.not_valid_before_utc).not_valid_after(leaf.not_valid_after_utc)
             .sign(nca.load_private_key(), hashes.SHA256()))
    info = await make_checker(http, responder).check(stray, issuer)
    assert (info.status, info.source) == ("good", "crl")
    assert "status unknown" in info.detail


async def test_off_mode_leaves_the_document_alone(http, responder, verified) -> None:
    assert await apply_revocation(verified, make_checker(http, responder), Mode.OFF) is verified
    assert await requests(http, responder) == {}


async def test_no_checker_is_try_later_under_hard_fail(verified) -> None:
    await rejected(verified, None, Mode.HARD_FAIL, "SIG_TRY_LATER", SubIndication.TRY_LATER, Indication.INDETERMINATE)


# ------------------------------------------------------------------------------------- the whole path

async def test_revoked_intermediate_via_the_roots_ocsp(http, responder, verified, pki) -> None:
    nca = pki.authorities["nca"].load_certificate()
    revocation = await control(http, responder, "revoke", {"ca": "nca", "reason": "ca_compromise"})
    assert revocation["serial"] == format(nca.serial_number, "x") and revocation["authority"] == "root"
    report = await rejected(verified, make_checker(http, responder), Mode.HARD_FAIL,
                            "SIG_REVOKED", SubIndication.REVOKED_CA_NO_POE, Indication.INDETERMINATE)
    assert "the CA " in report.errors[0] and "ca_compromise" in report.errors[0]
    assert format(nca.serial_number, "x") in report.errors[0]
    assert report.revocation.status == "good", "the signer's own certificate is fine"


@pytest.mark.parametrize("mode", [Mode.SOFT_FAIL, Mode.HARD_FAIL, Mode.REQUIRE])
async def test_revoked_intermediate_known_only_from_the_roots_crl(http, responder, verified, mode) -> None:
    await control(http, responder, "revoke", {"ca": "nca", "reason": "ca_compromise", "where": "crl_only"})
    await control(http, responder, "ocsp", {"down": True})
    report = await rejected(verified, make_checker(http, responder), mode,
                            "SIG_REVOKED", SubIndication.REVOKED_CA_NO_POE, Indication.INDETERMINATE)
    assert f"{responder.url}/crl/root" in report.errors[0]


async def test_intermediate_without_an_answer_is_try_later(http, responder, verified) -> None:
    await control(http, responder, "ocsp", {"down": True})
    checker = make_checker(http, responder, crl_urls=(f"{responder.url}/crl/nca.crl",))  # no CRL of the root
    report = await rejected(verified, checker, Mode.HARD_FAIL, "SIG_TRY_LATER", SubIndication.TRY_LATER,
                            Indication.INDETERMINATE)
    assert report.revocation.status == "good" and report.revocation.source == "crl"
    assert "the CA " in report.errors[0] and "not signed by the certificate's issuer" in report.errors[0]
    [warning] = (await apply_revocation(verified, checker, Mode.SOFT_FAIL)).report.warnings
    assert warning.startswith("revocation status could not be checked: the CA ")
    assert (await requests(http, responder))["nca.crl"] == 1, "one fetch serves both certificates"


# ---------------------------------------------------------------------------------- nonce and replays

async def test_nonce_is_on_by_default_and_a_responder_ignoring_it_is_no_answer(http, responder, verified) -> None:
    assert RevocationSettings().use_nonce and not RevocationSettings().accept_missing_nonce
    await control(http, responder, "ocsp", {"nonce": False})
    info = await make_checker(http, responder).check(*verified.path.certificates[:2])
    assert info.source == "crl" and "does not echo our nonce" in info.detail
    await control(http, responder, "crl", {"down": True})
    report = await rejected(verified, make_checker(http, responder), Mode.HARD_FAIL,
                            "SIG_TRY_LATER", SubIndication.TRY_LATER, Indication.INDETERMINATE)
    assert "does not echo our nonce" in report.errors[0]


async def test_responder_ignoring_the_nonce_is_accepted_only_when_configured(http, responder, verified) -> None:
    await control(http, responder, "ocsp", {"nonce": False})
    info = await make_checker(http, responder, accept_missing_nonce=True).check(*verified.path.certificates[:2])
    assert (info.status, info.source) == ("good", "ocsp")


async def test_replayed_answer_with_an_old_nonce_is_refused(http, responder, verified) -> None:
    certificates = verified.path.certificates[:2]
    assert (await make_checker(http, responder).check(*certificates)).source == "ocsp"
    await control(http, responder, "ocsp", {"replay": True})
    info = await make_checker(http, responder, accept_missing_nonce=True).check(*certificates)
    assert info.source == "crl" and "does not echo our nonce" in info.detail


async def test_replayed_old_good_answer_is_stale_under_hard_fail(http, responder, verified) -> None:
    week = int(timedelta(days=7).total_seconds())
    await control(http, responder, "ocsp", {"next_update": week, "nonce": False})
    settings = {"use_nonce": False, "ocsp_max_age_seconds": 3600}
    certificates = verified.path.certificates[:2]
    assert (await make_checker(http, responder, **settings).check(*certificates)).status == "good"
    await control(http, responder, "revoke", {"serial": format(certificates[0].serial_number, "x")})
    await control(http, responder, "ocsp", {"replay": True})  # the captured "good" of two hours ago, again
    await control(http, responder, "crl", {"down": True})
    responder.clock.offset = timedelta(hours=2)
    report = await rejected(verified, make_checker(http, responder, **settings), Mode.HARD_FAIL,
                            "SIG_TRY_LATER", SubIndication.TRY_LATER, Indication.INDETERMINATE)
    assert "is stale (thisUpdate" in report.errors[0] and "older than the 3600 s" in report.errors[0]
    assert report.revocation.status == "unknown"


async def test_cached_answer_lives_no_longer_than_the_maximum_age(http, responder, verified) -> None:
    await control(http, responder, "ocsp", {"next_update": int(timedelta(days=7).total_seconds())})
    checker = make_checker(http, responder, ocsp_max_age_seconds=600)
    certificates = verified.path.certificates[:2]
    assert (await checker.check(*certificates)).next_update - responder.clock() < timedelta(seconds=601)
    responder.clock.offset = timedelta(seconds=590)
    assert (await checker.check(*certificates)).source == "cache"
    responder.clock.offset = timedelta(seconds=610)
    assert (await checker.check(*certificates)).source == "ocsp"


# ---------------------------------------------------------------------------------------------- the mock

async def test_mock_answers_get_requests_and_refuses_foreign_issuers(http, responder, pki, verified) -> None:
    leaf, issuer = verified.path.certificates[:2]
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256()).build()
    encoded = base64.urlsafe_b64encode(request.public_bytes(Encoding.DER)).decode().rstrip("=")
    async with http.get(f"{responder.url}/ocsp/{encoded}") as answer:
        assert answer.content_type == "application/ocsp-response"
        response = ocsp.load_der_ocsp_response(await answer.read())
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    stranger = pki.person("stranger").sign.load_certificate()
    foreign = ocsp.OCSPRequestBuilder().add_certificate(
        stranger, pki.authorities["foreign-ca"].load_certificate(), hashes.SHA1()).build()
    async with http.post(f"{responder.url}/ocsp", data=foreign.public_bytes(Encoding.DER),
                         headers={"Content-Type": "application/ocsp-request"}) as answer:
        response = ocsp.load_der_ocsp_response(await answer.read())
    assert response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


async def test_mock_control_rejects_bad_input(http, responder) -> None:
    await control(http, responder, "revoke", {"serial": "abc123", "reason": "key_compromise"}, status=404)
    await control(http, responder, "revoke", {"serial": "zz"}, status=400)
    await control(http, responder, "ocsp", {"down": 1}, status=400)
    await control(http, responder, "crl", {"signer": "foreign"}, status=400)


# ------------------------------------------------------------------------------------------ kept between runs


async def test_revoke_by_person_and_the_revocation_survives_a_restart(pki: TestPki, tmp_path: Path) -> None:
    from mocks.pki.revocation import REVOCATION_STATE, create_revocation_app
    from mocks.statefile import StateFile

    store = StateFile(tmp_path / "world" / "revocations.json")
    runner = web.AppRunner(create_revocation_app(pki, store=store))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    expected = format(pki.person("murager-signer").sign.load_certificate().serial_number, "x")
    try:
        async with aiohttp.ClientSession() as http:
            revoked = await mock_control(http, url, "revoke", {"person": "murager-signer"})
            assert revoked["serial"] == expected
            assert (await mock_control(http, url, "revoke", {"person": "nobody"}, status=404))["error"]
            both = {"person": "murager-signer", "serial": expected}
            assert "not both" in (await mock_control(http, url, "revoke", both, status=400))["error"]
            await mock_control(http, url, "publish-base")
    finally:
        await runner.cleanup()
    restarted = create_revocation_app(pki, store=store)[REVOCATION_STATE]
    assert [format(serial, "x") for serial in restarted.revocations] == [expected]
    assert restarted.authorities["nca"].base == (int(expected, 16),), "the CRL series too"
    assert restarted.faults["ocsp"].down is False
