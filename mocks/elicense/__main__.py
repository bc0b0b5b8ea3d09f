"""``python -m mocks.elicense --pki DIR --port 8720 --scale 3600``: the E-licensing SOAP mock.

By default one real second is one simulated hour, so a whole procedure (about eight working days)
runs in a few minutes; ``POST /_control/clock`` moves or re-speeds the clock while it runs.
"""

from __future__ import annotations

import argparse
import logging
from datetime import datetime
from pathlib import Path

from aiohttp import web

from mocks.elicense.app import create_elicense_app
from mocks.elicense.clock import SimulatedClock
from mocks.elicense.steps import KZ_TIME
from mocks.elicense.wss import gateway_calls_only
from signing.signer import DocumentSigner, SigningKey


def _start(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=KZ_TIME)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m mocks.elicense", description="E-licensing mock (SOAP)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8720, help="port to listen on (default: %(default)s)")
    parser.add_argument("--pki", type=Path, help="test PKI directory (mocks.pki); its 'elicense' system key signs "
                        "the results (generated there if missing). Without it results are unsigned.")
    parser.add_argument("--scale", type=float, default=3600.0,
                        help="simulated seconds per real second (default: %(default)g, 1 s = 1 h; 0 stops time)")
    parser.add_argument("--start", type=_start, default=None,
                        help="simulated start time, ISO 8601 (default: now; no offset means +05:00)")
    parser.add_argument("--require-ws-security", action="store_true",
                        help="refuse calls not WS-Security-signed by the PKI's 'gateway' system certificate "
                             "(needs --pki; the gateway's service entry then sets ws_security = true)")
    args = parser.parse_args(argv)
    if args.require_ws_security and args.pki is None:
        parser.error("--require-ws-security needs --pki")
    logging.basicConfig(level=logging.INFO)
    signer, ws_security = None, None
    if args.pki is not None:
        from mocks.pki import ensure_pki  # only the demo needs the PKI generator

        pki = ensure_pki(args.pki)
        keys = pki.systems["elicense"]
        signer = DocumentSigner(SigningKey.from_pem(keys.cert, keys.key))
        ws_security = gateway_calls_only(pki) if args.require_ws_security else None
    else:
        logging.getLogger("mocks.elicense").warning("no --pki: results will NOT be signed")
    clock = SimulatedClock(args.start or datetime.now(KZ_TIME), args.scale)
    web.run_app(create_elicense_app(signer=signer, clock=clock, ws_security=ws_security), host=args.host,
                port=args.port)


if __name__ == "__main__":
    main()
