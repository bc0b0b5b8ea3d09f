"""Tester tools: `egov-gateway sign`, `egov-gateway verify` and `egov-gateway verify-receipt`.

``verify`` runs exactly the gateway's verifier (same policy, same trust store class, the same revocation
check: hard_fail unless the configuration says otherwise) and prints the whole validation report; its exit
code is 0 only for TOTAL_PASSED, 1 for any other indication, 2 for unusable input. With ``--at TIME`` it
validates as of that time (signature, path and validity periods; revocation off unless ``--revocation`` asks),
as DSS does, so an archived document whose certificate has since expired can still be checked.

``verify-receipt`` checks a gateway receipt as its holder does (:func:`gateway.lifecycle.receipts.verify_receipt`):
the gateway's signature (over the receipt, or over the ReceiptBatch whose root the receipt's inclusion path leads
to) and, with ``--document``, that requestDigest is the digest of the document sent; exit 0 when it verifies, 1 when
it does not (the failed check's code is printed), 2 for unusable input. The gateway certificate's revocation is not
checked by it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree

from gateway.config import ConfigError, load_settings, settings_from_dict
from gateway.lifecycle.receipts import RECEIPT_NS, ReceiptInvalid, verify_receipt
from signing.gost.xmldsig_sign import GostSigningKey
from signing.policy import RevocationMode, VerificationPolicy
from signing.report import SubIndication, ValidationReport
from signing.revocation import RevocationChecker, RevocationSettings, apply_revocation
from signing.signer import DocumentSigner, SigningKey, load_pem_signing_key
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier, SignatureRejected, VerifiedDocument
from signing.xmlsafe import UnsafeXmlError, XmlLimits, parse_untrusted


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], default_state_dir: Path) -> None:
    sign = commands.add_parser("sign", help="sign an XML document (enveloped XMLDSig or XAdES-BES)")
    source = sign.add_mutually_exclusive_group(required=True)
    source.add_argument("--p12", type=Path, help="PKCS#12 file with key and certificate")
    source.add_argument("--cert", type=Path, help="PEM certificate (with --key)")
    sign.add_argument("--key", type=Path, help="PEM private key (with --cert)")
    sign.add_argument("--password", default=os.environ.get("EGOV_P12_PASSWORD"),
                      help="PKCS#12/key password (default: $EGOV_P12_PASSWORD, else asked)")
    sign.add_argument("--in", dest="source", type=Path, required=True)
    sign.add_argument("--out", type=Path, required=True)
    sign.add_argument("--xades", action="store_true", help="XAdES-BES (SigningTime, SigningCertificateV2)")

    verify = commands.add_parser("verify", help="verify a signed XML document and print the report")
    verify.add_argument("--in", dest="source", type=Path, required=True)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("--trust", type=Path, action="append", default=[],
                        help="trusted CA certificate, PEM or DER (repeatable; an intermediate CA is a valid anchor)")
    verify.add_argument("--intermediate", type=Path, action="append", default=[],
                        help="intermediate CA certificate, PEM or DER")
    verify.add_argument("--at", type=_instant, default=None, metavar="ISO-8601-TIME",
                        help="validate as of this time (e.g. 2025-03-01T12:00:00+05:00; no zone means UTC); "
                             "revocation is then off unless --revocation is given")
    verify.add_argument("--config", type=Path, help="take trust anchors (and revocation) from this configuration")
    verify.add_argument("--state-dir", type=Path, default=default_state_dir,
                        help="without --trust/--config: trust the demo PKI in STATE_DIR/pki")
    verify.add_argument("--revocation", choices=[m.value for m in RevocationMode], default=None,
                        help="revocation mode (default: --config's [revocation], else hard_fail as the gateway; "
                             "off skips the OCSP/CRL check)")

    receipt = commands.add_parser("verify-receipt", help="verify a gateway receipt as its holder does")
    receipt.add_argument("--in", dest="source", type=Path, required=True, help="the receipt (XML)")
    receipt.add_argument("--document", type=Path, help="the signed document that was sent: requestDigest must match")
    receipt.add_argument("--json", action="store_true", help="print the outcome as JSON")
    receipt.add_argument("--trust", type=Path, action="append", default=[], help="trusted CA certificate (repeatable)")
    receipt.add_argument("--intermediate", type=Path, action="append", default=[],
                         help="intermediate CA certificate, PEM or DER")
    receipt.add_argument("--config", type=Path, help="take trust anchors from this configuration")
    receipt.add_argument("--state-dir", type=Path, default=default_state_dir,
                         help="without --trust/--config: trust the demo PKI in STATE_DIR/pki")


def sign(args: argparse.Namespace) -> int:
    password = args.password
    if args.p12 and password is None and sys.stdin.isatty():
        password = getpass.getpass("PKCS#12 password: ")
    secret = password.encode() if password else None
    key: SigningKey | GostSigningKey
    if args.p12:
        key = SigningKey.from_pkcs12(args.p12, secret)
    elif args.key:
        key = load_pem_signing_key(args.cert, args.key, secret)  # a GOST certificate: a GOST signature
    else:
        print("error: --cert needs --key", file=sys.stderr)
        return 2
    document = _read(args.source)
    if document is None:
        return 2
    signed = DocumentSigner(key, xades=args.xades).sign_bytes(document)
    args.out.write_bytes(signed)
    print(f"signed {args.source} as {key.certificate.subject.rfc4514_string()} -> {args.out}")
    return 0


def _instant(text: str) -> datetime:
    """An ISO 8601 time for ``--at`` (a bad one is a usage error, exit 2)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2025-03-01T12:00:00+05:00") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def verify(args: argparse.Namespace) -> int:
    document = _read(args.source)
    if document is None:
        return 2
    if args.at is not None and args.revocation is None:
        args.revocation = RevocationMode.OFF.value  # a past instant: today's OCSP answer is not about it
    loaded = _loaded_trust(args)
    if loaded is None:
        return 2
    trust, revocation = loaded
    at = args.at
    clock = (lambda: at) if at is not None else (lambda: datetime.now(UTC))
    verifier = DocumentVerifier(VerificationPolicy(revocation=revocation.mode), trust, clock=clock,
                                gost_paths=trust)  # the trust store validates GOST paths too
    try:
        verified = verifier.verify(document)
        verified = asyncio.run(_with_revocation(verified, revocation))
        report = verified.report
    except SignatureRejected as rejected:
        report = rejected.report
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render(report))
    if report.sub_indication == SubIndication.TRY_LATER:
        print(f"note: the certificate's status could not be checked (revocation mode {revocation.mode}); is the "
              "OCSP responder running (`egov-gateway demo` runs the test PKI's)? Pass `--revocation off` to skip "
              "the check", file=sys.stderr)
    return 0 if report.passed else 1


