"""A tus client for package uploads: create (or resume) an upload and stream a file into it.

Used by the CLI, the mocks and the benchmark; it needs nothing of the gateway but the header names.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from gateway.uploads.headers import OFFSET_TYPE, TUS_VERSION, encode_metadata

TUS = {"Tus-Resumable": TUS_VERSION}


Credentials = aiohttp.BasicAuth | str
"""HTTP Basic credentials: a BasicAuth, or the Authorization value ``aiohttp.encode_basic_auth(id, password)``
gives (aiohttp 3.14 deprecates BasicAuth and the ``auth=`` parameter; the header works with every version)."""


def _auth(auth: Credentials) -> dict[str, str]:
    return {**TUS, "Authorization": auth if isinstance(auth, str) else auth.encode()}


class UploadError(Exception):
    """The gateway refused an upload request: its HTTP status and problem code."""

    def __init__(self, status: int, code: str | None, detail: str) -> None:
        self.status, self.code, self.detail = status, code, detail
        super().__init__(f"{status} {code or ''}: {detail}")


def file_sha256(path: Path, chunk_size: int = 8 << 20) -> str:
    """Lowercase hex SHA-256 of a file, read in chunks (blocking: run it in a thread)."""
    hasher = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        while chunk := stream.read(chunk_size):
            hasher.update(chunk)
    return hasher.hexdigest()


async def _refusal(response: aiohttp.ClientResponse) -> UploadError:
    """The refusal's status, problem code and detail (a problem document's, else the start of the body)."""
    text = await response.text() if response.method != "HEAD" else ""
    if response.content_type == "application/problem+json":
        try:
            body: Any = await response.json(content_type=None)
            return UploadError(response.status, body.get("code"), str(body.get("detail") or body.get("title")))
        except (ValueError, AttributeError):
            pass
    return UploadError(response.status, None, text[:500])


async def file_chunks(path: Path, offset: int, chunk_size: int,
                      on_progress: Callable[[int, int], None] | None = None) -> AsyncIterator[bytes]:
    """The file from ``offset`` on, each chunk read in a worker thread."""
    total = path.stat().st_size
    stream = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below, also when the request is abandoned
    try:
        await asyncio.to_thread(stream.seek, offset)
        done = offset
        while chunk := await asyncio.to_thread(stream.read, chunk_size):
            done += len(chunk)
            yield chunk
            if on_progress is not None:
                on_progress(done, total)
    finally:
        stream.close()


async def create_upload(session: aiohttp.ClientSession, base_url: str, auth: Credentials, *, length: int,
                        sha256: str, filename: str) -> str:
    """POST a new upload; its absolute URL."""
    headers = {**_auth(auth), "Upload-Length": str(length),
               "Upload-Metadata": encode_metadata({"filename": filename, "sha256": sha256})}
    async with session.post(f"{base_url.rstrip('/')}/api/v1/uploads", headers=headers) as response:
        if response.status != 201:
            raise await _refusal(response)
        return urljoin(str(response.url), response.headers["Location"])


async def upload_offset(session: aiohttp.ClientSession, url: str, auth: Credentials) -> tuple[int, int]:
    """HEAD an upload: (Upload-Offset, Upload-Length)."""
    async with session.head(url, headers=_auth(auth)) as response:
        if response.status != 200:
            raise await _refusal(response)
        return int(response.headers["Upload-Offset"]), int(response.headers["Upload-Length"])


async def upload_package(session: aiohttp.ClientSession, base_url: str, auth: Credentials, path: Path, *,
                         sha256: str | None = None, chunk_size: int = 8 << 20, resume_url: str | None = None,
                         on_progress: Callable[[int, int], None] | None = None) -> str:
    """Upload ``path`` (streamed, one PATCH from the server's offset to the end); the upload's URL.

    With ``resume_url`` the upload is continued from the offset its HEAD reports (nothing before it is re-sent).
    ``sha256`` saves hashing the file first. Raises :class:`UploadError` on a refusal (e.g. 422
    UPLOAD_DIGEST_MISMATCH) and aiohttp's errors when the connection fails (resume with the returned URL's
    predecessor: :func:`create_upload` then ``resume_url``).
    """
    size = path.stat().st_size
    if resume_url is None:
        digest = sha256 if sha256 is not None else await asyncio.to_thread(file_sha256, path)
        url = await create_upload(session, base_url, auth, length=size, sha256=digest, filename=path.name)
        offset = 0
    else:
        url = resume_url
        offset, length = await upload_offset(session, url, auth)
        if length != size:
            raise UploadError(409, None, f"the upload is {length} bytes, the file {size}")
    if offset < size:
        headers = {**_auth(auth), "Content-Type": OFFSET_TYPE, "Upload-Offset": str(offset),
                   "Content-Length": str(size - offset)}
        body = file_chunks(path, offset, chunk_size, on_progress)
        async with session.patch(url, headers=headers, data=body) as response:
            if response.status != 204:
                raise await _refusal(response)
    return url
