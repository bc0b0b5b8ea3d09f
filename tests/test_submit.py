"""`egov-gateway submit` against the running test gateway, in its own process: one exit code per outcome, the
result printed as tables, and the README's dead-letter recipe (the library failing until the job is dead-lettered,
then `dlq list` and `dlq replay`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.parse
import uuid

import pytest

from mocks.backoffice.worker import CommissionDesk, WorkerSettings
from mocks.portal.applicant import ELICENSE_SERVICE, FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE
from mocks.world.submit import Exit, render_fields
from tests.helpers import (
    CLI,
    DESK,
    DESK_PASSWORD,
    OPERATOR,
    OPERATOR_PASSWORD,
    PORTAL,
    PORTAL_PASSWORD,
    ROOT,
    GatewayUnderTest,
    cabinet_item,
    free_port,
    mock_control,
)


async def run(system: GatewayUnderTest, *args: str, gateway: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command in its own process (the gateway keeps serving in this event loop meanwhile)."""
    return await asyncio.to_thread(subprocess.run, [
        *CLI, *args, "--gateway", gateway or system.url, "--state-dir", str(system.pki.root.parent),
    ] if args[0] == "submit" else [*CLI, *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "EGOV_SENDER_PASSWORD": PORTAL_PASSWORD})


def submit(*args: str) -> tuple[str, ...]:
    return ("submit", "--sender", PORTAL, *args)


async def test_a_completed_application_is_exit_0_and_its_result_a_table(gw: GatewayUnderTest) -> None:
    done = await run(gw, *submit("--as", "aigerim", "--service", READER_TICKET_SERVICE))
    assert done.returncode == Exit.COMPLETED, done.stdout + done.stderr
    assert "TOTAL_PASSED" in done.stdout
    lines = done.stdout.splitlines()
    assert "result:" in lines and any(line.split() == ["document", "ReaderTicket"] for line in lines)


@pytest.mark.parametrize(("args", "code"), [
    (("--as", "expired"), Exit.REJECTED),
    (("--as", "saule", "--service", ELICENSE_SERVICE, "--items", "treasure", "--wait"), Exit.REFUSED),
    (("--as", "daniyar", "--service", ELICENSE_SERVICE), Exit.ACCEPTED),
    (("--as", "kitap-head", "--service", FUND_SUBMISSION_SERVICE, "--wait", "--timeout", "1"), Exit.TIMEOUT),
    (("--as", "nobody"), Exit.USAGE),
], ids=["rejected", "refused", "accepted", "timeout", "usage"])
async def test_each_outcome_has_its_exit_code(gw: GatewayUnderTest, args: tuple[str, ...], code: Exit) -> None:
    done = await run(gw, *submit(*args))  # no desk runs: the fund submission waits in its queue
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


async def test_a_reused_message_id_resends_the_same_document_and_gets_the_first_answer(gw: GatewayUnderTest) -> None:
    """The README's `--message-id m-1` twice: the portal retrying, not a new document (CLIENT_DUPLICATE_MISMATCH)."""
    message_id = f"readme-{uuid.uuid4()}"
    first, again = [await run(gw, *submit("--as", "aigerim", "--message-id", message_id, "--json")) for _ in "12"]
    assert first.returncode == again.returncode == Exit.COMPLETED, first.stdout + again.stdout + again.stderr
    assert json.loads(first.stdout)["sessionId"] == json.loads(again.stdout)["sessionId"]
    other = await run(gw, *submit("--as", "saule", "--message-id", message_id, "--json"))
    assert other.returncode == Exit.REJECTED and json.loads(other.stdout)["status"] == "CLIENT_DUPLICATE_MISMATCH"


async def test_an_unreachable_gateway_is_its_own_exit_code(gw: GatewayUnderTest) -> None:
    done = await run(gw, *submit("--as", "aigerim"), gateway=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == Exit.UNREACHABLE
    assert "cannot load the gateway's WSDL" in done.stderr


async def test_a_refusal_shows_its_steps_as_a_table(gw: GatewayUnderTest) -> None:
    done = await run(gw, *submit("--as", "saule", "--service", ELICENSE_SERVICE, "--items", "treasure", "--wait"))
    assert done.returncode == Exit.REFUSED, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split() == ["applicationStatus", "refused"] for line in lines)
    assert any(line.split() == ["outcome", "refused"] for line in lines)
    assert not any(line.strip().startswith(("steps ", "refusal ")) for line in lines), "no one-line blobs"


