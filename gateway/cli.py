"""The ``egov-gateway`` command: serve, demo, submit, pki, hash-password."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from pathlib import Path

from gateway import deadletters, tools
from gateway.config import ConfigError, load_settings
from gateway.redis_embedded import EmbeddedRedisError
from gateway.runtime import DEMO_PASSWORD, DEMO_PORTS, DEMO_SENDER, READER_TICKET_SERVICE, demo, serve, with_port
from gateway.senders import hash_password
from signing.signer import SignerKeyError

DEFAULT_STATE_DIR = Path(os.environ.get("EGOV_STATE_DIR", ".egov"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="egov-gateway", description=__doc__)
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run the gateway from a TOML configuration")
    serve_cmd.add_argument("--config", type=Path, required=True)
    serve_cmd.add_argument("--port", type=int, default=None, help="override listen.port")
    serve_cmd.add_argument("--workers", type=int, default=1,
                           help="gateway processes sharing the port (SO_REUSEPORT) and one Redis (default 1)")

    demo_cmd = commands.add_parser("demo", help="embedded Redis + test PKI + library mock + gateway")
    demo_cmd.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    for name, port in DEMO_PORTS.items():
        flag = "--port" if name == "gateway" else f"--{name}-port"  # --web-port is the portal's web site
        demo_cmd.add_argument(flag, dest=f"{name}_port", type=int, default=port, help=f"{name} (default {port})")
    demo_cmd.add_argument("--elicense-scale", type=float, default=50_000.0,
                          help="how many times faster E-licensing's regulated days pass (default 50000)")
    demo_cmd.add_argument("--manual-desk", action="store_true",
                          help="the library commission waits for decisions from `python -m mocks.backoffice`")

    submit = commands.add_parser("submit", help="sign a sample application as a test person and send it")
    who = submit.add_mutually_exclusive_group(required=True)
    who.add_argument("--as", dest="person", help="test person handle (see `pki list`)")
    who.add_argument("--scenario", type=Path, help="run the [[case]] tables of a TOML file, compare outcomes")
    submit.add_argument("--service", default=READER_TICKET_SERVICE)
    submit.add_argument("--gateway", default="http://127.0.0.1:8080")
    submit.add_argument("--sender", default=DEMO_SENDER)
    submit.add_argument("--password", default=os.environ.get("EGOV_SENDER_PASSWORD", DEMO_PASSWORD))
    submit.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    submit.add_argument("--message-id", default=None, help="reuse a messageId (to see idempotency)")
    submit.add_argument("--key", choices=["sign", "auth"], default="sign", help="which of the person's keys")
    submit.add_argument("--json", action="store_true", help="print the outcome as JSON (with the result XML)")
    submit.add_argument("--out", type=Path, default=None, help="save the signed result document here")
    submit.add_argument("--channel", choices=["sync", "async"], default="sync",
                        help="SHEP SyncChannel (default) or AsyncChannel")
    submit.add_argument("--wait", action="store_true",
                        help="follow a long-running application in the cabinet until its result arrives")
    submit.add_argument("--timeout", type=float, default=180.0, help="seconds --wait waits at most")
    submit.add_argument("--items", choices=["ordinary", "heritage", "treasure"], default=None,
                        help="E-licensing: which cultural values to apply for (treasure is refused)")

    pki = commands.add_parser("pki", help="the test PKI")
    pki_commands = pki.add_subparsers(dest="pki_command", required=True)
    init = pki_commands.add_parser("init", help="generate a test PKI")
    init.add_argument("--out", type=Path, required=True)
    listing = pki_commands.add_parser("list", help="list test people")
    listing.add_argument("--dir", type=Path, default=DEFAULT_STATE_DIR / "pki")

    commands.add_parser("hash-password", help="hash a sender password for the configuration (reads stdin)")
    tools.add_commands(commands, DEFAULT_STATE_DIR)
    deadletters.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=(args.log_level or "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        return _run(args)
    except (ConfigError, SignerKeyError, EmbeddedRedisError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        settings = with_port(load_settings(args.config), args.port)
        logging.getLogger().setLevel(args.log_level or settings.log_level)
        if args.workers > 1:
            from gateway.workers import serve_workers

            serve_workers(settings, args.workers)
        else:
            asyncio.run(serve(settings))
        return 0
    if args.command == "demo":
        ports = {name: getattr(args, f"{name}_port") for name in DEMO_PORTS}
        asyncio.run(demo(args.state_dir.resolve(), ports=ports, elicense_scale=args.elicense_scale,
                         manual_desk=args.manual_desk))
        return 0
    if args.command == "submit":
        from gateway.scenario import run_scenario
        from gateway.submit import submit

        return run_scenario(args) if args.scenario else submit(args)
    if args.command == "dlq":
        return deadletters.run(args)
    if args.command == "sign":
        return tools.sign(args)
    if args.command == "verify":
        return tools.verify(args)
    if args.command == "pki":
        return _pki(args)
    if args.command == "hash-password":
        password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass()
        if not password:
            print("error: empty password", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    return 2  # pragma: no cover - argparse enforces the choices


def _pki(args: argparse.Namespace) -> int:
    from mocks.pki import generate_pki, load_pki

    if args.pki_command == "init":
        pki = generate_pki(args.out)
        print(f"test PKI written to {pki.root} ({len(pki.people)} people, p12 password {pki.p12_password!r})")
        return 0
    pki = load_pki(args.dir)
    rows = [
        {"handle": p.handle, "kind": p.kind, "name": f"{p.surname} {p.name}", "organisation": p.organisation,
         "roles": list(p.roles), "use": p.description,
         "signSerial": format(p.sign.load_certificate().serial_number, "x")}
        for p in pki.people.values()
    ]
    print(json.dumps(rows, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
