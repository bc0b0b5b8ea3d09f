"""`egov-gateway submit`: act as the portal for one application and show what came back.

Signs a sample application as a test person, sends it through the SOAP SyncChannel, verifies the
gateway's signature on the result against the test PKI, and prints where the cabinet lists it.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse

from lxml import etree

from mocks.pki import ensure_pki
from mocks.portal.applicant import signed_application
from mocks.portal.shep_client import SyncChannelClient
from signing.policy import VerificationPolicy
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier, SignatureRejected


def submit(args: argparse.Namespace) -> int:
    pki = ensure_pki(args.state_dir.resolve() / "pki")
    try:
        person = pki.person(args.person)
        document = signed_application(person, args.service, key=args.key)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    gateway = args.gateway.rstrip("/")
    try:
        client = SyncChannelClient(f"{gateway}/shep/sync?wsdl")
    except Exception as exc:  # connection refused, bad WSDL: say it plainly
        print(f"error: cannot load the gateway's WSDL from {gateway}/shep/sync?wsdl: {exc}", file=sys.stderr)
        return 1
    result = client.send(service_id=args.service, sender_id=args.sender, password=args.password,
                         document=document, message_id=args.message_id)
    outcome: dict[str, object] = {
        "person": person.handle, "service": args.service, "status": result.status_code,
        "message": result.message, "sessionId": result.session_id,
    }
    if not result.ok:
        outcome["error"] = result.error_data
        _print(outcome, args.json)
        return 1
    verifier = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(pki.trust_anchors, pki.intermediates))
    try:
        verified = verifier.verify(result.document)
        signature = {"indication": str(verified.report.indication),
                     "signer": verified.identity.common_name,
                     "organisation": verified.identity.organisation}
    except SignatureRejected as rejected:
        signature = {"indication": str(rejected.report.indication), "errors": list(rejected.report.errors)}
    outcome["resultSignature"] = signature
    outcome["result"] = etree.tostring(result.document, encoding="unicode")
    outcome["cabinet"] = (f"{gateway}/api/v1/cabinet/{urllib.parse.quote(person.iin)}/applications"
                          f"  (HTTP Basic {args.sender}:<password>)")
    _print(outcome, args.json)
    return 0 if signature["indication"] == "TOTAL_PASSED" else 1


def _print(outcome: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome, ensure_ascii=False, indent=2))
        return
    for key, value in outcome.items():
        if isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False, indent=2)
        print(f"{key}: {value}")
