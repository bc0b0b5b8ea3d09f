"""Issue 11.6: a desk answers only the job it holds, and only with the provider's decision on that application.

Lease tokens (a foreign worker, a stale holder after a reclaim), the provider's own certificate (not a citizen's,
not a revoked one), the decision's reference to its application (the applicant's BIN and the application's id),
and desks' history notes (length-limited, plain text, escaped where the portal shows anything of them).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from lxml import etree, html

from gateway.config import ConfigError, load_settings
from mocks.pki import Person
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, signed_application
from mocks.portal.web import create_portal_app
from signing.signer import DocumentSigner, SigningKey
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    PORTAL,
    PORTAL_PASSWORD,
    GatewayUnderTest,
    assert_problem,
    cabinet_item,
    message_id,
    mock_control,
    portal_login,
    second_gateway,
    send_soap,
    system_signer,
    wait_for,
)

NS = "urn:egov:kazneb:fund-decision:v1"
AUTH = {"Authorization": aiohttp.encode_basic_auth(DESK, DESK_PASSWORD)}


@dataclass
class Claimed:
    """One job claimed through the job API, and the application behind it."""

    base: str
    job: dict[str, Any]
    worker: str
    head: Person
    mid: str

    def url(self, action: str) -> str:
        return f"{self.base}/{self.job['entryId']}/{action}"

    def headers(self, lease: str | None = None) -> dict[str, str]:
        return {**AUTH, "X-Lease-Token": self.job["leaseToken"] if lease is None else lease}


async def submit_and_claim(gw: GatewayUnderTest, shep: Any, http: aiohttp.ClientSession, *, worker: str = "w1",
                           head: str = "murager-head", url: str | None = None) -> Claimed:
    person = gw.pki.person(head)
    mid = message_id()
    assert (await send_soap(shep, signed_application(person, FUND_SUBMISSION_SERVICE),
                            service_id=FUND_SUBMISSION_SERVICE, message_id=mid)).ok
    base = f"{url or gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}"
    async with http.post(f"{base}/claim", params={"worker": worker, "wait": "5"}, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        job = await response.json()
    assert job["leaseToken"] and job["messageId"] == mid
    return Claimed(base, job, worker, person, mid)


def decision(claimed: Claimed, signer: DocumentSigner, **changes: str) -> str:
    """A schema-valid FundDecision (include) for the claimed application, signed by ``signer``."""
    values = {"submissionNumber": "KAZNEB-F-2026-000001", "applicationId": claimed.job["sessionId"],
              "bin": claimed.head.bin or "", **changes}
    root = etree.Element(f"{{{NS}}}FundDecision", nsmap={None: NS})

    def add(parent: etree._Element, name: str, text: str) -> None:
        etree.SubElement(parent, f"{{{NS}}}{name}").text = text

    for name in ("submissionNumber", "applicationId", "bin"):
        if values[name]:  # "" leaves the element out
            add(root, name, values[name])
    add(root, "participantName", "Museum")
    add(root, "decision", "include")
    commission = etree.SubElement(root, f"{{{NS}}}commission")
    for name, value in (("members", "5"), ("votesFor", "5"), ("votesAgainst", "0")):
        add(commission, name, value)
    add(root, "decidedAt", "2026-03-02T10:00:00+05:00")
    add(root, "inclusionDueBy", "2026-03-16")
    item = etree.SubElement(etree.SubElement(root, f"{{{NS}}}objects"), f"{{{NS}}}object")
    add(item, "title", "Өлке тарихы")
    add(item, "status", "included")
    return signer.sign_bytes(root).decode()


async def post(http: aiohttp.ClientSession, claimed: Claimed, action: str, body: dict[str, Any], *,
               worker: str | None = None, lease: str | None = None) -> aiohttp.ClientResponse:
    async with http.post(claimed.url(action), params={"worker": worker or claimed.worker}, json=body,
                         headers=claimed.headers(lease)) as response:
        await response.read()
        return response


async def history_notes(gw: GatewayUnderTest, http: aiohttp.ClientSession, claimed: Claimed) -> list[str]:
    item = await cabinet_item(gw, http, claimed.head.bin or "", claimed.mid, final=False)
    return [event["note"] for event in item["history"]]


# ------------------------------------------------------------------------------------------ lease tokens

@pytest.mark.parametrize("entry", ["not-an-id", "1-2-3", "99999999999999999999999-0"])
async def test_a_malformed_job_id_is_no_such_job_never_a_storage_error(gw, http, entry: str) -> None:
    bodies = {"progress": {"step": "registered"}, "result": {"outcome": "completed", "document": "<d/>"},
              "fail": {}, "keep": {}}
    for action, body in bodies.items():
        async with http.post(f"{gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/{entry}/{action}", json=body,
                             params={"worker": "w1"}, headers=AUTH) as response:
            await assert_problem(response, 404, "CLIENT_JOB_NOT_FOUND")


async def test_a_worker_that_does_not_hold_the_job_is_refused(gw, shep, http) -> None:
    claimed = await submit_and_claim(gw, shep, http)
    library = system_signer(gw.pki, "library")
    cases = [("someone-else", None), (claimed.worker, ""), (claimed.worker, "guessed-token")]
    for worker, lease in cases:
        response = await post(http, claimed, "progress", {"step": "registered", "note": "forged"},
                              worker=worker, lease=lease)
        await assert_problem(response, 409, "CLIENT_JOB_NOT_HELD")
        response = await post(http, claimed, "result", {"outcome": "completed",
                                                        "document": decision(claimed, library)},
                              worker=worker, lease=lease)
        await assert_problem(response, 409, "CLIENT_JOB_NOT_HELD")
        await assert_problem(await post(http, claimed, "fail", {"reason": "x"}, worker=worker, lease=lease),
                             409, "CLIENT_JOB_NOT_HELD")
        await assert_problem(await post(http, claimed, "keep", {}, worker=worker, lease=lease),
                             409, "CLIENT_JOB_NOT_HELD")
    assert "forged" not in await history_notes(gw, http, claimed)
    item = await cabinet_item(gw, http, claimed.head.bin or "", claimed.mid, final=False)
    assert item["status"] in ("routed", "in_progress") and not item["result"]  # (the loop may route it after)

    response = await post(http, claimed, "result", {"outcome": "completed", "document": decision(claimed, library)})
    assert response.status == 200
    assert (await cabinet_item(gw, http, claimed.head.bin or "", claimed.mid))["status"] == "completed"


async def test_a_stale_holder_is_refused_after_another_desk_reclaimed_the_job(gw, shep, http) -> None:
    """Desk w1 stalls past the visibility timeout (0.4 s in the tests); w1 itself reclaiming gets a new token."""
    stale = await submit_and_claim(gw, shep, http, worker="w1")

    async def reclaim() -> dict[str, Any] | None:
        async with http.post(f"{stale.base}/claim", params={"worker": "w1", "wait": "0"}, headers=AUTH) as response:
            return await response.json() if response.status == 200 else None

    job = await wait_for(reclaim, seconds=5)
    assert job["entryId"] == stale.job["entryId"] and job["attempt"] == 2
    assert job["leaseToken"] != stale.job["leaseToken"]
    fresh = Claimed(stale.base, job, "w1", stale.head, stale.mid)
    library = system_signer(gw.pki, "library")
    for action, body in (("progress", {"step": "registered"}), ("keep", {}), ("fail", {"reason": "late"}),
                         ("result", {"outcome": "completed", "document": decision(stale, library)})):
        await assert_problem(await post(http, stale, action, body), 409, "CLIENT_JOB_NOT_HELD")
    assert (await post(http, fresh, "progress", {"step": "registered", "note": "still mine"})).status == 200
    assert (await post(http, fresh, "result", {"outcome": "completed",
                                                 "document": decision(fresh, library)})).status == 200


# -------------------------------------------------------------------------------- the provider's decision

def test_a_provider_signed_service_must_name_its_provider(tmp_path: Path) -> None:
    service = '[services.x]\nconnector = "queue"\nmode = "async"\nprovider_signature = "required"\n'
    for extra, key in (("", "provider_bin"), ('provider_bin = "12345"\n', "provider_bin"),
                       ('provider_bin = "100940041028"\nresult_reference_element = "a b"\n',
                        "result_reference_element")):
        path = tmp_path / "gateway.toml"
        path.write_text(service + extra, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_settings(path)
        assert str(caught.value).startswith(f"services.x.{key}:"), caught.value
    path.write_text(service + 'provider_bin = "100940041028"\n', encoding="utf-8")
    assert load_settings(path).services["x"].provider_bin == "100940041028"


async def test_a_decision_signed_with_a_citizens_key_is_refused(gw, shep, http) -> None:
    claimed = await submit_and_claim(gw, shep, http)
    citizen = gw.pki.person("daniyar").sign
    forged = decision(claimed, DocumentSigner(SigningKey.from_pem(citizen.cert, citizen.key)))
    response = await post(http, claimed, "result", {"outcome": "completed", "document": forged})
    problem = await assert_problem(response, 502, "PROVIDER_SIGNATURE_INVALID")
    assert "not by the provider" in problem["detail"]
    item = await cabinet_item(gw, http, claimed.head.bin or "", claimed.mid)
    assert item["errorCode"] == "PROVIDER_SIGNATURE_INVALID" and not item["result"]


@pytest.mark.parametrize("changes", [
    {"bin": "999999999999"},  # the library's genuine decision, for another participant
    {"applicationId": "{" + str(uuid.uuid4()) + "}"},  # for another application of the same participant
    {"applicationId": ""},
], ids=["another BIN", "another application", "no application"])
async def test_a_decision_for_another_applicant_or_application_is_refused(gw, shep, http, changes) -> None:
    claimed = await submit_and_claim(gw, shep, http)
    document = decision(claimed, system_signer(gw.pki, "library"), **changes)
    response = await post(http, claimed, "result", {"outcome": "completed", "document": document})
    await assert_problem(response, 502, "PROVIDER_RESULT_MISMATCH")
    item = await cabinet_item(gw, http, claimed.head.bin or "", claimed.mid)
    assert item["status"] == "failed" and item["errorCode"] == "PROVIDER_RESULT_MISMATCH" and not item["result"]


async def test_a_decision_naming_the_message_id_is_accepted(gw, shep, http) -> None:
    claimed = await submit_and_claim(gw, shep, http)
    document = decision(claimed, system_signer(gw.pki, "library"), applicationId=claimed.mid)
    assert (await post(http, claimed, "result", {"outcome": "completed", "document": document})).status == 200


@pytest_asyncio.fixture
async def revocation(gw: GatewayUnderTest, http: aiohttp.ClientSession) -> AsyncIterator[str]:
    """The session's OCSP/CRL service, reset before and after the test."""
    await mock_control(http, gw.revocation_url, "reset")
    yield gw.revocation_url
    await mock_control(http, gw.revocation_url, "reset")


