"""``egov-gateway upload``: stream a package to a gateway over tus, or resume an interrupted upload."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from gateway.uploads.client import UploadError, create_upload, file_sha256, upload_package

PASSWORD_ENV = "EGOV_SENDER_PASSWORD"


def add_commands(commands: Any) -> None:
    upload = commands.add_parser("upload", help="upload a package to a gateway (tus, resumable)")
    upload.add_argument("file", type=Path)
    upload.add_argument("--url", required=True, help="the gateway's base URL, e.g. http://127.0.0.1:8080")
    upload.add_argument("--sender", required=True, help="your senderId (HTTP Basic user)")
    upload.add_argument("--password-env", default=PASSWORD_ENV,
                        help=f"environment variable holding the sender's password (default {PASSWORD_ENV}; "
                             "unset: asked for)")
    upload.add_argument("--resume", metavar="URL", default=None,
                        help="continue this upload from the offset the gateway holds")
    upload.add_argument("--sha256", default=None, help="the file's SHA-256 in hex (computed when absent)")


def run(args: argparse.Namespace) -> int:
    password = os.environ.get(args.password_env) or getpass.getpass(f"password of {args.sender}: ")
    auth = aiohttp.encode_basic_auth(args.sender, password)
    return asyncio.run(_upload(args, auth))


async def _upload(args: argparse.Namespace, auth: str) -> int:
    path: Path = args.file
    url: str | None = args.resume
    async with aiohttp.ClientSession() as session:
        try:
            if url is None:
                digest = args.sha256 or await asyncio.to_thread(file_sha256, path)
                url = await create_upload(session, args.url, auth, length=path.stat().st_size, sha256=digest,
                                          filename=path.name)
                print(f"upload {url} (sha256 {digest})", file=sys.stderr)
            await upload_package(session, args.url, auth, path, resume_url=url)
        except UploadError as exc:
            retry = exc.status in (423, 503) and url is not None  # a cut PATCH still running; storage trouble
            print(f"error: {exc}" + (f"; try again with --resume {url}" if retry else ""), file=sys.stderr)
            return 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            hint = f"; resume with --resume {url}" if url else ""
            print(f"error: the connection failed ({type(exc).__name__}){hint}", file=sys.stderr)
            return 1
    print(url)
    return 0
