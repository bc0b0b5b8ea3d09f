"""`egov-gateway submit`: act as the portal for one application and show what came back.

Signs a sample application as a test person, sends it through the SOAP SyncChannel, verifies the
gateway's signature on the result against the test PKI, and prints where the cabinet lists it.
Exit code 0 only when the application completed and the result's signature is TOTAL_PASSED.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from lxml import etree

from mocks.pki import Person, TestPki, ensure_pki
from mocks.portal.applicant import ELICENSE_SERVICE, FUND_SUBMISSION_SERVICE, signed_application
from mocks.portal.shep_client import AsyncChannelClient, SendResult, SyncChannelClient
from signing.policy import VerificationPolicy
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier, SignatureRejected

FINAL = ("completed", "refused", "failed", "stopped")
ORGANISATION_SERVICES = (FUND_SUBMISSION_SERVICE,)


def submit(args: argparse.Namespace) -> int:
    pki = ensure_pki(args.state_dir.resolve() / "pki")
    try:
        person = pki.person(args.person)
        extra = {"items": args.items} if args.items and args.service == ELICENSE_SERVICE else {}
        document = signed_application(person, args.service, key=args.key, **extra)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    channel = "async" if args.channel == "async" else "sync"
    try:
        client = open_client(args.gateway, channel)
    except GatewayUnreachable as exc:  # connection refused, bad WSDL: say it plainly, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    outcome, code = deliver(args, client, pki, person, document, message_id=args.message_id or str(uuid.uuid4()),
                            quiet=args.json)
    _print(outcome, args.json)
    return code


class GatewayUnreachable(Exception):
    """The gateway's WSDL could not be loaded."""


def open_client(gateway: str, channel: str) -> SyncChannelClient | AsyncChannelClient:
    """A zeep client for the gateway's SyncChannel or AsyncChannel; raises :class:`GatewayUnreachable`."""
    wsdl = f"{gateway.rstrip('/')}/shep/{channel}?wsdl"
    try:
        return AsyncChannelClient(wsdl) if channel == "async" else SyncChannelClient(wsdl)
    except Exception as exc:
        raise GatewayUnreachable(f"cannot load the gateway's WSDL from {wsdl}: {exc}") from exc


def deliver(args: argparse.Namespace, client: SyncChannelClient | AsyncChannelClient, pki: TestPki, person: Person,
            document: etree._Element, *, message_id: str, quiet: bool) -> tuple[dict[str, Any], int]:
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
        return outcome, 1
    owner = person.bin if person.kind == "employee" and args.service in ORGANISATION_SERVICES else person.iin
    document_out = result.document
    if args.wait or channel == "async" or etree.QName(document_out).localname == "Receipt":
        if not args.wait:
            outcome["note"] = "accepted; the result follows in the cabinet (use --wait to follow it)"
            return outcome, 0
        item = _follow(gateway, args, owner, message_id, quiet=quiet)
        outcome["applicationStatus"] = item["status"]
        if not item.get("result"):
            outcome["error"] = {"code": item.get("errorCode"), "detail": item.get("errorDetail")}
            return outcome, 1
        document_out = etree.fromstring(item["result"].encode())
    result = SendResult(ok=True, status_code=result.status_code, message=result.message,
                        session_id=result.session_id, document=document_out)
    outcome.update(_check_result(result, pki.trust_anchors, pki.intermediates))
    outcome["cabinet"] = f"curl -u {args.sender}:<password> {gateway}/api/v1/cabinet/{owner}/applications"
    if args.out:
        Path(args.out).write_bytes(etree.tostring(result.document, xml_declaration=True, encoding="UTF-8"))
        outcome["savedTo"] = str(args.out)
    if args.json:
        outcome["resultXml"] = etree.tostring(result.document, encoding="unicode")
    return outcome, 0 if outcome["resultSignature"]["indication"] == "TOTAL_PASSED" else 1


def _follow(gateway: str, args: argparse.Namespace, owner: str, message_id: str, *, quiet: bool) -> dict[str, Any]:
    """Poll the cabinet until the application is final, printing each new history event."""
    url = f"{gateway}/api/v1/cabinet/{owner}/applications/{urllib.parse.quote(message_id)}"
    token = base64.b64encode(f"{args.sender}:{args.password}".encode()).decode()
    deadline, seen, item = time.monotonic() + args.timeout, 0, {}
    while time.monotonic() < deadline:
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            item = json.loads(response.read())
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
    verifier = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(anchors, intermediates))
    try:
        verified = verifier.verify(result.document)
    except SignatureRejected as rejected:
        return {"resultSignature": {"indication": str(rejected.report.indication),
                                    "errors": list(rejected.report.errors)}}
    fields = {etree.QName(el).localname: " ".join(el.itertext()).strip()
              for el in verified.signed if isinstance(el.tag, str)}
    return {
        "resultSignature": {"indication": str(verified.report.indication),
                            "signedBy": verified.identity.display_name(),
                            "certificateSerial": verified.report.signer.certificate_serial},
        "result": {"document": etree.QName(verified.signed).localname, **fields},
    }


def _print(outcome: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome, ensure_ascii=False, indent=2))
        return
    for key, value in outcome.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for inner, text in value.items():
                shown = json.dumps(text, ensure_ascii=False) if isinstance(text, dict | list) else text
                print(f"  {inner:<18} {shown}")
        else:
            print(f"{key:<20} {value}")
