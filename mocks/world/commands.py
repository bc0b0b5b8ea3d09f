"""The test world's commands, plugged into `egov-gateway` through the ``egov_gateway.commands`` entry points.

``egov-gateway demo``, ``submit`` and ``pki`` live here, above the product: the gateway's CLI finds them by
entry point name and loads this module only when one of them is run, so a production ``serve`` never imports
the simulated world. Each function takes the command's own arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from gateway.shell.serve import DEFAULT_STATE_DIR
from mocks.demo_secrets import DEMO_SENDER, demo_secrets, read_demo_secrets
from mocks.portal.applicant import READER_TICKET_SERVICE
from mocks.world.demo import DEFAULT_GATEWAY_URL, DEMO_PORTS


def demo(argv: list[str]) -> int:
    """`egov-gateway demo`: the gateway and its whole simulated world, until Ctrl-C."""
    parser = demo_parser()
    args = parser.parse_args(argv)
    if args.print_password:  # for scripts: EGOV_OPERATOR_PASSWORD=$(egov-gateway demo --print-password operator)
        password = demo_secrets(args.state_dir.resolve()).of(args.print_password)
        if password is None:
            parser.error(f"--print-password: the demo has no sender {args.print_password!r}")
        print(password)
        return 0
    if not 0 < args.seal_seconds < 86_400:
        parser.error("--seal-seconds must be positive")
    if args.elicense_scale < 1:
        parser.error("--elicense-scale must be at least 1")
    if args.redis_cluster and not 3 <= args.redis_cluster <= 16:
        parser.error("--redis-cluster must be 3..16 primaries (a cluster needs a majority to survive a failure)")
    if args.callback_url is not None and not _http_url(args.callback_url):
        parser.error("--callback-url must be an http:// or https:// URL")
    from mocks.world.demo import run_demo

    ports = {name: getattr(args, f"{name}_port") for name in DEMO_PORTS}
    asyncio.run(run_demo(args.state_dir.resolve(), ports=ports, elicense_pace=args.elicense_scale,
                         manual_desk=args.manual_desk, fresh=args.fresh, seal_seconds=args.seal_seconds,
                         redis_cluster=args.redis_cluster, callback_url=args.callback_url))
    return 0


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def demo_parser() -> argparse.ArgumentParser:
    """The options of `egov-gateway demo` (ports as ``<name>_port``, names of :data:`DEMO_PORTS`)."""
    parser = argparse.ArgumentParser(prog="egov-gateway demo",
                                     description="embedded Redis + test PKI + mock back-ends + portal + gateway")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--fresh", action="store_true",
                        help="start a clean world: forget the mocks' state and the gateway's Redis data (not the PKI)")
    for name, port in DEMO_PORTS.items():
        flag = "--port" if name == "gateway" else f"--{name}-port"
        parser.add_argument(flag, dest=f"{name}_port", type=int, default=port,
                            help=f"{_PORT_HELP[name]} (default {port})")
    # The portal site's flag before the rename; --portal-port itself now names the site, not the callbacks.
    parser.add_argument("--web-port", dest="portal_port", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--elicense-scale", type=float, default=50_000.0,
                        help="how many times faster than its regulated deadlines E-licensing works, in real time "
                             "(default 50000: two working days take a few seconds)")
    parser.add_argument("--seal-seconds", type=float, default=10.0,
                        help="how often the message log is sealed (signed, timestamped, archived) (default 10)")
    parser.add_argument("--redis-cluster", metavar="N", type=int, default=0,
                        help="keep the gateway's state on a local Redis Cluster of N primaries (at least 3), one "
                             "replica each, made of the bundled redis-server (default: one embedded server)")
    parser.add_argument("--callback-url", metavar="URL", default=None,
                        help="push the AsyncChannel callbacks of the sender portal (sendMessage and "
                             "changeMassageStatusNotification, SOAP) to URL, your own IAsyncChannelClient "
                             "(default: the demo's callback endpoint, http://127.0.0.1:CALLBACK_PORT/shep/client)")
    parser.add_argument("--manual-desk", action="store_true",
                        help="the library commission waits for decisions from `python -m mocks.backoffice`")
    parser.add_argument("--print-password", metavar="SENDER", default=None,
                        help="print the demo's password of SENDER (portal, portal-pull, commission-desk, operator) "
                             "from STATE_DIR/demo-secrets.json, made if missing, and exit")
    return parser


_PORT_HELP = {"gateway": "the gateway", "portal": "the egov portal's web site", "library": "KazNEB library",
              "elicense": "E-licensing", "desk": "the manual desk's control API",
              "callback": "the portal's SHEP callback endpoint", "revocation": "the test PKI's OCSP/CRL service",
              "tsa": "the test PKI's time-stamping authority (RFC 3161)", "deposit": "the software deposit operator"}


def submit(argv: list[str]) -> int:
    """`egov-gateway submit`: act as the portal for one application, or run a scenario file."""
    from mocks.world.submit import EXIT_HELP

    parser = argparse.ArgumentParser(
        prog="egov-gateway submit", description="sign a sample application as a test person and send it",
        epilog=f"exit codes with --as: {EXIT_HELP}; "
               "with --scenario: 0 every outcome as expected, 1 some differ, 2 the file cannot be used")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--as", dest="person", help="test person handle (see `pki list`)")
    who.add_argument("--scenario", type=Path, help="run the [[case]] tables of a TOML file, compare outcomes")
    parser.add_argument("--service", default=READER_TICKET_SERVICE)
    parser.add_argument("--gateway", default=DEFAULT_GATEWAY_URL)
    parser.add_argument("--sender", default=DEMO_SENDER)
    parser.add_argument("--password", default=os.environ.get("EGOV_SENDER_PASSWORD"),
                        help="the sender's password (default: $EGOV_SENDER_PASSWORD, else the demo's from "
                             "STATE_DIR/demo-secrets.json)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--message-id", default=None, help="reuse a messageId (to see idempotency)")
    parser.add_argument("--key", choices=["sign", "auth", "gost-sign", "gost-auth"], default="sign",
                        help="which of the person's keys (gost-*: their GOST 34.10-2015 key, for those holding one)")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON (with the result XML)")
    parser.add_argument("--out", type=Path, default=None, help="save the signed result document here")
    parser.add_argument("--channel", choices=["sync", "async"], default="sync",
                        help="SHEP SyncChannel (default) or AsyncChannel")
    parser.add_argument("--wait", action="store_true",
                        help="follow a long-running application in the cabinet until its result arrives")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds --wait waits at most")
    parser.add_argument("--items", choices=["ordinary", "heritage", "treasure"], default=None,
                        help="E-licensing: which cultural values to apply for (treasure is refused)")
    parser.add_argument("--package", type=Path, default=None,
                        help="egov.software-deposit: the package (from `deposit pack`) to upload and deposit")
    parser.add_argument("--software-code", default=None,
                        help="egov.software-deposit: the architecture-portal code (default: the demo's registered one)")
    parser.add_argument("--ws-security", metavar="SYSTEM", default=None,
                        help="sign the SOAP envelope with WS-Security by this test-PKI system certificate "
                             "(e.g. portal, for the demo's sender portal-wss)")
    args = parser.parse_args(argv)
    if args.password is None and args.ws_security is None:
        kept = read_demo_secrets(args.state_dir)
        args.password = kept.of(args.sender) if kept else None
        if args.password is None:  # sent without one, the gateway refuses it with CLIENT_BAD_CREDENTIALS
            print(f"warning: no --password, and {args.state_dir / 'demo-secrets.json'} has none for "
                  f"{args.sender!r}: start the demo once (it makes it), or set $EGOV_SENDER_PASSWORD",
                  file=sys.stderr)
    if args.scenario:
        from mocks.world.scenario import run_scenario

        return run_scenario(args)
    from mocks.world.submit import submit as submit_one

    return submit_one(args)


def deposit(argv: list[str]) -> int:
    """`egov-gateway deposit pack DIR --name NAME --version V [--out FILE]`: the deposit's package and act tables."""
    from mocks.world.deposit import pack_command

    return pack_command(argv)