async def test_a_revoked_provider_certificate_is_refused(gw, shep, http, revocation, tmp_path) -> None:
    """Through a gateway of its own, so no OCSP answer about the library is cached yet."""
    runner, url = await second_gateway(gw, tmp_path)
    try:
        claimed = await submit_and_claim(gw, shep, http, url=url)
        serial = format(gw.pki.systems["library"].load_certificate().serial_number, "x")
        await mock_control(http, revocation, "revoke", {"serial": serial, "reason": "key_compromise"})
        body = {"outcome": "completed", "document": decision(claimed, system_signer(gw.pki, "library"))}
        problem = await assert_problem(await post(http, claimed, "result", body), 502, "PROVIDER_SIGNATURE_INVALID")
        assert "revoked" in problem["detail"]
    finally:
        await runner.cleanup()
    item = await cabinet_item(gw, http, claimed.head.bin or "", claimed.mid)
    assert item["errorCode"] == "PROVIDER_SIGNATURE_INVALID" and not item["result"]


async def test_an_unknown_revocation_status_is_checked_again_later(gw, shep, http, revocation, tmp_path) -> None:
    """OCSP and CRL unreachable (hard-fail): 503, the job stays with the desk and the application is not failed;
    the desk posts the same decision again once they answer."""
    runner, url = await second_gateway(gw, tmp_path)
    try:
        claimed = await submit_and_claim(gw, shep, http, url=url)
        await mock_control(http, revocation, "ocsp", {"down": True})
        await mock_control(http, revocation, "crl", {"down": True})
        body = {"outcome": "completed", "document": decision(claimed, system_signer(gw.pki, "library"))}
        await assert_problem(await post(http, claimed, "result", body), 503, "PROVIDER_SIGNATURE_UNCHECKED")
        item = await cabinet_item(gw, http, claimed.head.bin or "", claimed.mid, final=False)
        assert item["status"] in ("routed", "in_progress") and not item["result"]
        await mock_control(http, revocation, "reset")
        assert (await post(http, claimed, "result", body)).status == 200
    finally:
        await runner.cleanup()
    assert (await cabinet_item(gw, http, claimed.head.bin or "", claimed.mid))["status"] == "completed"


