"""The E-licensing service through the gateway: SOAP connector, the provider's regulated steps in the cabinet,
the provider-signed certificate or reasoned refusal checked before it reaches the applicant; and the
operator's dead-letter replay for queued work."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from lxml import etree

from mocks.backoffice.worker import CommissionDesk, WorkerSettings
from mocks.elicense.steps import STEPS
from mocks.portal.applicant import ELICENSE_SERVICE, FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE, signed_application
from mocks.portal.shep_client import SyncChannelClient
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    OPERATOR,
    OPERATOR_PASSWORD,
    cabinet_item,
    message_id,
    second_gateway,
    send_soap,
    system_signer,
    trusting_verifier,
)

RESULT_NS = "urn:egov:elicense:cultural-export-result:v1"


async def test_certificate_issued_after_the_regulated_steps(gw, shep, http) -> None:
    daniyar = gw.pki.person("daniyar")
    mid = message_id()
    result = await send_soap(shep, signed_application(daniyar, ELICENSE_SERVICE), service_id=ELICENSE_SERVICE,
                             message_id=mid)
    assert result.ok, result
    assert etree.QName(result.document).localname == "Receipt"  # accepted now, the certificate comes later

    item = await cabinet_item(gw, http, daniyar.iin, mid)
    assert item["status"] == "completed", item
    steps = [event["step"] for event in item["history"] if event.get("step")]
    assert steps == [step.code for step in STEPS], "every regulated step appears, in order"
    assert any("registered by the provider" in event["note"] for event in item["history"])
    certificate = etree.fromstring(item["result"].encode())
    verified = trusting_verifier(gw.pki).verify(certificate)
    assert verified.identity.common_name == "elicense"  # the provider's signature, checked by the gateway
    assert verified.signed.findtext(f"{{{RESULT_NS}}}outcome") == "issued"


async def test_reasoned_refusal_is_signed_by_the_provider(gw, shep, http) -> None:
    saule = gw.pki.person("saule")
    mid = message_id()
    document = signed_application(saule, ELICENSE_SERVICE, items="treasure")
    result = await send_soap(shep, document, service_id=ELICENSE_SERVICE, message_id=mid)
    assert result.ok, result
    item = await cabinet_item(gw, http, saule.iin, mid)
    assert item["status"] == "refused", item
    refusal = trusting_verifier(gw.pki).verify(etree.fromstring(item["result"].encode())).signed
    assert refusal.findtext(f"{{{RESULT_NS}}}outcome") == "refused"
    assert refusal.findtext(f"{{{RESULT_NS}}}refusal/{{{RESULT_NS}}}step") == "head-signed"


async def test_provider_down_at_submission_is_retried(gw, shep, http) -> None:
    async with http.post(f"{gw.elicense_url}/_control/fail", json={"status": 503, "count": 2}):
        pass
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    assert (await send_soap(shep, signed_application(aigerim, ELICENSE_SERVICE), service_id=ELICENSE_SERVICE,
                            message_id=mid)).ok
    item = await cabinet_item(gw, http, aigerim.iin, mid)
    assert item["status"] == "completed", item
    assert any("back-end unavailable" in event["note"] for event in item["history"])


async def test_dead_lettered_job_is_replayed_by_an_operator(gw, shep, http) -> None:
    """A desk that keeps dying: after max_attempts the job is dead-lettered and the application stopped; the
    operator lists it and replays it; a working desk then finishes it."""

    head = gw.pki.person("murager-head")
    mid = message_id()
    assert (await send_soap(shep, signed_application(head, FUND_SUBMISSION_SERVICE),
                            service_id=FUND_SUBMISSION_SERVICE, message_id=mid)).ok
    auth = {"Authorization": aiohttp.encode_basic_auth(DESK, DESK_PASSWORD)}
    claim = f"{gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/claim"
    for attempt in range(3):  # claim and "die" each time; the visibility timeout is 0.4 s in the tests
        deadline = time.monotonic() + 5
        while True:
            async with http.post(claim, params={"worker": f"dying-{attempt}", "wait": "1"}, headers=auth) as response:
                if response.status == 200:
                    job = await response.json()
                    break
            assert time.monotonic() < deadline, "no job to claim"
        assert job["attempt"] == attempt + 1
        await asyncio.sleep(0.45)
    async with http.post(claim, params={"worker": "late", "wait": "0"}, headers=auth) as response:
        assert response.status == 204, "the job is dead-lettered, not handed out a fourth time"
    item = await cabinet_item(gw, http, head.bin, mid)
    assert item["status"] == "stopped"

    operator = {"Authorization": aiohttp.encode_basic_auth(OPERATOR, OPERATOR_PASSWORD)}
    async with http.get(f"{gw.url}/api/v1/admin/dead-letters", headers=operator) as response:
        dead = [d for d in (await response.json())["deadLetters"] if d["sessionId"] == item["sessionId"]]
    assert len(dead) == 1 and dead[0]["attempts"] == 3
    async with http.get(f"{gw.url}/api/v1/admin/dead-letters", headers=gw.auth()) as response:
        assert (await response.json(content_type=None))["code"] == "CLIENT_ACCESS_DENIED"
    async with http.post(f"{gw.url}/api/v1/admin/dead-letters/{FUND_SUBMISSION_SERVICE}/{dead[0]['deadId']}/replay",
                         headers=operator) as response:
        assert response.status == 200

    desk = CommissionDesk(WorkerSettings(gateway_url=gw.url, library_url=gw.library_url, sender=DESK,
                                         password=DESK_PASSWORD, poll_wait=2))
    async with desk:
        assert await desk.run_once()
    item = await cabinet_item(gw, http, head.bin, mid)
    assert item["status"] == "completed", item
    assert any("replayed by an operator" in event["note"] for event in item["history"])


async def test_answer_signed_by_someone_else_is_refused(gw, shep, http) -> None:
    """A trusted key is not enough: the commission's decision must be signed by the library itself."""

    head = gw.pki.person("kitap-signer")
    mid = message_id()
    assert (await send_soap(shep, signed_application(head, FUND_SUBMISSION_SERVICE),
                            service_id=FUND_SUBMISSION_SERVICE, message_id=mid)).ok
    auth = {"Authorization": aiohttp.encode_basic_auth(DESK, DESK_PASSWORD)}
    async with http.post(f"{gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/claim",
                         params={"worker": "forger", "wait": "5"}, headers=auth) as response:
        job = await response.json()
    forged = etree.fromstring(b'<d:FundDecision xmlns:d="urn:egov:kazneb:fund-decision:v1"/>')
    signed = system_signer(gw.pki, "elicense").sign_bytes(forged).decode()  # trusted CA, wrong organisation
    async with http.post(f"{gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/{job['entryId']}/result",
                         params={"worker": "forger"}, headers={**auth, "X-Lease-Token": job["leaseToken"]},
                         json={"outcome": "completed", "document": signed}) as response:
        body = await response.json(content_type=None)
    assert body["code"] == "PROVIDER_SIGNATURE_INVALID"
    item = await cabinet_item(gw, http, head.bin, mid)
    assert item["status"] == "failed"
    assert item["errorCode"] == "PROVIDER_SIGNATURE_INVALID"
    assert not item["result"]


