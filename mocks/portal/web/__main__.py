"""``python -m mocks.portal.web --pki DIR --gateway URL [--port 8700] [--sender portal] [--password PW]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from pathlib import Path

from mocks.demo_secrets import read_demo_secrets
from mocks.pki import load_pki
from mocks.portal.web.app import run_portal, serve_forever


def main(argv: list[str] | None = None) -> int:
    """Run the portal until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m mocks.portal.web", description=__doc__)
    parser.add_argument("--pki", type=Path, default=Path(os.environ.get("EGOV_STATE_DIR", ".egov")) / "pki",
                        help="the test PKI directory (default: $EGOV_STATE_DIR/pki or .egov/pki)")
    parser.add_argument("--gateway", default="http://127.0.0.1:8080", help="the gateway's base URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--sender", default="portal", help="the portal's senderId on the gateway")
    parser.add_argument("--password", default=os.environ.get("EGOV_SENDER_PASSWORD"),
                        help="the sender's password (default: $EGOV_SENDER_PASSWORD, else the demo's from "
                             "demo-secrets.json next to the PKI directory)")
    args = parser.parse_args(argv)
    if args.password is None:
        kept = read_demo_secrets(args.pki.parent)
        password = kept.of(args.sender) if kept else None
        if password is None:
            parser.error("no --password and no demo-secrets.json beside the PKI: start the demo once, or give one")
        args.password = password
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def run() -> None:
        runner = await run_portal(pki=load_pki(args.pki), gateway_url=args.gateway, sender=args.sender,
                                  password=args.password, host=args.host, port=args.port)
        print(f"egov portal (test) on http://{args.host}:{args.port}/ -> gateway {args.gateway}", flush=True)
        await serve_forever(runner)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
