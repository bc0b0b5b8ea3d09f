"""The KazNEB commission's back-office desk against the real gateway and library.

The portal submits a signed fund submission; the gateway queues it for the desk; the desk registers it
with the library, lets the commission decide and answers the library's signed FundDecision, which the
organisation's cabinet then shows.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import pytest
from lxml import etree

from gateway.shell.serve import start_site
from mocks.backoffice import CommissionDesk, WorkerSettings
from mocks.backoffice.cli import control_app
from mocks.backoffice.cli import main as desk_cli
from mocks.backoffice.memory import RedisDeskMemory
from mocks.library import LIBRARY_STATE, build_fund_submission, parse_fund_decision
from mocks.pki import Person
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, signer_for
from mocks.portal.shep_client import SyncChannelClient
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    FINAL,
    GatewayUnderTest,
    cabinet,
    free_port,
    message_id,
    send_soap,
    trusting_verifier,
)


def desk_for(system: GatewayUnderTest, *, manual: bool = False) -> CommissionDesk:
    settings = WorkerSettings(
        gateway_url=system.url, library_url=system.library_url, sender=DESK, password=DESK_PASSWORD,
        worker_name=f"test-desk-{uuid.uuid4().hex[:8]}", manual=manual, poll_wait=1, idle_pause=0.05,
    )
    return CommissionDesk(settings)


def objects(*, protected: bool = False) -> list[dict[str, Any]]:
    """Two fund objects with titles no other test uses (the library refuses a title twice per BIN)."""
    tag = uuid.uuid4().hex[:8]
    items = [
        {"title": f"Ақмола өңірінің тарихы ({tag})", "category": "local-history-literature", "pages": 348,
         "format": "pdf", "access_level": "first-24-pages", "author_agreement": "АК-2025/018"},
        {"title": f"Абай жолы, 1-кітап ({tag})", "category": "copyright-protected-copy", "pages": 420,
         "format": "pdf", "access_level": "open-full-download" if protected else "open-read-only",
         "author_agreement": "АК-2025/019", "author": "Әуезов М. О."},
    ]
    return items


def signed_submission(head: Person, items: list[dict[str, Any]]) -> etree._Element:
    document = build_fund_submission(bin=head.bin or "", participant_name=head.organisation or "",
                                     kind="library", head_name=f"{head.surname} {head.name}", objects=items)
    return signer_for(head).sign(document)


async def submit(shep: SyncChannelClient, document: etree._Element) -> str:
    mid = message_id()
    result = await send_soap(shep, document, service_id=FUND_SUBMISSION_SERVICE, message_id=mid)
    assert result.ok, result
    return mid


async def work_until(desk: CommissionDesk, system: GatewayUnderTest, http: aiohttp.ClientSession, owner: str,
                     mid: str, *, timeout: float = 20) -> dict[str, Any]:
    """Let the desk take jobs (whichever come first) until this application is final."""
    deadline = time.monotonic() + timeout
    while True:
        item = await cabinet(system, http, owner, mid)
        if item["status"] in FINAL:
            return item
        assert time.monotonic() < deadline, f"still {item['status']}: {item['history']}"
        await desk.run_once()


def steps(item: dict[str, Any]) -> list[str]:
    return [event["step"] for event in item["history"] if event.get("step")]


def notes(item: dict[str, Any]) -> str:
    return "\n".join(event.get("note") or "" for event in item["history"])


def verified_decision(system: GatewayUnderTest, item: dict[str, Any]) -> dict[str, Any]:
    """The cabinet's result: the FundDecision as the library signed it."""
    assert item["result"], item
    verified = trusting_verifier(system.pki).verify(etree.fromstring(item["result"].encode()))
    assert verified.report.passed
    assert verified.identity.common_name == "library"
    assert verified.identity.bin == system.pki.system_bins["library"]
    return parse_fund_decision(verified.signed)


async def wait_pending(desk: CommissionDesk, mid: str) -> str:
    """Let the manual desk take jobs until this application waits for a decision; its entry id."""
    deadline = time.monotonic() + 30
    while not (waiting := [p for p in desk.pending() if p.job.message_id == mid]):
        assert time.monotonic() < deadline, desk.pending()
        await desk.run_once()
    return waiting[0].job.entry_id


