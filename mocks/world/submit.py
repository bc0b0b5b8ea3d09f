"""`egov-gateway submit`: act as the portal for one application and show what came back.

Signs a sample application as a test person, sends it through the SOAP SyncChannel, verifies the
gateway's signature on the result against the test PKI, and prints where the cabinet lists it.
The exit code says what the application came to (:class:`Exit`); 0 only when it completed and the
result's signature is TOTAL_PASSED.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import time
import urllib.parse
import urllib.request
import uuid
from enum import IntEnum
from pathlib import Path
from typing import Any

from lxml import etree

from mocks.pki import Person, TestPki, ensure_pki
from mocks.portal.applicant import ELICENSE_SERVICE, FUND_SUBMISSION_SERVICE, signed_application
from mocks.portal.shep_client import AsyncChannelClient, SendResult, SyncChannelClient
from signing.policy import VerificationPolicy
from signing.signer import SigningKey
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier, SignatureRejected
from signing.xmlsafe import XmlLimits, parse_untrusted

FINAL = ("completed", "refused", "failed", "stopped")
ORGANISATION_SERVICES = (FUND_SUBMISSION_SERVICE, "egov.software-deposit")
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


class Exit(IntEnum):
    """``submit``'s exit codes: one per outcome, so a script can tell them apart."""

    COMPLETED = 0
    "Completed, and the result's signature is TOTAL_PASSED."
    REJECTED = 1
    "Refused by the gateway at intake (an error code: CLIENT_*, SIG_*, ID_*, ...)."
    USAGE = 2
    "Unusable arguments (an unknown person or service)."
    REFUSED = 3
    "The provider's reasoned refusal (status refused)."
    FAILED = 4
    "Failed, or stopped for an operator (status failed or stopped)."
    TIMEOUT = 5
    "``--wait`` gave up: not final within ``--timeout`` seconds."
    ACCEPTED = 6
    "Accepted for background work, without ``--wait`` (the result follows in the cabinet)."
    BAD_RESULT_SIGNATURE = 7
    "The result came back but its gateway signature does not pass."
    UNREACHABLE = 8
    "The gateway could not be reached."


EXIT_HELP = ", ".join(f"{code.value} {code.name.lower().replace('_', ' ')}" for code in Exit)
"One line for ``--help`` and the README."
_STATUS_EXIT = {"completed": Exit.COMPLETED, "refused": Exit.REFUSED, "failed": Exit.FAILED, "stopped": Exit.FAILED}


def submit(args: argparse.Namespace) -> int:
    pki = ensure_pki(args.state_dir.resolve() / "pki")
    try:
        person = pki.person(args.person)
        document = _document(args, person)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return Exit.USAGE
    channel = "async" if args.channel == "async" else "sync"
    try:
        files = pki.systems[args.ws_security] if getattr(args, "ws_security", None) else None
    except KeyError:
        print(f"error: no system {args.ws_security!r} in the test PKI; known: {sorted(pki.systems)}", file=sys.stderr)
        return Exit.USAGE
    try:
        client = open_client(args.gateway, channel, SigningKey.from_pem(files.cert, files.key) if files else None)
    except GatewayUnreachable as exc:  # connection refused, bad WSDL: say it plainly, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return Exit.UNREACHABLE
    try:
        outcome, code = deliver(args, client, pki, person, document,
                                message_id=args.message_id or str(uuid.uuid4()), quiet=args.json)
    except GatewayUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return Exit.UNREACHABLE
    _print(outcome, args.json)
    return code


def _document(args: argparse.Namespace, person: Person) -> etree._Element:
    """A freshly signed sample application; with ``--message-id`` the one first sent under that id (kept in
    ``STATE_DIR/sent/``), so a repeat is the portal retrying the same message: the gateway gives the first
    answer and calls the back-end once. A new signature would make a new document (``CLIENT_DUPLICATE_MISMATCH``).
    Raises KeyError for an unknown person or service."""
    if args.service == "egov.software-deposit":  # the package is uploaded first, the application names it
        from mocks.world.deposit import signed_deposit

        return signed_deposit(args, person)
    extra = {"items": args.items} if args.items and args.service == ELICENSE_SERVICE else {}
    if not args.message_id:
        return signed_application(person, args.service, key=args.key, **extra)
    name = "\0".join((args.sender, args.message_id, person.handle, args.service, args.key, args.items or ""))
    kept = args.state_dir / "sent" / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.xml"
    if kept.exists():  # our own file, written below: parsed with the safe parser all the same
        return parse_untrusted(kept.read_bytes(), XmlLimits(max_bytes=16 * 1024 * 1024))
    document = signed_application(person, args.service, key=args.key, **extra)
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(etree.tostring(document))
    return document


