"""`egov-gateway submit --scenario FILE`: run a list of applications and compare each outcome with its expectation.

The file is TOML, one ``[[case]]`` table per application, run in order::

    [[case]]
    name = "AUTH key instead of SIGN"
    as = "aigerim"                    # test person handle (`egov-gateway pki list`)
    service = "kazneb.reader-ticket"
    key = "auth"
    expect = "SIG_NOT_SIGNING_KEY"

Keys: ``name``, ``as``, ``service``, ``expect`` (required); ``channel`` (sync|async), ``key`` (sign|auth),
``iin_of`` / ``bin_of`` (another person's IIN/BIN into the document, by handle), ``iin`` / ``bin`` (a literal
number, e.g. one with a bad check digit), ``items`` (E-licensing: ordinary|heritage|treasure), ``wait``
(follow the application in the cabinet; default true for long-running services and the AsyncChannel),
``tamper`` (change a field after signing), ``message_id`` (cases with the same value share one messageId
within a run; each run has its own prefix, so a file can be run again).

``expect`` is an application status (``completed``, ``refused``, ``stopped``, ``failed``; ``accepted`` for
``wait = false``) or an error code (``SIG_NOT_SIGNING_KEY``, ``ID_ROLE_MISSING``, ... or ``TIMEOUT``). A failed
application matches its status or its error code. A result whose gateway signature does not pass never
matches, and neither does a repeated messageId answered by a new session instead of the first answer.
Exit code: 0 when every outcome is as expected, 1 otherwise, 2 when the file cannot be used.
"""

from __future__ import annotations

import argparse
import difflib
import json
import shutil
import sys
import time
import tomllib
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from lxml import etree

from gateway.errors import CATALOGUE
from mocks.pki import TestPki, ensure_pki
from mocks.portal.applicant import ELICENSE_SERVICE, FUND_SUBMISSION_SERVICE, SAMPLE_DOCUMENTS, signed_application
from mocks.portal.shep_client import AsyncChannelClient, SyncChannelClient
from mocks.world.submit import GatewayUnreachable, deliver, open_client
from signing.idnumbers import mask_ids

STATUSES = ("completed", "refused", "stopped", "failed", "accepted")
EXTRA_CODES = ("TIMEOUT",)
LONG_RUNNING = (FUND_SUBMISSION_SERVICE, ELICENSE_SERVICE)
PROGRESS_MIN_CASES = 4
REQUIRED = ("name", "as", "service", "expect")
TYPES: dict[str, type] = {
    "name": str, "as": str, "service": str, "expect": str, "channel": str, "key": str, "iin_of": str, "bin_of": str,
    "iin": str, "bin": str, "items": str, "wait": bool, "tamper": bool, "message_id": str,
}
CHOICES: dict[str, tuple[str, ...]] = {
    "channel": ("sync", "async"), "key": ("sign", "auth"), "items": ("ordinary", "heritage", "treasure"),
    "service": tuple(SAMPLE_DOCUMENTS),
}
# which document overrides each service's sample builder takes
OVERRIDES: dict[str, tuple[str, ...]] = {FUND_SUBMISSION_SERVICE: ("bin", "bin_of"),
                                         ELICENSE_SERVICE: ("iin", "iin_of", "items")}
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


class ScenarioError(Exception):
    """The scenario file cannot be used; the message names the case and the key."""


@dataclass(frozen=True)
class Case:
    """One application of a scenario and the outcome it should have."""

    number: int
    "Position in the file, from 1."
    name: str
    "What the case shows."
    person: str
    "Test person handle who signs (``as``)."
    service: str
    "serviceId."
    expect: str
    "Expected status or error code."
    channel: str = "sync"
    "SyncChannel or AsyncChannel."
    key: str = "sign"
    "Which of the person's keys signs."
    iin_of: str | None = None
    "Handle of the person whose IIN goes into the document."
    bin_of: str | None = None
    "Handle of the employee whose organisation's BIN goes into the document."
    iin: str | None = None
    "A literal IIN for the document."
    bin: str | None = None
    "A literal BIN for the document."
    items: str | None = None
    "E-licensing: which cultural values."
    wait: bool = False
    "Follow the application in the cabinet until it is final."
    tamper: bool = False
    "Change a field after signing."
    message_id: str | None = None
    "Shared messageId label (cases with the same label repeat one messageId)."

    @property
    def title(self) -> str:
        return f'case {self.number} ("{self.name}")'


@dataclass(frozen=True)
class CaseResult:
    """What one case came to."""

    case: Case
    "The case."
    got: str
    "The outcome as shown: status or error code, with notes."
    ok: bool
    "True when the outcome is the expected one."
    seconds: float
    "How long the case took."
    session_id: str | None = None
    "The gateway's sessionId, if any."
    message: str = ""
    "The gateway's status or error message (IINs masked)."