def test_nested_fields_print_as_aligned_tables() -> None:
    fields = {"document": "FundDecision", "commission": {"members": "5", "votesFor": "5", "votesAgainst": "0"},
              "objects": {"object": [{"title": "Қолжазба", "status": "included"},
                                     {"title": "Очерк", "status": "not-included"}]}}
    assert render_fields(fields, indent=2) == [
        "  document           FundDecision",
        "  commission:",
        "    members  votesFor  votesAgainst",
        "    5        5         0",
        "  objects:",
        "    title     status",
        "    Қолжазба  included",
        "    Очерк     not-included",
    ]


async def test_json_output_is_compact_for_a_pipe_and_keeps_real_names(gw: GatewayUnderTest) -> None:
    done = await run(gw, *submit("--as", "aigerim", "--json"))
    assert done.returncode == Exit.COMPLETED, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1, "one JSON line when stdout is not a terminal"
    outcome = json.loads(done.stdout)
    assert outcome["signer"] == "ЖАКСЫБЕКОВА АЙГЕРИМ" and "\\u" not in done.stdout


async def test_the_readme_dead_letter_recipe(gw: GatewayUnderTest, http) -> None:
    """The library fails while the commission desk works: each attempt fails the job, the last one dead-letters
    it and the application is stopped (exit 4); `dlq list` shows it, `dlq replay --session` and the desk finish it."""
    max_attempts = gw.settings.queue.max_attempts
    await mock_control(http, gw.library_url, "fail", {"status": 503, "count": max_attempts})
    desk = CommissionDesk(WorkerSettings(gateway_url=gw.url, library_url=gw.library_url, sender=DESK,
                                         password=DESK_PASSWORD, poll_wait=1))
    stop = asyncio.Event()
    operator = {"EGOV_OPERATOR": OPERATOR, "EGOV_OPERATOR_PASSWORD": OPERATOR_PASSWORD}
    async with desk:
        working = asyncio.create_task(desk.run_forever(stop))
        try:
            stopped = await run(gw, *submit("--as", "kitap-head", "--service", FUND_SUBMISSION_SERVICE, "--wait",
                                            "--timeout", "60", "--message-id", "recipe-1"))
            assert stopped.returncode == Exit.FAILED, stopped.stdout + stopped.stderr
            assert any(line.split() == ["applicationStatus", "stopped"] for line in stopped.stdout.splitlines())
            listing = await asyncio.to_thread(subprocess.run, [*CLI, "dlq", "--gateway", gw.url, "list"],
                                              capture_output=True, text=True, timeout=60,
                                              env={**os.environ, **operator})
            assert listing.returncode == 0, listing.stdout + listing.stderr
            assert FUND_SUBMISSION_SERVICE in listing.stdout
            head = gw.pki.person("kitap-head")
            item = await cabinet_item(gw, http, str(head.bin), urllib.parse.quote("recipe-1"))
            assert item["sessionId"] in listing.stdout
            replay = await asyncio.to_thread(
                subprocess.run, [*CLI, "dlq", "--gateway", gw.url, "replay", "--session", item["sessionId"]],
                capture_output=True, text=True, timeout=60, env={**os.environ, **operator})
            assert replay.returncode == 0, replay.stdout + replay.stderr
            after = await asyncio.to_thread(subprocess.run, [*CLI, "dlq", "--gateway", gw.url, "list"],
                                            capture_output=True, text=True, timeout=60, env={**os.environ, **operator})
            assert item["sessionId"] not in after.stdout, "its dead letter went with the replay (never queued twice)"
            item = await cabinet_item(gw, http, str(head.bin), "recipe-1", seconds=30)
        finally:
            stop.set()
            await working
    assert item["status"] == "completed", item["history"]