# ------------------------------------------------------------------------------------------------ notes

async def test_an_over_long_or_binary_note_is_refused(gw, shep, http) -> None:
    claimed = await submit_and_claim(gw, shep, http)
    for body in ({"step": "registered", "note": "x" * 501}, {"step": "registered", "note": "a\nb"},
                 {"step": "<b>registered</b>"}, {"step": "x" * 61}, {"step": "ok", "note": 5}):
        await assert_problem(await post(http, claimed, "progress", body), 400, "CLIENT_ENVELOPE_INVALID")
    await assert_problem(await post(http, claimed, "fail", {"reason": "r" * 501}), 400, "CLIENT_ENVELOPE_INVALID")
    assert (await post(http, claimed, "progress", {"step": "registered", "note": "y" * 500})).status == 200
    notes = await history_notes(gw, http, claimed)
    assert "y" * 500 in notes and not any(note.startswith("x" * 100) for note in notes)


async def test_a_note_with_markup_is_stored_as_text_and_never_rendered(gw, shep, http, aiohttp_client) -> None:
    claimed = await submit_and_claim(gw, shep, http)
    markup = '<img src=x onerror="alert(1)"> & <script>alert(2)</script>'
    assert (await post(http, claimed, "progress", {"step": "registered", "note": markup})).status == 200
    assert markup in await history_notes(gw, http, claimed)  # the cabinet API: a JSON string, as sent

    portal = await aiohttp_client(create_portal_app(pki=gw.pki, gateway_url=gw.url, sender=PORTAL,
                                                    password=PORTAL_PASSWORD))
    await portal_login(portal, claimed.head.handle)
    response = await portal.get(f"/cabinet/{claimed.head.bin}/{claimed.mid}", allow_redirects=False)
    assert response.status == 200, "the application's page itself, not the sign-in page"
    text = await response.text()
    assert "<img" not in text and "onerror" not in text and "alert(" not in text
    page = html.fromstring(text)
    assert not page.xpath("//img[@onerror]") and not page.xpath("//script[contains(., 'alert(2)')]")
    steps = [element.get("data-step") for element in page.xpath('//*[@data-testid="timeline-step"]')]
    assert "registered" in steps