def load_scenario(path: Path) -> tuple[Case, ...]:
    """Parse and check a scenario file; raises :class:`ScenarioError`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read it: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"case"})
    if unknown:
        raise ScenarioError(f"unknown top-level key {unknown[0]!r} (a scenario is a list of [[case]] tables)")
    tables = data.get("case")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ScenarioError("no cases: write each application as a [[case]] table")
    return tuple(_case(number, table) for number, table in enumerate(tables, start=1))


def _case(number: int, table: dict[str, Any]) -> Case:
    name = table.get("name")
    where = f'case {number} ("{name}")' if isinstance(name, str) else f"case {number}"

    def fail(message: str) -> ScenarioError:
        return ScenarioError(f"{where}: {message}")

    for key in table:
        if key not in TYPES:
            near = difflib.get_close_matches(key, TYPES, n=1)
            raise fail(f"unknown key {key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    for key in REQUIRED:
        if key not in table:
            raise fail(f"missing key {key!r}")
    for key, value in table.items():
        if not isinstance(value, TYPES[key]):
            raise fail(f"{key!r} must be a {TYPES[key].__name__}, got {type(value).__name__} {value!r}")
        if key in CHOICES and value not in CHOICES[key]:
            raise fail(f"{key!r} must be one of {', '.join(CHOICES[key])}, got {value!r}")
    service = table["service"]
    allowed = OVERRIDES.get(service, ("iin", "iin_of"))
    for key in ("iin", "iin_of", "bin", "bin_of", "items"):
        if key in table and key not in allowed:
            raise fail(f"{key!r} does not apply to {service}")
    if {"iin", "iin_of"} <= table.keys() or {"bin", "bin_of"} <= table.keys():
        raise fail("give either the literal number or the person's handle, not both")
    expect = table["expect"]
    if expect not in STATUSES and expect not in CATALOGUE and expect not in EXTRA_CODES:
        near = difflib.get_close_matches(expect, [*STATUSES, *CATALOGUE, *EXTRA_CODES], n=1)
        raise fail(f"'expect' must be a status ({', '.join(STATUSES)}) or an error code, got {expect!r}"
                   + (f" (did you mean {near[0]!r}?)" if near else ""))
    channel = table.get("channel", "sync")
    wait = table.get("wait", service in LONG_RUNNING or channel == "async")
    values = {f.name: table[f.name] for f in fields(Case) if f.name in table}
    return Case(**{**values, "number": number, "person": table["as"], "channel": channel, "wait": wait})


def check_people(cases: tuple[Case, ...], pki: TestPki) -> None:
    """Every handle must be a person of the test PKI (and ``bin_of`` an employee)."""
    for case in cases:
        for key, handle in (("as", case.person), ("iin_of", case.iin_of), ("bin_of", case.bin_of)):
            if handle is None:
                continue
            if handle not in pki.people:
                raise ScenarioError(f"{case.title}: {key!r}: no person {handle!r} in the test PKI; "
                                    f"known: {', '.join(sorted(pki.people))}")
            if key == "bin_of" and not pki.people[handle].bin:
                raise ScenarioError(f"{case.title}: 'bin_of': {handle!r} works for no organisation")


def run_scenario(args: argparse.Namespace) -> int:
    """The ``submit --scenario`` command."""
    try:
        cases = load_scenario(args.scenario)
        pki = ensure_pki(args.state_dir.resolve() / "pki")
        check_people(cases, pki)
    except ScenarioError as exc:
        print(f"error: {args.scenario}: {exc}", file=sys.stderr)
        return 2
    show_progress = not args.json and sys.stderr.isatty() and len(cases) >= PROGRESS_MIN_CASES
    progress = Progress(len(cases), sys.stderr) if show_progress else None
    runner = Runner(args, pki, run_id=uuid.uuid4().hex[:8])
    results: list[CaseResult] = []
    try:
        for case in cases:
            if progress:
                progress.show(len(results), case.name)
            results.append(runner.run(case))
    except GatewayUnreachable as exc:
        if progress:
            progress.clear()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if progress:
        progress.clear()
    report(results, sys.stdout, as_json=args.json)
    return 0 if all(result.ok for result in results) else 1


class Runner:
    """Runs cases one after another with one client per channel, remembering the answers to messageIds."""

    def __init__(self, args: argparse.Namespace, pki: TestPki, *, run_id: str) -> None:
        self._args, self._pki, self._run_id = args, pki, run_id
        self._clients: dict[str, SyncChannelClient | AsyncChannelClient] = {}
        self._first_session: dict[str, str | None] = {}
        self._first_document: dict[str, bytes] = {}  # a repeated messageId resends the same signed document

    def run(self, case: Case) -> CaseResult:
        """Send one case and compare; raises :class:`GatewayUnreachable` when the WSDL cannot be loaded."""
        started = time.monotonic()
        if case.channel not in self._clients:
            self._clients[case.channel] = open_client(self._args.gateway, case.channel)
        person = self._pki.person(case.person)
        args = argparse.Namespace(**{**vars(self._args), "service": case.service, "channel": case.channel,
                                     "wait": case.wait, "out": None, "json": False})
        message_id = f"scenario-{self._run_id}-{case.message_id}" if case.message_id else str(uuid.uuid4())
        try:
            if case.message_id in self._first_document:  # a repeat, as a portal resends: the same bytes
                document = etree.fromstring(self._first_document[case.message_id])
            else:
                document = signed_application(person, case.service, key=case.key, **self._overrides(case))
                if case.tamper:
                    tamper(document)
                if case.message_id:
                    self._first_document[case.message_id] = etree.tostring(document)
            outcome, _ = deliver(args, self._clients[case.channel], self._pki, person, document,
                                 message_id=message_id, quiet=True)
        except Exception as exc:  # a broken connection mid-run: this case fails, the run goes on
            return CaseResult(case, f"error: {type(exc).__name__}", False, time.monotonic() - started,
                              message=mask_ids(str(exc)))
        got, matches = outcome_of(outcome)
        session = outcome.get("sessionId")
        if case.message_id and got not in CATALOGUE:
            first = self._first_session.setdefault(case.message_id, session)
            if first != session:
                got, matches = f"{got} (new session, not the first answer)", set()
        return CaseResult(case, got, case.expect in matches, time.monotonic() - started, session,
                          mask_ids(str(outcome.get("message") or "")))

    def _overrides(self, case: Case) -> dict[str, str]:
        overrides: dict[str, str] = {}
        if case.items:
            overrides["items"] = case.items
        if case.iin or case.iin_of:
            overrides["iin"] = case.iin or self._pki.person(str(case.iin_of)).iin
        if case.bin or case.bin_of:
            overrides["bin"] = case.bin or str(self._pki.person(str(case.bin_of)).bin)
        return overrides


def outcome_of(outcome: dict[str, Any]) -> tuple[str, set[str]]:
    """What a :func:`mocks.world.submit.deliver` outcome came to: the text shown, and the expectations it matches."""
    if "note" in outcome:
        return "accepted", {"accepted"}
    status = outcome.get("applicationStatus")
    error = outcome.get("error")
    if status is None and error is not None:  # refused at intake: the fault's code
        return str(outcome["status"]), {str(outcome["status"])}
    status = status or "completed"  # a synchronous result
    if error is not None:
        code = error.get("code")
        return (f"{status} ({code})", {status, code}) if code else (status, {status})
    indication = (outcome.get("resultSignature") or {}).get("indication")
    if indication != "TOTAL_PASSED":
        return f"{status} (result signature {indication})", set()
    return status, {status}


def tamper(document: etree._Element) -> None:
    """Change the first filled-in field of a signed document (outside its signature)."""
    for element in document.iter():
        if (isinstance(element.tag, str) and etree.QName(element).namespace != DSIG_NS
                and len(element) == 0 and (element.text or "").strip()):
            element.text = f"{element.text} (changed)"
            return
    raise ValueError("nothing to tamper with")


class Progress:
    """A plain-text progress bar on a terminal, redrawn in place with a carriage return."""

    def __init__(self, total: int, stream: TextIO, *, width: int = 24) -> None:
        self._total, self._stream, self._width, self._drawn = total, stream, width, 0

    def show(self, done: int, label: str) -> None:
        filled = self._width * done // self._total
        line = f"[{'#' * filled}{'.' * (self._width - filled)}] {done}/{self._total} {label}"
        line = line[: max(20, shutil.get_terminal_size().columns - 1)]
        self._stream.write("\r" + line.ljust(self._drawn))
        self._stream.flush()
        self._drawn = len(line)

    def clear(self) -> None:
        self._stream.write("\r" + " " * self._drawn + "\r")
        self._stream.flush()
        self._drawn = 0


def report(results: list[CaseResult], out: TextIO, *, as_json: bool = False) -> None:
    """The table of cases and the summary line (or the same as JSON)."""
    passed = sum(result.ok for result in results)
    summary = f"{passed} passed, {len(results) - passed} failed"
    if as_json:
        rows = [{**{k: v for k, v in asdict(r.case).items() if v is not None}, "got": r.got, "ok": r.ok,
                 "seconds": round(r.seconds, 3), "sessionId": r.session_id, "message": r.message} for r in results]
        for row in rows:
            row.pop("iin", None)  # literal numbers stay in the file
            row.pop("bin", None)
        print(json.dumps({"cases": rows, "passed": passed, "failed": len(results) - passed, "summary": summary},
                         ensure_ascii=False, indent=2), file=out)
        return
    header = ("case", "person", "service", "expected", "got", "time", "result")
    rows = [(r.case.name, r.case.person, r.case.service, r.case.expect, r.got, f"{r.seconds:.1f}s",
             "OK" if r.ok else "DIFF") for r in results]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)
    print(f"{summary} ({sum(r.seconds for r in results):.1f}s)", file=out)