async def test_automatic_commission_includes_and_the_cabinet_shows_the_signed_decision(system, shep, http) -> None:
    head = system.pki.person("kitap-head")
    items = objects()
    mid = await submit(shep, signed_submission(head, items))
    async with desk_for(system) as desk:
        item = await work_until(desk, system, http, head.bin, mid)

    assert item["status"] == "completed", item
    assert steps(item)[:2] == ["registered", "commission"]
    assert [event["status"] for event in item["history"]][-1] == "completed"
    decision = verified_decision(system, item)
    assert decision["decision"] == "include"
    assert (decision["members"], decision["votes_for"], decision["votes_against"]) == (5, 5, 0)
    assert decision["bin"] == head.bin
    assert decision["inclusion_due_by"] is not None
    assert decision["objects"] == [{"title": i["title"], "status": "included"} for i in items]
    number = decision["submission_number"]
    assert f"registered with KazNEB as {number}" in notes(item)
    assert system.library[LIBRARY_STATE].submissions[number].status == "included"


async def test_a_protected_work_open_for_download_is_refused_with_the_reason(system, shep, http) -> None:
    head = system.pki.person("kitap-head")
    items = objects(protected=True)
    mid = await submit(shep, signed_submission(head, items))
    async with desk_for(system) as desk:
        item = await work_until(desk, system, http, head.bin, mid)

    assert item["status"] == "refused", item
    assert steps(item)[:2] == ["registered", "commission"]
    decision = verified_decision(system, item)
    assert decision["decision"] == "not-include"
    assert (decision["votes_for"], decision["votes_against"]) == (1, 4)
    assert decision["inclusion_due_by"] is None
    assert f"«{items[1]['title']}»" in decision["reason"]
    assert "open-full-download" in decision["reason"] and "copyright" in decision["reason"]
    assert {o["status"] for o in decision["objects"]} == {"not-included"}
    assert "1 for, 4 against" in notes(item)  # the commission step tells the applicant how it went
    assert system.library[LIBRARY_STATE].submissions[decision["submission_number"]].status == "not-included"


async def test_a_person_approves_at_the_manual_desk(system, shep, http) -> None:
    head = system.pki.person("kitap-head")
    mid = await submit(shep, signed_submission(head, objects()))
    async with desk_for(system, manual=True) as desk:
        entry = await wait_pending(desk, mid)
        waiting = next(p for p in desk.pending() if p.job.entry_id == entry)
        assert waiting.suggestion.decision == "include"
        item = await cabinet(system, http, head.bin, mid)
        assert item["status"] not in FINAL
        assert steps(item) == ["registered"]

        with pytest.raises(ValueError, match="reason"):  # a refusal needs a reason; the job stays pending
            await desk.decide(waiting.job.entry_id, "not-include")
        assert await desk.decide(waiting.job.entry_id, "include", "Өлкетану қорына құнды үлес.") == "completed"
        with pytest.raises(KeyError):
            await desk.decide(waiting.job.entry_id, "include")

    item = await cabinet(system, http, head.bin, mid)
    assert item["status"] == "completed"
    assert steps(item) == ["registered", "commission"]
    decision = verified_decision(system, item)
    assert (decision["decision"], decision["votes_for"]) == ("include", 5)
    assert decision["reason"] == "Өлкетану қорына құнды үлес."