def verify_receipt_command(args: argparse.Namespace) -> int:
    try:
        raw = args.source.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.source}: {exc.strerror}", file=sys.stderr)
        return 2
    document = _read(args.document) if args.document else None
    if args.document and document is None:
        return 2
    args.revocation = None
    loaded = _loaded_trust(args)
    if loaded is None:
        return 2
    trust = loaded[0]
    verifier = DocumentVerifier(VerificationPolicy(revocation=RevocationMode.OFF), trust, gost_paths=trust)
    try:
        verified = verify_receipt(raw, verifier, document=document)
    except ReceiptInvalid as invalid:
        outcome: dict[str, Any] = {"valid": False, "code": invalid.code, "detail": invalid.detail}
    else:
        fields = {name: verified.receipt.findtext(f"{{{RECEIPT_NS}}}{name}")
                  for name in ("sessionId", "messageId", "serviceId", "receivedAt", "requestDigest")}
        outcome = {"valid": True, "batched": verified.batched, "signedBy": verified.signer.identity.display_name(),
                   "requestDigestChecked": document is not None, **fields}
    if args.json:
        print(json.dumps(outcome, ensure_ascii=False, indent=2))
    else:
        print("\n".join(f"{name:<22} {value}" for name, value in outcome.items()))
    return 0 if outcome["valid"] else 1


async def _with_revocation(verified: VerifiedDocument, settings: RevocationSettings) -> VerifiedDocument:
    """Ask OCSP/CRL as the gateway does (URLs from the certificate unless the settings override them)."""
    if settings.mode is RevocationMode.OFF:
        return verified
    async with aiohttp.ClientSession() as session:
        return await apply_revocation(verified, RevocationChecker(settings, session), settings.mode)


def _loaded_trust(args: argparse.Namespace) -> tuple[TrustStore, RevocationSettings] | None:
    """:func:`_trust_and_revocation`, or None (the error printed) when a trust certificate is unreadable."""
    try:
        return _trust_and_revocation(args)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        print(f"error: a trust certificate is neither PEM nor DER: {exc}", file=sys.stderr)
        return None


