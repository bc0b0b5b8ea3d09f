"""Revocation through the whole gateway: revoked and unreachable cases give their exact codes, and no
refused application reaches the back-end. Each test gets a gateway of its own and the shared revocation cache
is emptied first, so no OCSP answer is cached from another test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from mocks.portal.shep_client import SyncChannelClient
from signing.policy import RevocationMode
from tests.helpers import (
    GatewayUnderTest,
    mock_control,
    second_gateway,
    send_soap,
)


@pytest_asyncio.fixture
async def revocation(system: GatewayUnderTest, http) -> AsyncIterator[str]:
    """The session's OCSP/CRL service, reset before and after each test, and no shared OCSP answer in Redis."""
    await mock_control(http, system.revocation_url, "reset")
    async for key in system.redis.scan_iter(f"{system.settings.redis.key_prefix}:ocsp:*"):
        await system.redis.delete(key)
    yield system.revocation_url
    await mock_control(http, system.revocation_url, "reset")


async def fresh_gateway(system: GatewayUnderTest, tmp_path, mode: RevocationMode):  # type: ignore[no-untyped-def]
    runner, url = await second_gateway(system, tmp_path, revocation=replace(system.settings.revocation, mode=mode))
    client = await asyncio.to_thread(SyncChannelClient, f"{url}/shep/sync?wsdl")
    return runner, client


async def send(client: SyncChannelClient, system: GatewayUnderTest, handle: str):  # type: ignore[no-untyped-def]
    document = signed_application(system.pki.person(handle), READER_TICKET_SERVICE)
    return await send_soap(client, document)


def serial_of(system: GatewayUnderTest, handle: str) -> str:
    return format(system.pki.person(handle).sign.load_certificate().serial_number, "x")


@pytest.mark.parametrize(("case", "mode", "setup", "code", "sub"), [
    ("revoked, OCSP says so", RevocationMode.HARD_FAIL,
     [("revoke", {"where": "both"})], "SIG_REVOKED", "REVOKED"),
    ("revoked, known only from the CRL while OCSP is down", RevocationMode.HARD_FAIL,
     [("revoke", {"where": "crl_only"}), ("ocsp", {"down": True})], "SIG_REVOKED", "REVOKED"),
    ("OCSP and CRL unreachable under hard-fail", RevocationMode.HARD_FAIL,
     [("ocsp", {"down": True}), ("crl", {"down": True})], "SIG_TRY_LATER", "TRY_LATER"),
    ("require mode with OCSP down and only a CRL", RevocationMode.REQUIRE,
     [("ocsp", {"down": True})], "SIG_TRY_LATER", "TRY_LATER"),
    ("the NCA intermediate revoked at the root", RevocationMode.HARD_FAIL,
     [("revoke", {"ca": "nca"})], "SIG_REVOKED", "REVOKED_CA_NO_POE"),
    ("the NCA intermediate revoked, known only from the root's CRL", RevocationMode.SOFT_FAIL,
     [("revoke", {"ca": "nca", "where": "crl_only"}), ("ocsp", {"down": True})], "SIG_REVOKED", "REVOKED_CA_NO_POE"),
    ("a responder that ignores the nonce, CRL down, under hard-fail", RevocationMode.HARD_FAIL,
     [("ocsp", {"nonce": False}), ("crl", {"down": True})], "SIG_TRY_LATER", "TRY_LATER"),
])
async def test_revocation_refusals(system, revocation, http, tmp_path, case, mode, setup, code, sub) -> None:
    for action, body in setup:
        if action == "revoke":
            signer = {} if "ca" in body else {"serial": serial_of(system, "daniyar")}
            body = {**body, **signer, "reason": "key_compromise"}
        await mock_control(http, revocation, action, body)
    runner, client = await fresh_gateway(system, tmp_path, mode)
    calls = system.library_calls
    try:
        result = await send(client, system, "daniyar")
    finally:
        await runner.cleanup()
    assert result.status_code == code, (case, result)
    assert result.error_data["subIndication"] == sub
    assert system.library_calls == calls, f"{case} reached the back-end"


async def test_soft_fail_accepts_with_a_warning_in_the_cabinet(system, revocation, http, tmp_path) -> None:
    await mock_control(http, revocation, "ocsp", {"down": True})
    await mock_control(http, revocation, "crl", {"down": True})
    runner, client = await fresh_gateway(system, tmp_path, RevocationMode.SOFT_FAIL)
    try:
        result = await send(client, system, "daniyar")
        assert result.ok, result
        iin = system.pki.person("daniyar").iin
        async with http.get(f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/cabinet/{iin}/applications",
                            headers=system.auth()) as response:
            listing = await response.json()
        mid = next(a["messageId"] for a in listing["applications"] if a["sessionId"] == result.session_id)
        async with http.get(f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/cabinet/{iin}/applications/{mid}",
                            headers=system.auth()) as response:
            report = (await response.json())["validationReport"]
    finally:
        await runner.cleanup()
    assert report["indication"] == "TOTAL_PASSED"
    assert any("could not be checked" in warning for warning in report["warnings"])


async def test_good_answer_is_in_the_report_and_cached(system, revocation, http, tmp_path) -> None:
    runner, client = await fresh_gateway(system, tmp_path, RevocationMode.HARD_FAIL)
    try:
        first = await send(client, system, "saule")
        async with http.get(f"{revocation}/_control/state") as response:
            before = (await response.json())["requests"]
        second = await send(client, system, "saule")
        async with http.get(f"{revocation}/_control/state") as response:
            after = (await response.json())["requests"]
    finally:
        await runner.cleanup()
    assert first.ok and second.ok
    assert after == before, "the second check must be served from the OCSP cache"