async def test_the_command_line_lists_and_refuses_through_the_control_api(system, shep, http, capsys) -> None:
    head = system.pki.person("kitap-head")
    mid = await submit(shep, signed_submission(head, objects(protected=True)))
    async with desk_for(system, manual=True) as desk:
        entry = await wait_pending(desk, mid)
        port = free_port()
        control = await start_site(control_app(desk), "127.0.0.1", port)
        url = f"http://127.0.0.1:{port}"
        try:
            assert await asyncio.to_thread(desk_cli, ["pending", "--control", url]) == 0
            listing = capsys.readouterr().out
            line = next(line for line in listing.splitlines() if line.startswith(entry))
            assert "suggested: not-include (1 for, 4 against)" in line
            assert head.bin not in listing and f"BIN ********{head.bin[-4:]}" in line  # masked
            async with http.get(f"{url}/pending") as response:
                assert [p["bin"] for p in (await response.json())["pending"] if p["entryId"] == entry] == [
                    f"********{head.bin[-4:]}"]

            refuse = ["refuse", entry, "--votes-for", "2", "--reason", "Авторлық шарт толық жүктеуге рұқсат бермейді.",
                      "--control", url]
            assert await asyncio.to_thread(desk_cli, ["refuse", entry, "--votes-for", "3", "--reason", "x",
                                                      "--control", url]) == 1
            assert "majority" in capsys.readouterr().err
            assert await asyncio.to_thread(desk_cli, refuse) == 0
            assert capsys.readouterr().out.strip() == f"{entry}: not-include recorded; the application is refused"
            assert await asyncio.to_thread(desk_cli, refuse) == 1
            assert "no job" in capsys.readouterr().err
        finally:
            await control.cleanup()

    item = await cabinet(system, http, head.bin, mid)
    assert item["status"] == "refused"
    decision = verified_decision(system, item)
    assert (decision["decision"], decision["votes_for"], decision["votes_against"]) == ("not-include", 2, 3)
    assert decision["reason"] == "Авторлық шарт толық жүктеуге рұқсат бермейді."


async def test_a_duplicate_submission_fails_the_job_instead_of_refusing(system, shep, http) -> None:
    head = system.pki.person("kitap-head")
    items = objects()
    first = await submit(shep, signed_submission(head, items))
    second = await submit(shep, signed_submission(head, items))  # same titles, new application
    async with desk_for(system) as desk:
        assert (await work_until(desk, system, http, head.bin, first))["status"] == "completed"
        item = await work_until(desk, system, http, head.bin, second)

    # No signed decision exists for the duplicate, so it cannot be refused: every attempt failed, and the
    # gateway gave it up for an operator (dead letter).
    assert item["status"] == "stopped", item
    assert not item["result"]
    assert "LIB_DUPLICATE_OBJECT" in notes(item)
    assert "commission" not in steps(item)
    titles = [o.title for s in system.library[LIBRARY_STATE].submissions.values() for o in s.objects]
    assert titles.count(items[0]["title"]) == 1


async def test_a_library_outage_fails_one_attempt_and_the_next_one_completes(system, shep, http) -> None:
    head = system.pki.person("kitap-head")
    mid = await submit(shep, signed_submission(head, objects()))
    async with http.post(f"{system.library_url}/_control/fail", json={"status": 503, "count": 1}) as answer:
        assert answer.status == 200
    async with desk_for(system) as desk:
        item = await work_until(desk, system, http, head.bin, mid)
    assert item["status"] == "completed", item
    assert "LIB_INJECTED_FAULT" in notes(item)
    assert verified_decision(system, item)["decision"] == "include"


async def test_a_fresh_desk_resumes_from_the_progress_kept_in_redis(system, shep, http) -> None:
    """A manual desk registers the submission and is abandoned while a person would decide; a fresh automatic desk
    with the same Redis takes the reclaimed job, knows the submission number and does not register it again."""
    head = system.pki.person("kitap-head")
    mid = await submit(shep, signed_submission(head, objects()))
    prefix = f"desk-test-{uuid.uuid4().hex[:8]}"
    state = system.library[LIBRARY_STATE]

    def desk(manual: bool) -> CommissionDesk:
        settings = WorkerSettings(gateway_url=system.url, library_url=system.library_url, sender=DESK,
                                  password=DESK_PASSWORD, worker_name=f"resume-{uuid.uuid4().hex[:8]}",
                                  manual=manual, poll_wait=1, idle_pause=0.05)
        return CommissionDesk(settings, progress=RedisDeskMemory(system.redis, prefix))

    async with desk(manual=True) as first:
        await wait_pending(first, mid)
    memories = [key async for key in system.redis.scan_iter(match=f"{prefix}:*")]
    assert len(memories) == 1, "the registration is remembered in Redis"
    async with desk(manual=False) as second:
        item = await work_until(second, system, http, head.bin, mid)
    assert item["status"] == "completed", item
    assert steps(item).count("registered") == 1, "the fresh desk resumed after the registration"
    numbers = [n for n, sub in state.submissions.items() if sub.application_id == item["sessionId"]]
    assert len(numbers) == 1, "registered once at the library"
    assert [key async for key in system.redis.scan_iter(match=f"{prefix}:*")] == [], "forgotten once done"