async def test_a_long_poll_outlasts_the_ordinary_redis_timeout(gw, http) -> None:
    """A desk may wait up to 25 s for a job; an empty 6 s poll ends in 204, not in a storage error."""

    auth = {"Authorization": aiohttp.encode_basic_auth(DESK, DESK_PASSWORD)}
    started = time.monotonic()
    async with http.post(f"{gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/claim",
                         params={"worker": "patient", "wait": "6"}, headers=auth) as response:
        assert response.status == 204, await response.text()
    assert time.monotonic() - started >= 5.5


async def test_a_worker_killed_holding_a_job_another_desk_finishes_it(gw, shep, http) -> None:
    """Desk A takes the job and dies; after the visibility timeout desk B gets it (attempt 2) and completes it."""

    head = gw.pki.person("murager-signer")
    mid = message_id()
    assert (await send_soap(shep, signed_application(head, FUND_SUBMISSION_SERVICE),
                            service_id=FUND_SUBMISSION_SERVICE, message_id=mid)).ok
    auth = {"Authorization": aiohttp.encode_basic_auth(DESK, DESK_PASSWORD)}
    async with http.post(f"{gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/claim",
                         params={"worker": "desk-a", "wait": "5"}, headers=auth) as response:
        assert (await response.json())["attempt"] == 1
    # desk A is gone; desk B asks and is handed the same job once it has been idle past the timeout
    desk_b = CommissionDesk(WorkerSettings(gateway_url=gw.url, library_url=gw.library_url, sender=DESK,
                                           password=DESK_PASSWORD, worker_name="desk-b", poll_wait=2))
    async with desk_b:
        deadline = time.monotonic() + 5
        while not await desk_b.run_once():
            assert time.monotonic() < deadline
    item = await cabinet_item(gw, http, head.bin, mid)
    assert item["status"] == "completed"
    notes = [event["note"] for event in item["history"]]
    assert any("desk-a" in note for note in notes) and any("(desk-b), attempt 2" in note for note in notes)