class GatewayUnreachable(Exception):
    """The gateway's WSDL could not be loaded."""


def open_client(gateway: str, channel: str,
                ws_security_key: SigningKey | None = None) -> SyncChannelClient | AsyncChannelClient:
    """A zeep client for the gateway's SyncChannel or AsyncChannel (WS-Security-signing with ``ws_security_key``);
    raises :class:`GatewayUnreachable`."""
    wsdl = f"{gateway.rstrip('/')}/shep/{channel}?wsdl"
    try:
        if channel == "async":
            return AsyncChannelClient(wsdl, ws_security_key=ws_security_key)
        return SyncChannelClient(wsdl, ws_security_key=ws_security_key)
    except Exception as exc:
        raise GatewayUnreachable(f"cannot load the gateway's WSDL from {wsdl}: {exc}") from exc


def deliver(args: argparse.Namespace, client: SyncChannelClient | AsyncChannelClient, pki: TestPki, person: Person,
            document: etree._Element, *, message_id: str, quiet: bool) -> tuple[dict[str, Any], Exit]:
    """Send one signed document (``args``: service, channel, wait, timeout, gateway, sender, password, out, json),
    follow it in the cabinet when asked, and check the result's signature: the outcome and the exit code."""
    gateway = args.gateway.rstrip("/")
    channel = "async" if args.channel == "async" else "sync"
    result = client.send(service_id=args.service, sender_id=args.sender, password=args.password,
                         document=document, message_id=message_id)
    outcome: dict[str, Any] = {
        "person": person.handle, "signer": f"{person.surname} {person.name}", "service": args.service,
        "status": result.status_code, "message": result.message, "sessionId": result.session_id,
    }
    if not result.ok:
        outcome["error"] = result.error_data
        return outcome, Exit.REJECTED
    owner = person.bin if person.kind == "employee" and args.service in ORGANISATION_SERVICES else person.iin
    document_out = result.document
    if args.wait or channel == "async" or etree.QName(document_out).localname == "Receipt":
        if not args.wait:
            outcome["note"] = "accepted; the result follows in the cabinet (use --wait to follow it)"
            return outcome, Exit.ACCEPTED
        item = _follow(gateway, args, owner, message_id, quiet=quiet)
        outcome["applicationStatus"] = item["status"]
        final = _STATUS_EXIT.get(item["status"], Exit.TIMEOUT)
        if not item.get("result"):
            outcome["error"] = {"code": item.get("errorCode"), "detail": item.get("errorDetail")}
            return outcome, final
        document_out = etree.fromstring(item["result"].encode())
    else:
        final = Exit.COMPLETED  # a synchronous result
    result = SendResult(ok=True, status_code=result.status_code, message=result.message,
                        session_id=result.session_id, document=document_out)
    outcome.update(_check_result(result, pki.trust_anchors, pki.intermediates))
    outcome["cabinet"] = f"curl -u {args.sender}:<password> {gateway}/api/v1/cabinet/{owner}/applications"
    if args.out:
        Path(args.out).write_bytes(etree.tostring(result.document, xml_declaration=True, encoding="UTF-8"))
        outcome["savedTo"] = str(args.out)
    if args.json:
        outcome["resultXml"] = etree.tostring(result.document, encoding="unicode")
    passed = outcome["resultSignature"]["indication"] == "TOTAL_PASSED"
    return outcome, final if passed else Exit.BAD_RESULT_SIGNATURE


def _follow(gateway: str, args: argparse.Namespace, owner: str, message_id: str, *, quiet: bool) -> dict[str, Any]:
    """Poll the cabinet until the application is final, printing each new history event."""
    url = f"{gateway}/api/v1/cabinet/{owner}/applications/{urllib.parse.quote(message_id)}"
    token = base64.b64encode(f"{args.sender}:{args.password}".encode()).decode()
    deadline, seen, item = time.monotonic() + args.timeout, 0, {}
    while time.monotonic() < deadline:
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                item = json.loads(response.read())
        except (OSError, ValueError) as exc:  # urllib's errors are OSErrors; a non-JSON answer a ValueError
            raise GatewayUnreachable(f"cannot follow the application in the cabinet: {exc}") from None
        for event in item["history"][seen:]:
            if not quiet:
                step = f" [{event['step']}]" if event.get("step") else ""
                print(f"  {event['at'][:19]}  {event['status']:<11}{step} {event['note']}", flush=True)
        seen = len(item["history"])
        if item["status"] in FINAL:
            return item
        time.sleep(0.5)
    item.setdefault("errorCode", "TIMEOUT")
    item.setdefault("errorDetail", f"not final after {args.timeout}s (see the cabinet later)")
    return item


