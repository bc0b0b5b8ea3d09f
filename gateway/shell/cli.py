"""The ``egov-gateway`` command: serve, hash-password, sign, verify, dlq, upload, redis-memory, and plugged-in commands.

Commands registered under the ``egov_gateway.commands`` entry point group (the test world's ``demo``,
``submit`` and ``pki``) are listed by name from the package metadata and imported only when run, so the
product never loads them otherwise and runs without them installed.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from gateway.access.published import refuse_published_hashes
from gateway.access.senders import hash_password
from gateway.config import ConfigError, load_settings
from gateway.messagelog import commands as log_commands
from gateway.shell import dlq, memory, tools, upload_cmd
from gateway.shell.loop import run as run_loop
from gateway.shell.redis_embedded import EmbeddedRedisError
from gateway.shell.serve import DEFAULT_STATE_DIR, serve, with_port
from signing.signer import SignerKeyError

PLUGIN_GROUP = "egov_gateway.commands"


def _plugins() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=PLUGIN_GROUP)}


def _parser(plugins: dict[str, EntryPoint]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="egov-gateway",
                                     description="SHEP intake, XMLDSig verification, routing, the cabinet")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run the gateway from a TOML configuration")
    serve_cmd.add_argument("--config", type=Path, required=True)
    serve_cmd.add_argument("--port", type=int, default=None, help="override listen.port")
    serve_cmd.add_argument("--workers", type=int, default=1,
                           help="gateway processes sharing the port (SO_REUSEPORT) and one Redis (default 1)")

    commands.add_parser("hash-password", help="hash a sender password for the configuration (reads stdin)")
    tools.add_commands(commands, DEFAULT_STATE_DIR)
    dlq.add_commands(commands)
    log_commands.add_commands(commands, DEFAULT_STATE_DIR)
    upload_cmd.add_commands(commands)
    memory.add_commands(commands, DEFAULT_STATE_DIR)
    for name, point in sorted(plugins.items()):
        # Its own parser reads the rest of the command line; `egov-gateway NAME --help` shows it.
        origin = point.value.split(":")[0]
        commands.add_parser(name, add_help=False, help=f"from {origin}; `egov-gateway {name} --help` for more")
    return parser


def main(argv: list[str] | None = None) -> int:
    plugins = _plugins()
    parser = _parser(plugins)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if rest and args.command not in plugins:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(
        level=(args.log_level or "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        if args.command in plugins:
            return _run_plugin(plugins[args.command], rest)
        return _run(args)
    except (ConfigError, SignerKeyError, EmbeddedRedisError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run_plugin(point: EntryPoint, argv: list[str]) -> int:
    try:
        command: Callable[[list[str]], int] = point.load()
    except ImportError as exc:
        # The test world is optional: a production install without it gets one line, not a traceback.
        print(f"error: `{point.name}` needs {point.module}, which cannot be imported: "
              f"no module named {exc.name!r} (install the test world to use it)", file=sys.stderr)
        return 2
    return command(argv)


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        settings = with_port(load_settings(args.config), args.port)
        refuse_published_hashes(settings.senders)  # a copied example must not become a working login
        logging.getLogger().setLevel(args.log_level or settings.log_level)
        if args.workers > 1:
            from gateway.shell.workers import serve_workers

            return serve_workers(settings, args.workers)
        else:
            run_loop(serve(settings), settings.listen.event_loop)
        return 0
    if args.command == "dlq":
        return dlq.run(args)
    if args.command == "log":
        return log_commands.run(args, tools.trust_store_file)
    if args.command == "redis-memory":
        return memory.run(args)
    if args.command == "upload":
        return upload_cmd.run(args)
    if args.command == "sign":
        return tools.sign(args)
    if args.command == "verify":
        return tools.verify(args)
    if args.command == "verify-receipt":
        return tools.verify_receipt_command(args)
    if args.command == "hash-password":
        password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass()
        if not password:
            print("error: empty password", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
