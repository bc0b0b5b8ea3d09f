"""`egov-gateway submit --scenario FILE`: the file's checks, and whole runs against the real gateway."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from gateway.shell.cli import main
from mocks.backoffice.worker import CommissionDesk, WorkerSettings
from mocks.world.scenario import Case, CaseResult, Progress, outcome_of, report
from tests.helpers import CLI, DESK, DESK_PASSWORD, PORTAL, PORTAL_PASSWORD, ROOT, GatewayUnderTest

SMOKE = ROOT / "scenarios" / "smoke.toml"

GOOD = '[[case]]\nname = "ticket"\nas = "aigerim"\nservice = "kazneb.reader-ticket"\nexpect = "completed"\n'


@pytest.mark.parametrize(("toml", "message"), [
    (GOOD * 2 + '[[case]]\nname = "auth key"\nas = "aigerim"\nservice = "kazneb.reader-ticket"\nexpct = "x"\n',
     """case 3 ("auth key"): unknown key 'expct' (did you mean 'expect'?)"""),
    ('[[case]]\nname = "no expectation"\nas = "aigerim"\nservice = "kazneb.reader-ticket"\n',
     """case 1 ("no expectation"): missing key 'expect'"""),
    ('[[case]]\nas = "aigerim"\nservice = "kazneb.reader-ticket"\nexpect = "completed"\n',
     "case 1: missing key 'name'"),
    (GOOD.replace('expect = "completed"', 'expect = "SIG_NOT_SIGNNG_KEY"'),
     """case 1 ("ticket"): 'expect' must be a status"""),
    (GOOD + 'channel = "fax"\n', """case 1 ("ticket"): 'channel' must be one of sync, async, got 'fax'"""),
    (GOOD + "wait = \"yes\"\n", """case 1 ("ticket"): 'wait' must be a bool, got str 'yes'"""),
    (GOOD.replace("kazneb.reader-ticket", "kazneb.fund-submission") + 'iin_of = "daniyar"\n',
     """case 1 ("ticket"): 'iin_of' does not apply to kazneb.fund-submission"""),
    (GOOD + 'iin_of = "nobody"\n', """case 1 ("ticket"): 'iin_of': no person 'nobody' in the test PKI"""),
    (GOOD.replace("kazneb.reader-ticket", "kazneb.fund-submission") + 'bin_of = "daniyar"\n',
     """case 1 ("ticket"): 'bin_of': 'daniyar' works for no organisation"""),
    ("title = \"x\"\n", "unknown top-level key 'title'"),
    ("", "no cases"),
    ("[[case]\n", "not valid TOML"),
])
def test_an_unusable_scenario_is_exit_2_naming_case_and_key(pki, tmp_path: Path, capsys, toml: str,
                                                             message: str) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text(toml)
    assert main(["submit", "--scenario", str(scenario), "--state-dir", str(pki.root.parent)]) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_a_missing_scenario_file_is_exit_2(pki, tmp_path: Path, capsys) -> None:
    assert main(["submit", "--scenario", str(tmp_path / "none.toml"), "--state-dir", str(pki.root.parent)]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_as_and_scenario_exclude_each_other(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["submit", "--as", "aigerim", "--scenario", "x.toml"])
    assert exited.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_outcomes_and_what_they_match() -> None:
    assert outcome_of({"status": "SIG_EXPIRED", "error": {}}) == ("SIG_EXPIRED", {"SIG_EXPIRED"})
    assert outcome_of({"status": "ACCEPTED", "note": "..."}) == ("accepted", {"accepted"})
    passed = {"resultSignature": {"indication": "TOTAL_PASSED"}}
    assert outcome_of({"status": "SCSS001", **passed}) == ("completed", {"completed"})
    assert outcome_of({"status": "SCSS001", "applicationStatus": "refused", **passed}) == ("refused", {"refused"})
    failed = {"status": "SCSS001", "applicationStatus": "failed", "error": {"code": "PROVIDER_UNAVAILABLE"}}
    assert outcome_of(failed) == ("failed (PROVIDER_UNAVAILABLE)", {"failed", "PROVIDER_UNAVAILABLE"})
    forged = {"status": "SCSS001", "resultSignature": {"indication": "TOTAL_FAILED"}}
    assert outcome_of(forged) == ("completed (result signature TOTAL_FAILED)", set())


def test_progress_bar_redraws_one_line_and_clears_it() -> None:
    stream = io.StringIO()
    bar = Progress(4, stream, width=8)
    bar.show(0, "first")
    bar.show(2, "third")
    bar.clear()
    text = stream.getvalue()
    assert "\n" not in text
    assert "\r[........] 0/4 first" in text and "\r[####....] 2/4 third" in text
    assert text.endswith("\r")


def test_table_and_summary() -> None:
    case = Case(1, "expired certificate", "expired", "kazneb.reader-ticket", "completed")
    out = io.StringIO()
    report([CaseResult(case, "SIG_EXPIRED", False, 0.3)], out)
    header, row, summary = out.getvalue().splitlines()
    assert header.split() == ["case", "person", "service", "expected", "got", "time", "result"]
    assert row.startswith("expired certificate  expired  kazneb.reader-ticket")
    assert row.split()[-4:] == ["completed", "SIG_EXPIRED", "0.3s", "DIFF"]
    assert summary.startswith("0 passed, 1 failed")


async def run_cli(system: GatewayUnderTest, scenario: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The command in its own process (the gateway keeps serving in this event loop meanwhile)."""
    return await asyncio.to_thread(subprocess.run, [
        *CLI, "submit", "--scenario", str(scenario), "--gateway", system.url, "--sender", PORTAL,
        "--password", PORTAL_PASSWORD, "--state-dir", str(system.pki.root.parent), "--timeout", "60", *extra,
    ], capture_output=True, text=True, timeout=300, cwd=ROOT)