def _check_result(result: SendResult, anchors: tuple[Path, ...], intermediates: tuple[Path, ...]) -> dict[str, Any]:
    """Verify the gateway's signature on the result and list the result's fields."""
    trust = TrustStore.from_files(anchors, intermediates)
    verifier = DocumentVerifier(VerificationPolicy(), trust, gost_paths=trust)
    try:
        verified = verifier.verify(result.document)
    except SignatureRejected as rejected:
        return {"resultSignature": {"indication": str(rejected.report.indication),
                                    "errors": list(rejected.report.errors)}}
    fields = element_fields(verified.signed)
    return {
        "resultSignature": {"indication": str(verified.report.indication),
                            "signedBy": verified.identity.display_name(),
                            "certificateSerial": verified.report.signer.certificate_serial},
        "result": {"document": etree.QName(verified.signed).localname, **fields},
    }


def element_fields(element: etree._Element) -> dict[str, Any]:
    """An XML element's children as JSON-like fields: a leaf is its text, a repeated name a list, the enveloped
    ds:Signature left out (it was verified and is reported on its own)."""
    fields: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str) or etree.QName(child).namespace == DSIG_NS:
            continue
        name = etree.QName(child).localname
        value: Any = element_fields(child) if len(child) else (child.text or "").strip()
        if name in fields:
            fields[name] = [*fields[name], value] if isinstance(fields[name], list) else [fields[name], value]
        else:
            fields[name] = value
    return fields


def _print(outcome: dict[str, Any], as_json: bool) -> None:
    if as_json:
        # Indented real UTF-8 for a person at a terminal; one compact line for a pipe or a file.
        tty = sys.stdout.isatty()
        print(json.dumps(outcome, ensure_ascii=False, indent=2 if tty else None))
        return
    for key, value in outcome.items():
        if isinstance(value, dict):
            print(f"{key}:")
            print("\n".join(render_fields(value, indent=2)))
        else:
            print(f"{key:<20} {value}")


def render_fields(fields: dict[str, Any], *, indent: int) -> list[str]:
    """Nested fields as a person reads them: ``name  value`` lines, a group of plain values as a one-row table,
    a list of records (``steps``, ``items``, ``objects``) as a table with a header."""
    pad, lines = " " * indent, []
    for name, value in fields.items():
        rows = _records(value)
        if rows is not None:
            lines.append(f"{pad}{name}:")
            lines.extend(table(rows, indent=indent + 2))
        elif isinstance(value, dict):
            lines.append(f"{pad}{name}:")
            lines.extend(render_fields(value, indent=indent + 2))
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"{pad}{name:<18} {shown}")
    return lines


def _records(value: Any) -> list[dict[str, Any]] | None:
    """The rows of a table when ``value`` is one: a list of flat records, a wrapper holding only such a list
    (``<steps><step>..</step></steps>``), or one flat record (``<commission>``: members, votesFor, ...)."""
    if isinstance(value, dict) and len(value) == 1:
        (inner,) = value.values()
        if isinstance(inner, list | dict) and _flat_list(inner):
            return [inner] if isinstance(inner, dict) else inner
    if isinstance(value, list) and _flat_list(value):
        return value
    if isinstance(value, dict) and len(value) > 1 and _flat(value):
        return [value]
    return None


def _flat(record: Any) -> bool:
    return isinstance(record, dict) and all(not isinstance(v, dict | list) for v in record.values())


def _flat_list(value: Any) -> bool:
    return _flat(value) if isinstance(value, dict) else bool(value) and all(_flat(v) for v in value)


def table(rows: list[dict[str, Any]], *, indent: int = 0) -> list[str]:
    """Records as aligned columns under a header (columns in order of first appearance)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [columns, *([str(row.get(column, "")) for column in columns] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return [(" " * indent + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))).rstrip()
            for line in cells]