def _trust_and_revocation(args: argparse.Namespace) -> tuple[TrustStore, RevocationSettings]:
    """The trust anchors and the revocation settings: --trust's with the gateway's defaults (hard_fail with the
    certificate's AIA and CRL distribution points), --config's, else the test PKI's ``trust.toml`` (its
    ``[trust]`` and ``[revocation]``, as the demo's gateway checks); --revocation overrides the mode."""
    if args.trust:
        trust, revocation = TrustStore.from_files(args.trust, args.intermediate), RevocationSettings()
    elif args.config:
        settings = load_settings(args.config)
        trust = TrustStore.from_files(settings.trust.anchors, settings.trust.intermediates)
        revocation = settings.revocation
    else:
        trust, revocation = _trust_file(args.state_dir.resolve() / "pki" / TRUST_FILE)
    if args.revocation:
        revocation = replace(revocation, mode=RevocationMode(args.revocation))
    return trust, revocation


TRUST_FILE = "trust.toml"
"A configuration fragment holding ``[trust]`` and ``[revocation]``; a test PKI writes one beside its certificates."


def trust_store_file(path: Path) -> TrustStore:
    """The trust store of a ``trust.toml`` (as `verify` reads it); ConfigError when unusable."""
    return _trust_file(path)[0]


def _trust_file(path: Path) -> tuple[TrustStore, RevocationSettings]:
    """The trust anchors named by the ``[trust]`` table of ``path`` (paths relative to its folder) and the
    revocation settings of its ``[revocation]`` (the gateway's defaults where it has none)."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist: give --trust PEM or --config FILE, or --state-dir of a test PKI "
                          f"(`egov-gateway pki list --dir {path.parent}` writes the file)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        settings = settings_from_dict({"trust": raw.get("trust", {}), "revocation": raw.get("revocation", {})},
                                      base_dir=path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    trust = settings.trust
    if not trust.anchors:
        # An empty store would report every signature as untrusted, which reads like a verdict on the document.
        raise ConfigError(f"{path}: [trust] names no anchors")
    return TrustStore.from_files(trust.anchors, trust.intermediates), settings.revocation


def _read(path: Path) -> etree._Element | None:
    try:
        return parse_untrusted(path.read_bytes(), XmlLimits(max_bytes=16 * 1024 * 1024))
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
    except UnsafeXmlError as exc:
        print(f"error: {path} is not acceptable XML: {exc.detail}", file=sys.stderr)
    return None


def render(report: ValidationReport) -> str:
    """The report as a person reads it."""
    lines = [f"Indication       {report.indication}"
             + (f" / {report.sub_indication}  ({report.error_code})" if report.sub_indication else "")]
    signer = report.signer
    if signer:
        lines.append(f"Signer           {signer.name}" + (f", {signer.organisation}" if signer.organisation else ""))
        lines.append(f"  IIN / BIN      {signer.iin or '-'} / {signer.bin or '-'}")
        lines.append(f"  roles          {', '.join(signer.roles) or '-'}")
        lines.append(f"  key purpose    {signer.key_purpose}; policies {', '.join(signer.policies) or '-'}")
        lines.append(f"  certificate    serial {signer.certificate_serial}")
    lines.append(f"Format           {report.signature_format}")
    lines.append(f"Algorithms       {_short(report.signature_algorithm)} / {_short(report.digest_algorithm)}")
    if report.claimed_signing_time:
        lines.append(f"Signing time     {_when(report.claimed_signing_time)} (claimed by the signer)")
    lines.append(f"Validated at     {_when(report.validation_time)}")
    for index, element in enumerate(report.chain):
        lines.append(f"{'Chain' if index == 0 else '':<16} {element.subject}  (until {_when(element.not_after)})")
    if report.revocation:
        revocation: Any = report.revocation
        lines.append(f"Revocation       {revocation.status} via {revocation.source}"
                     + (f" at {_when(revocation.checked_at)}" if revocation.checked_at else ""))
    lines.extend(f"Error            {error}" for error in report.errors)
    lines.extend(f"Warning          {warning}" for warning in report.warnings)
    return "\n".join(lines)


def _short(uri: str | None) -> str:
    return (uri or "-").rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