async def test_message_id_is_remembered_across_a_gateway_restart(system, shep, http, tmp_path) -> None:
    """The first answer lives in Redis: a new gateway process gives it again, without calling the back-end."""

    aigerim = system.pki.person("aigerim")
    mid = message_id()
    document = signed_application(aigerim, READER_TICKET_SERVICE)  # the repeat sends the same document
    first = await send_soap(shep, document, message_id=mid)
    assert first.ok
    calls = system.library_calls
    runner, url = await second_gateway(system, tmp_path)
    try:
        client = await asyncio.to_thread(SyncChannelClient, f"{url}/shep/sync?wsdl")
        again = await send_soap(client, document, message_id=mid)
    finally:
        await runner.cleanup()
    assert again.ok and again.session_id == first.session_id
    assert etree.tostring(again.document) == etree.tostring(first.document)
    assert system.library_calls == calls


async def test_a_manual_desk_keeps_its_job_while_a_person_decides(gw, shep, http) -> None:
    """Far beyond the 0.4 s visibility timeout the job stays with the manual desk (heartbeats); then a person
    approves it and the decision arrives."""
    head = gw.pki.person("murager-head")
    mid = message_id()
    assert (await send_soap(shep, signed_application(head, FUND_SUBMISSION_SERVICE),
                            service_id=FUND_SUBMISSION_SERVICE, message_id=mid)).ok
    desk = CommissionDesk(WorkerSettings(gateway_url=gw.url, library_url=gw.library_url, sender=DESK,
                                         password=DESK_PASSWORD, worker_name="person-desk", manual=True,
                                         poll_wait=5))
    auth = {"Authorization": aiohttp.encode_basic_auth(DESK, DESK_PASSWORD)}
    async with desk:
        assert await desk.run_once()
        [pending] = desk.pending()
        for _ in range(4):  # 1.2 s of deliberation
            await asyncio.sleep(0.3)
            await desk.keep_pending()
            async with http.post(f"{gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/claim",
                                 params={"worker": "eager", "wait": "0"}, headers=auth) as response:
                assert response.status == 204, "the job stays with the desk that is still working on it"
        await desk.decide(pending.job.entry_id, "include", "the commission approves")
    item = await cabinet_item(gw, http, head.bin, mid)
    assert item["status"] == "completed"
    assert not any("attempt 2" in event["note"] for event in item["history"])


async def test_job_api_refusals_have_their_codes(gw, shep, http) -> None:
    head = gw.pki.person("kitap-head")
    assert (await send_soap(shep, signed_application(head, FUND_SUBMISSION_SERVICE),
                            service_id=FUND_SUBMISSION_SERVICE, message_id=message_id())).ok
    auth = {"Authorization": aiohttp.encode_basic_auth(DESK, DESK_PASSWORD)}
    base = f"{gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}"
    async with http.post(f"{base}/claim", params={"worker": "w1", "wait": "5"}, headers=auth) as response:
        job = await response.json()
    entry = job["entryId"]
    held = {**auth, "X-Lease-Token": job["leaseToken"]}
    async with http.post(f"{base}/{entry}/keep", params={"worker": "someone-else"}, headers=held) as response:
        assert (await response.json(content_type=None))["code"] == "CLIENT_JOB_NOT_HELD"
    async with http.post(f"{base}/0-1/progress", json={"step": "x"}, headers=auth) as response:
        assert (await response.json(content_type=None))["code"] == "CLIENT_JOB_NOT_FOUND"
    async with http.post(f"{base}/{entry}/result", json={"outcome": "maybe"}, headers=auth) as response:
        assert (await response.json(content_type=None))["code"] == "CLIENT_ENVELOPE_INVALID"
    async with http.post(f"{gw.url}/api/v1/jobs/kazneb.reader-ticket/claim", headers=auth) as response:
        assert (await response.json(content_type=None))["code"] == "CLIENT_ACCESS_DENIED"
    async with http.post(f"{base}/claim", headers=gw.auth()) as response:  # the portal is no desk
        assert (await response.json(content_type=None))["code"] == "CLIENT_ACCESS_DENIED"
    decision = etree.fromstring(b'<d:FundDecision xmlns:d="urn:egov:kazneb:fund-decision:v1"/>')
    signed = system_signer(gw.pki, "elicense").sign_bytes(decision).decode()
    async with http.post(f"{base}/{entry}/result", params={"worker": "w1"}, headers=held,
                         json={"outcome": "completed", "document": signed}):
        pass  # refused (wrong signer): the application has failed and the job is over
    async with http.post(f"{base}/{entry}/progress", json={"step": "late"}, headers=auth) as response:
        assert (await response.json(content_type=None))["code"] == "CLIENT_JOB_FINISHED"