async def test_the_smoke_scenario_passes_against_the_gateway(gw: GatewayUnderTest) -> None:
    desk = CommissionDesk(WorkerSettings(gateway_url=gw.url, library_url=gw.library_url, sender=DESK,
                                         password=DESK_PASSWORD, poll_wait=2))
    stop = asyncio.Event()
    async with desk:
        working = asyncio.create_task(desk.run_forever(stop))
        try:
            done = await run_cli(gw, SMOKE)
        finally:
            stop.set()
            await working
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["case", "person", "service", "expected", "got", "time", "result"]
    rows = lines[1:-1]
    assert len(rows) == len(tomllib.loads(SMOKE.read_text())["case"]) >= 8
    assert all(row.endswith("OK") for row in rows), output
    assert any("AUTH key instead of SIGN" in row and "SIG_NOT_SIGNING_KEY" in row for row in rows)
    assert any("national treasure" in row and "refused" in row for row in rows)
    assert lines[-1].startswith(f"{len(rows)} passed, 0 failed")
    assert "\r" not in done.stderr, "no progress bar when stderr is not a terminal"
    assert "Traceback" not in output
    for person in gw.pki.people.values():
        assert person.iin not in output, "a full IIN was printed"


async def test_a_wrong_expectation_is_a_diff_row_and_exit_1(gw: GatewayUnderTest, tmp_path: Path) -> None:
    scenario = tmp_path / "wrong.toml"
    scenario.write_text(GOOD + '[[case]]\nname = "expired, wrongly expected to pass"\nas = "expired"\n'
                               'service = "kazneb.reader-ticket"\nexpect = "completed"\n')
    done = await run_cli(gw, scenario)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = done.stdout.splitlines()
    assert rows[1].startswith("ticket") and rows[1].endswith("OK")
    assert rows[2].startswith("expired, wrongly expected to pass") and rows[2].endswith("DIFF")
    assert "completed" in rows[2] and "SIG_EXPIRED" in rows[2]
    assert rows[-1].startswith("1 passed, 1 failed")

    as_json = await run_cli(gw, scenario, "--json")
    assert as_json.returncode == 1
    result = json.loads(as_json.stdout)
    assert (result["passed"], result["failed"]) == (1, 1)
    assert [(c["name"], c["got"], c["ok"]) for c in result["cases"]] == [
        ("ticket", "completed", True), ("expired, wrongly expected to pass", "SIG_EXPIRED", False)]