def pki(argv: list[str]) -> int:
    """`egov-gateway pki init|list`: make the NCA-like test PKI, or list its people."""
    parser = argparse.ArgumentParser(prog="egov-gateway pki", description="the test PKI")
    commands = parser.add_subparsers(dest="pki_command", required=True)
    init = commands.add_parser("init", help="generate a test PKI")
    init.add_argument("--out", type=Path, required=True)
    listing = commands.add_parser("list", help="list test people")
    listing.add_argument("--dir", type=Path, default=DEFAULT_STATE_DIR / "pki")
    args = parser.parse_args(argv)
    from mocks.pki import generate_pki, load_pki

    if args.pki_command == "init":
        made = generate_pki(args.out)
        print(f"test PKI written to {made.root} ({len(made.people)} people, p12 password {made.p12_password!r})")
        return 0
    loaded = load_pki(args.dir)
    rows = [
        {"handle": p.handle, "kind": p.kind, "name": f"{p.surname} {p.name}", "iin": p.iin, "bin": p.bin,
         "organisation": p.organisation,
         "roles": list(p.roles), "use": p.description,
         "signSerial": format(p.sign.load_certificate().serial_number, "x")}
        for p in loaded.people.values()
    ]
    print(json.dumps(rows, ensure_ascii=False, indent=2))
    return 0
