"""Package uploads over tus 1.0.0 (issue 17, item 2): a real gateway on a socket with the session's real Redis.

Created, resumed after a cut connection without re-sending what arrived, refused with its exact code on every
wrong request, checked against its SHA-256 at the last byte (a mismatch leaves nothing behind), invisible to
other senders, expired and swept, and read back from storage in chunks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import resource
import signal
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import ContentLengthError
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from connectors.streaming import StreamedBody, content_digest, send_stream
from gateway.config import ConfigError, Settings, UploadSettings, load_settings
from gateway.packages.packages import PACKAGES, Packages
from gateway.packages.storage import FilesystemStorage
from gateway.shell.app import create_app
from gateway.shell.serve import start_site
from gateway.uploads import receive
from gateway.uploads.client import UploadError, create_upload, upload_offset, upload_package
from mocks.pki import TestPki
from tests.helpers import (
    CLI,
    PORTAL,
    PORTAL_B,
    PORTAL_B_PASSWORD,
    PORTAL_PASSWORD,
    ROOT,
    assert_problem,
    free_port,
    make_settings,
    wait_for,
)

MAX_BYTES = 64 << 20
AUTH = aiohttp.encode_basic_auth(PORTAL, PORTAL_PASSWORD)
TUS = {"Tus-Resumable": "1.0.0"}
MINE = {"Authorization": AUTH}
THEIRS = {"Authorization": aiohttp.encode_basic_auth(PORTAL_B, PORTAL_B_PASSWORD)}


@dataclass
class UploadGateway:
    url: str
    app: web.Application
    directory: Path
    settings: Settings

    @property
    def packages(self) -> Packages:
        return self.app[PACKAGES]


@pytest_asyncio.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, pki: TestPki, redis_url: str
                  ) -> AsyncIterator[UploadGateway]:
    """A gateway of its own (its own key prefix and state directory) with a 64 MB package limit."""
    state = tmp_path_factory.mktemp("uploads")
    port = free_port()
    base = make_settings(state, pki, port=port, library_url=f"http://127.0.0.1:{free_port()}")
    settings = replace(base, redis=replace(base.redis, key_prefix=f"up{uuid.uuid4().hex[:6]}"),
                       uploads=UploadSettings(max_package_bytes=MAX_BYTES, lock_wait_seconds=1.0,
                                              write_buffer_bytes=1 << 20))
    app = create_app(settings, redis_url=redis_url)
    runner = await start_site(app, "127.0.0.1", port)
    try:
        yield UploadGateway(settings.base_url, app, state / "packages", settings)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def package(tmp_path: Path, size: int, name: str = "package.zip") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def metadata(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def patch_headers(offset: int, **extra: str) -> dict[str, str]:
    return {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset), **extra}


async def cut_patch(url: str, offset: int, declared: int, body: bytes, *, pause_at: int = 0,
                    until: Callable[[], Awaitable[object]] | None = None) -> None:
    """A PATCH over a bare socket that declares ``declared`` bytes, sends ``body`` and ends its side of the
    connection, then closes once the gateway has answered (or closed): closing at once could reset the connection
    and drop the body's last bytes before the gateway read them. With ``until``, the first ``pause_at`` bytes go
    first and the rest only once ``until()`` holds."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    head = (f"PATCH {address.path} HTTP/1.1\r\nHost: {address.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: {AUTH}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {declared}\r\n\r\n")
    if until is not None:
        writer.write(head.encode() + body[:pause_at])
        await writer.drain()
        await wait_for(until)
        head, body = "", body[pause_at:]
    writer.write(head.encode() + body)
    await writer.drain()
    writer.write_eof()
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        await reader.readuntil(b"\r\n\r\n")
    writer.close()
    await writer.wait_closed()


async def test_options_advertise_the_protocol(gateway: UploadGateway, http: aiohttp.ClientSession) -> None:
    async with http.options(f"{gateway.url}/api/v1/uploads") as answer:
        assert answer.status == 204
        assert answer.headers["Tus-Version"] == "1.0.0"
        assert set(answer.headers["Tus-Extension"].split(",")) >= {"creation", "termination"}
        assert answer.headers["Tus-Max-Size"] == str(MAX_BYTES)


async def test_create_head_patch_find_and_read_back(gateway: UploadGateway, http: aiohttp.ClientSession,
                                                     tmp_path: Path) -> None:
    path, digest = package(tmp_path, 3 * 1024 * 1024 + 17)
    data = path.read_bytes()
    headers = {**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata(filename="app.zip", sha256=digest)}
    async with http.post(f"{gateway.url}/api/v1/uploads", headers={**headers, **MINE}) as answer:
        assert answer.status == 201, await answer.text()
        assert answer.headers["Tus-Resumable"] == "1.0.0"
        location = answer.headers["Location"]
        assert location.startswith("/api/v1/uploads/")
        assert "Upload-Expires" in answer.headers
    url = gateway.url + location
    async with http.head(url, headers={**TUS, **MINE}) as answer:
        assert answer.status == 200
        assert (answer.headers["Upload-Offset"], answer.headers["Upload-Length"]) == ("0", str(len(data)))
        assert answer.headers["Cache-Control"] == "no-store"
    middle = 1_000_001
    async with http.patch(url, headers={**patch_headers(0), **MINE}, data=data[:middle]) as answer:
        assert answer.status == 204, await answer.text()
        assert answer.headers["Upload-Offset"] == str(middle)
    assert await gateway.packages.find_package(PORTAL, digest) is None  # not complete yet
    async with http.patch(url, headers={**patch_headers(middle), **MINE}, data=data[middle:]) as answer:
        assert answer.status == 204, await answer.text()
        assert answer.headers["Upload-Offset"] == str(len(data))
    stored = await gateway.packages.find_package(PORTAL, digest)
    assert stored is not None
    assert (stored.sender_id, stored.sha256, stored.size, stored.filename) == (PORTAL, digest, len(data), "app.zip")
    assert stored.path.is_file()
    chunks = [chunk async for chunk in stored.chunks(chunk_size=1 << 20)]
    assert b"".join(chunks) == data and max(map(len, chunks)) == 1 << 20
    assert await gateway.packages.find_package(PORTAL_B, digest) is None  # another sender's digest index
    assert await gateway.packages.records.expires_in(stored.upload_id) is None  # complete: no expiry
    await stored.release()
    assert not stored.path.exists()
    assert await gateway.packages.find_package(PORTAL, digest) is None
    async with http.head(url, headers={**TUS, **MINE}) as answer:
        assert answer.status == 404


async def test_a_cut_patch_keeps_what_arrived_and_resumes_without_resending_it(
        gateway: UploadGateway, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    path, digest = package(tmp_path, 8 * 1024 * 1024)
    data = path.read_bytes()
    url = await create_upload(http, gateway.url, AUTH, length=len(data), sha256=digest, filename=path.name)
    half = len(data) // 2
    await cut_patch(url, 0, len(data), data[:half])
    offset, length = await upload_offset(http, url, AUTH)  # waits for the cut PATCH to have ended
    assert (offset, length) == (half, len(data))
    progress: list[int] = []
    assert await upload_package(http, gateway.url, AUTH, path, resume_url=url, chunk_size=1 << 20,
                                on_progress=lambda done, _total: progress.append(done)) == url
    sent = progress[-1] - half  # on_progress reports the file position after each chunk sent
    assert progress[0] == half + (1 << 20) and sent == len(data) - half
    stored = await gateway.packages.find_package(PORTAL, digest)
    assert stored is not None
    assert hashlib.sha256(b"".join([c async for c in stored.chunks()])).hexdigest() == digest
    await stored.release()


class HeldWrites(FilesystemStorage):
    """The gateway's own storage, whose first write waits until the test lets it go: meanwhile the body's reader
    waits for that write, busy, as a reader is when its disk is slower than the network."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.entered, self.go = threading.Event(), threading.Event()

    def open_append(self, upload_id: str, offset: int) -> BinaryIO:
        return cast(BinaryIO, _HeldStream(super().open_append(upload_id, offset), self))


class _HeldStream:
    def __init__(self, stream: BinaryIO, storage: HeldWrites) -> None:
        self.stream, self.storage = stream, storage

    def write(self, data: bytes) -> int:
        if not self.storage.entered.is_set():
            self.storage.entered.set()
            self.storage.go.wait(15)
        return self.stream.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


async def test_the_bytes_buffered_when_a_body_breaks_off_are_written(
        gateway: UploadGateway, http: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's readers raise a cut body's payload error before returning what it had buffered, when the cut
    comes while the reader is busy (here: waiting for a slow write). A real StreamReader driven as the server's
    protocol drives it: the first part read, then the rest arriving with the cut while the reader waits for the
    disk. Every byte is kept, in order."""
    path, digest = package(tmp_path, 3 * 1024 * 1024)
    data = path.read_bytes()
    url = await create_upload(http, gateway.url, AUTH, length=len(data), sha256=digest, filename=path.name)
    upload_id = url.rsplit("/", 1)[1]
    first, cut = 2 * 1024 * 1024 + 54321, 2 * 1024 * 1024 + 12345 + 100_000  # the first fills both 1 MiB buffers
    held = HeldWrites(gateway.directory)
    monkeypatch.setattr(gateway.packages, "storage", held)
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    protocol = BaseProtocol(loop)
    protocol.connection_made(transport)  # a connection the protocol reads from, as the server's has
    content = StreamReader(protocol, cut, loop=loop)  # a limit above it: reading is never paused

    def arrive(start: int, end: int) -> None:
        for piece in range(start, end, 1 << 16):
            content.feed_data(data[piece:min(piece + (1 << 16), end)])

    async def reader_waits_for_the_disk() -> bool:  # the first write is held: the second buffer's hand-off waits
        return held.entered.is_set()

    request = make_mocked_request("PATCH", urlsplit(url).path, headers={"Content-Length": str(len(data))},
                                  payload=content)
    records = gateway.packages.records
    record, token = await records.get(upload_id), await records.lock(upload_id)
    assert record is not None and token is not None
    with ThreadPoolExecutor(2) as threads:
        receiving = asyncio.create_task(
            receive.receive(request, gateway.packages, gateway.settings.uploads, record, token, threads))
        arrive(0, first)
        await wait_for(reader_waits_for_the_disk)
        arrive(first, cut)
        content.set_exception(ContentLengthError("Not enough data to satisfy content length header."))
        held.go.set()
        received = await receiving
    transport.close()
    theirs.close()
    await records.unlock(upload_id, token)
    assert (received.offset, received.complete) == (cut, False)
    assert held.size(upload_id) == cut
    assert await upload_offset(http, url, AUTH) == (cut, len(data))
    async with http.patch(url, headers={**patch_headers(cut), **MINE}, data=data[cut:]) as answer:
        assert answer.status == 204, await answer.text()  # the digest over the kept bytes and the rest matches
    stored = await gateway.packages.find_package(PORTAL, digest)
    assert stored is not None and stored.path.read_bytes() == data
    await stored.release()


async def test_a_digest_mismatch_is_refused_and_leaves_nothing(gateway: UploadGateway, http: aiohttp.ClientSession,
                                                                tmp_path: Path) -> None:
    path, digest = package(tmp_path, 2 * 1024 * 1024)
    wrong = hashlib.sha256(b"something else").hexdigest()
    before = set(gateway.packages.storage.ids())
    with pytest.raises(UploadError) as refused:
        await upload_package(http, gateway.url, AUTH, path, sha256=wrong)
    assert (refused.value.status, refused.value.code) == (422, "UPLOAD_DIGEST_MISMATCH")
    assert set(gateway.packages.storage.ids()) == before
    assert await gateway.packages.find_package(PORTAL, wrong) is None
    assert await gateway.packages.find_package(PORTAL, digest) is None
    # the same through the raw protocol: the problem document, and the upload gone
    url = await create_upload(http, gateway.url, AUTH, length=path.stat().st_size, sha256=wrong, filename="x.zip")
    upload_id = url.rsplit("/", 1)[1]
    async with http.patch(url, headers={**patch_headers(0), **MINE}, data=path.read_bytes()) as answer:
        problem = await assert_problem(answer, 422, "UPLOAD_DIGEST_MISMATCH")
        assert set(problem["messages"]) == {"kk", "ru", "en"}
    assert gateway.packages.storage.size(upload_id) is None
    assert await gateway.packages.records.get(upload_id) is None
    async with http.head(url, headers={**TUS, **MINE}) as answer:
        assert answer.status == 404


async def test_each_refusal_has_its_code(gateway: UploadGateway, http: aiohttp.ClientSession) -> None:
    uploads = f"{gateway.url}/api/v1/uploads"
    good = {**TUS, "Upload-Length": "100", "Upload-Metadata": metadata(filename="a.zip", sha256="ab" * 32)}
    unversioned = {k: v for k, v in good.items() if k != "Tus-Resumable"}
    async with http.post(uploads, headers={**unversioned, **MINE}) as answer:
        await assert_problem(answer, 412, "UPLOAD_TUS_VERSION")
        assert answer.headers["Tus-Version"] == "1.0.0"
    async with http.post(uploads, headers=good) as answer:
        await assert_problem(answer, 401, "CLIENT_BAD_CREDENTIALS")
    async with http.post(uploads, headers={**good, **MINE, "Upload-Length": str(MAX_BYTES + 1)}) as answer:
        await assert_problem(answer, 413, "UPLOAD_TOO_LARGE")
    for bad in ({"Upload-Length": "-1"}, {"Upload-Length": "0"}, {"Upload-Metadata": metadata(filename="a.zip")},
                {"Upload-Metadata": metadata(filename="a.zip", sha256="AB" * 32)},
                {"Upload-Metadata": metadata(filename="../a.zip", sha256="ab" * 32)},
                {"Upload-Metadata": "filename !!!,sha256 x"}, {"Upload-Defer-Length": "1"}):
        async with http.post(uploads, headers={**good, **bad, **MINE}) as answer:
            await assert_problem(answer, 400, "UPLOAD_HEADERS_INVALID")
    async with http.post(uploads, headers={**good, **MINE}) as answer:
        assert answer.status == 201
        url = gateway.url + answer.headers["Location"]
    async with http.patch(url, headers={**patch_headers(0), **MINE, "Content-Type": "application/octet-stream"},
                          data=b"x" * 10) as answer:
        await assert_problem(answer, 415, "CLIENT_UNSUPPORTED_MEDIA_TYPE")
    async with http.patch(url, headers={**patch_headers(5), **MINE}, data=b"x" * 10) as answer:
        await assert_problem(answer, 409, "UPLOAD_OFFSET_MISMATCH")
    async with http.patch(url, headers={**patch_headers(0), **MINE, "Upload-Offset": "one"}, data=b"x") as answer:
        await assert_problem(answer, 400, "UPLOAD_HEADERS_INVALID")
    async with http.patch(url, headers={**patch_headers(0), **MINE}, data=b"x" * 101) as answer:
        await assert_problem(answer, 413, "UPLOAD_TOO_LARGE")
    for missing in (f"{uploads}/{'0' * 32}", f"{uploads}/not-an-id"):
        async with http.head(missing, headers={**TUS, **MINE}) as answer:
            assert answer.status == 404
        async with http.patch(missing, headers={**patch_headers(0), **MINE}, data=b"x") as answer:
            await assert_problem(answer, 404, "UPLOAD_NOT_FOUND")
    upload_id = url.rsplit("/", 1)[1]
    token = await gateway.packages.records.lock(upload_id)  # a PATCH of another process still writing
    assert token is not None
    try:
        async with http.patch(url, headers={**patch_headers(0), **MINE}, data=b"x" * 10) as answer:
            await assert_problem(answer, 423, "UPLOAD_LOCKED")
            assert answer.headers["Retry-After"]
    finally:
        await gateway.packages.records.unlock(upload_id, token)
    async with http.head(url, headers={**TUS, **MINE}) as answer:  # nothing of the refused PATCHes was kept
        assert answer.headers["Upload-Offset"] == "0"


async def test_another_sender_can_neither_see_nor_touch_an_upload(gateway: UploadGateway,
                                                                  http: aiohttp.ClientSession) -> None:
    url = await create_upload(http, gateway.url, AUTH, length=10, sha256="cd" * 32, filename="a.zip")
    async with http.head(url, headers={**TUS, **THEIRS}) as answer:
        assert answer.status == 404
    async with http.patch(url, headers={**patch_headers(0), **THEIRS}, data=b"y" * 10) as answer:
        await assert_problem(answer, 404, "UPLOAD_NOT_FOUND")
    async with http.delete(url, headers={**TUS, **THEIRS}) as answer:
        await assert_problem(answer, 404, "UPLOAD_NOT_FOUND")
    assert await upload_offset(http, url, AUTH) == (0, 10)


async def test_termination_deletes_the_upload(gateway: UploadGateway, http: aiohttp.ClientSession) -> None:
    url = await create_upload(http, gateway.url, AUTH, length=10, sha256="cd" * 32, filename="a.zip")
    async with http.patch(url, headers={**patch_headers(0), **MINE}, data=b"z" * 4) as answer:
        assert answer.status == 204
    upload_id = url.rsplit("/", 1)[1]
    assert gateway.packages.storage.size(upload_id) == 4
    async with http.delete(url, headers={**TUS, **MINE}) as answer:
        assert answer.status == 204
    assert gateway.packages.storage.size(upload_id) is None
    async with http.head(url, headers={**TUS, **MINE}) as answer:
        assert answer.status == 404


async def test_an_incomplete_upload_expires_and_its_file_is_swept(gateway: UploadGateway,
                                                                 http: aiohttp.ClientSession) -> None:
    url = await create_upload(http, gateway.url, AUTH, length=10, sha256="ef" * 32, filename="a.zip")
    async with http.patch(url, headers={**patch_headers(0), **MINE}, data=b"w" * 3) as answer:
        assert answer.status == 204
    upload_id = url.rsplit("/", 1)[1]
    records = gateway.packages.records
    ttl = await records.expires_in(upload_id)
    assert ttl is not None and 86_000 < ttl <= 86_400
    await records.redis.pexpire(records.key(upload_id), 1)  # a day passes, as far as Redis can tell
    while await records.redis.exists(records.key(upload_id)):
        await asyncio.sleep(0.01)
    async with http.head(url, headers={**TUS, **MINE}) as answer:
        assert answer.status == 404
    assert gateway.packages.storage.size(upload_id) == 3
    assert await gateway.packages.sweep() >= 1
    assert gateway.packages.storage.size(upload_id) is None


async def test_a_32_mb_package_streams_in_one_patch_and_on_to_a_receiver(
        gateway: UploadGateway, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    path, digest = package(tmp_path, 32 * 1024 * 1024)
    url = await upload_package(http, gateway.url, AUTH, path)
    assert await upload_offset(http, url, AUTH) == (32 * 1024 * 1024, 32 * 1024 * 1024)
    stored = await gateway.packages.find_package(PORTAL, digest)
    assert stored is not None and stored.size == 32 * 1024 * 1024
    received: list[tuple[int, str, str]] = []

    async def operator(request: web.Request) -> web.Response:  # a loopback receiver, reading as bytes arrive
        hasher, count = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(1 << 16):
            hasher.update(chunk)
            count += len(chunk)
        received.append((count, hasher.hexdigest(), request.headers["Content-Digest"]))
        return web.Response(status=201)

    receiver = web.Application()
    receiver.router.add_put("/deposits", operator)
    port = free_port()
    runner = await start_site(receiver, "127.0.0.1", port)
    try:
        answer = await send_stream(http, f"http://127.0.0.1:{port}/deposits",
                                   StreamedBody(stored.chunks(), stored.size, stored.sha256))
    finally:
        await runner.cleanup()
    assert answer.status == 201
    assert received == [(stored.size, digest, content_digest(digest))]
    await stored.release()


@pytest_asyncio.fixture
async def sibling(gateway: UploadGateway, redis_url: str) -> AsyncIterator[UploadGateway]:
    """Another gateway process's twin: the same Redis, key prefix and package directory (no hashers of the
    first one's), one PATCH at a time, a 2 s idle timeout."""
    port = free_port()
    settings = replace(gateway.settings, listen=replace(gateway.settings.listen, port=port),
                       uploads=replace(gateway.settings.uploads, idle_timeout_seconds=2.0, lock_wait_seconds=5.0,
                                       max_concurrent_patches=1))
    app = create_app(settings, redis_url=redis_url)
    runner = await start_site(app, "127.0.0.1", port)
    try:
        yield UploadGateway(settings.base_url, app, gateway.directory, settings)
    finally:
        await runner.cleanup()


async def stalled_patch(url: str, offset: int, declared: int, body: bytes) -> asyncio.StreamWriter:
    """A PATCH that sends ``body`` of the ``declared`` bytes and then nothing (the caller closes it)."""
    address = urlsplit(url)
    _reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write((f"PATCH {address.path} HTTP/1.1\r\nHost: {address.netloc}\r\nTus-Resumable: 1.0.0\r\n"
                  f"Authorization: {AUTH}\r\nContent-Type: application/offset+octet-stream\r\n"
                  f"Upload-Offset: {offset}\r\nContent-Length: {declared}\r\n\r\n").encode() + body)
    await writer.drain()
    return writer


async def test_a_stalled_patch_in_another_process_ends_and_the_first_resumes_by_rehashing(
        gateway: UploadGateway, sibling: UploadGateway, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    path, digest = package(tmp_path, 3 * 1024 * 1024)
    data = path.read_bytes()
    third = len(data) // 3
    url = await create_upload(http, gateway.url, AUTH, length=len(data), sha256=digest, filename=path.name)
    async with http.patch(url, headers={**patch_headers(0), **MINE}, data=data[:third]) as answer:
        assert answer.status == 204
    there = sibling.url + urlsplit(url).path
    writer = await stalled_patch(there, third, len(data) - third, data[third:2 * third])
    try:
        upload_id = url.rsplit("/", 1)[1]
        await wait_for(lambda: sibling.packages.records.locked(upload_id))
        other = await create_upload(http, sibling.url, AUTH, length=10, sha256="aa" * 32, filename="b.zip")
        async with http.patch(other, headers={**patch_headers(0), **MINE}, data=b"x" * 10) as answer:
            await assert_problem(answer, 503, "GATEWAY_OVERLOADED")  # the one PATCH slot is the stalled one
        assert await upload_offset(http, there, AUTH) == (2 * third, len(data))  # after the idle timeout
    finally:
        writer.close()
    # the first process kept a digest at 1/3; the bytes up to 2/3 came through the other: it re-hashes them
    async with http.patch(url, headers={**patch_headers(2 * third), **MINE}, data=data[2 * third:]) as answer:
        assert answer.status == 204, await answer.text()
    stored = await gateway.packages.find_package(PORTAL, digest)
    assert stored is not None
    await stored.release()


async def test_bytes_stored_but_never_recorded_are_cut_off_on_resume(gateway: UploadGateway,
                                                                     http: aiohttp.ClientSession,
                                                                     tmp_path: Path) -> None:
    path, digest = package(tmp_path, 2 * 1024 * 1024)
    data = path.read_bytes()
    url = await create_upload(http, gateway.url, AUTH, length=len(data), sha256=digest, filename=path.name)
    async with http.patch(url, headers={**patch_headers(0), **MINE}, data=data[:1000]) as answer:
        assert answer.status == 204
    upload_id = url.rsplit("/", 1)[1]
    with open(gateway.packages.storage.location(upload_id), "ab") as stream:  # written before a crash, unrecorded
        stream.write(b"garbage" * 100)
    assert await upload_offset(http, url, AUTH) == (1000, len(data))
    assert await upload_package(http, gateway.url, AUTH, path, resume_url=url) == url
    stored = await gateway.packages.find_package(PORTAL, digest)
    assert stored is not None and stored.path.stat().st_size == len(data)
    await stored.release()


class SettleWatch(FilesystemStorage):
    """The gateway's own storage, noting how far the file was flushed each time a flush returns."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.flushed = 0

    def settle(self, stream: BinaryIO, start: int, end: int) -> None:
        size = os.fstat(stream.fileno()).st_size  # at least this much was written before the fsync began
        super().settle(stream, start, end)
        self.flushed = max(self.flushed, size)


async def test_an_offset_is_recorded_only_once_its_bytes_are_flushed_and_a_resume_at_any_offset_rehashes(
        gateway: UploadGateway, sibling: UploadGateway, http: aiohttp.ClientSession, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path, digest = package(tmp_path, 12 * 1024 * 1024)
    data = path.read_bytes()
    watch = SettleWatch(gateway.directory)
    recorded: list[tuple[int, int]] = []  # (offset recorded, bytes flushed to disk by then)
    record_offset = gateway.packages.records.record_offset

    async def watched(upload_id: str, offset: int) -> bool:
        recorded.append((offset, watch.flushed))
        return await record_offset(upload_id, offset)

    monkeypatch.setattr(receive, "SYNC_EVERY_BYTES", 2 * 1024 * 1024)  # flushes mid-stream with 1 MiB buffers
    monkeypatch.setattr(gateway.packages, "storage", watch)
    monkeypatch.setattr(gateway.packages.records, "record_offset", watched)
    url = await create_upload(http, gateway.url, AUTH, length=len(data), sha256=digest, filename=path.name)
    cut = 7 * 1024 * 1024 + 12345  # not a multiple of the write buffer, the flush interval or the re-hash reads

    async def flushed_mid_stream() -> bool:  # a flush of the first 2 MiB has returned: the rest may come
        return watch.flushed >= 2 * 1024 * 1024

    async def cut_recorded() -> bool:  # the gateway has seen the cut and recorded what arrived
        return bool(recorded) and recorded[-1][0] == cut

    await cut_patch(url, 0, len(data), data[:cut], pause_at=5 * 1024 * 1024, until=flushed_mid_stream)
    await wait_for(cut_recorded)
    assert await upload_offset(http, url, AUTH) == (cut, len(data))
    assert recorded[-1] == (cut, cut)  # the cut: every byte that arrived flushed, then recorded
    assert [offset for offset, _ in recorded[:-1]] and all(0 < offset < cut for offset, _ in recorded[:-1])
    assert all(offset <= flushed for offset, flushed in recorded)  # never a byte not on disk
    there = sibling.url + urlsplit(url).path  # another process: no running digest, it re-hashes the cut file
    async with http.patch(there, headers={**patch_headers(cut), **MINE}, data=data[cut:]) as answer:
        assert answer.status == 204, await answer.text()
        assert answer.headers["Upload-Offset"] == str(len(data))
    stored = await gateway.packages.find_package(PORTAL, digest)
    assert stored is not None and stored.path.read_bytes() == data
    await stored.release()


@pytest.mark.parametrize(("line", "message"), [
    ("max_package_bytes = 0", "uploads.max_package_bytes"),
    ("incomplete_ttl_seconds = 5", "uploads.incomplete_ttl_seconds"),
    ("write_buffer_bytes = 100", "uploads.write_buffer_bytes"),
    ("idle_timeout_seconds = 30.0", "uploads.idle_timeout_seconds"),
    ("lock_wait_seconds = -1.0", "uploads.lock_wait_seconds"),
    ("sweep_interval_seconds = inf", "uploads.sweep_interval_seconds"),
])
def test_upload_settings_are_checked(tmp_path: Path, line: str, message: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f"[uploads]\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_the_package_directory_defaults_under_the_state_dir(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n')
    settings = load_settings(config)
    assert settings.uploads.path_under(settings.state_dir) == tmp_path / "packages"
    config.write_text('[uploads]\ndirectory = "pk"\n')
    assert load_settings(config).uploads.directory == tmp_path / "pk"


async def test_the_upload_command_streams_a_file_and_reports_a_refusal(gateway: UploadGateway, tmp_path: Path) -> None:
    path, digest = package(tmp_path, 5 * 1024 * 1024, name="deposit.tar")
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "EGOV_SENDER_PASSWORD": PORTAL_PASSWORD}
    command = [*CLI, "upload", str(path), "--url", gateway.url, "--sender", PORTAL]
    done = await asyncio.create_subprocess_exec(*command, env=environment, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await done.communicate()
    assert done.returncode == 0, err.decode()
    url = out.decode().strip()
    assert url.startswith(f"{gateway.url}/api/v1/uploads/") and digest in err.decode()
    stored = await gateway.packages.find_package(PORTAL, digest)
    assert stored is not None and stored.filename == "deposit.tar"
    await stored.release()
    wrong = await asyncio.create_subprocess_exec(*command, "--sha256", "00" * 32, env=environment,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await wrong.communicate()
    assert wrong.returncode == 1 and "422 UPLOAD_DIGEST_MISMATCH" in err.decode()
    assert "Traceback" not in err.decode()


async def test_a_full_disk_keeps_what_was_written_and_the_upload_resumes(
        gateway: UploadGateway, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    path, digest = package(tmp_path, 4 * 1024 * 1024)
    data = path.read_bytes()
    url = await create_upload(http, gateway.url, AUTH, length=len(data), sha256=digest, filename=path.name)
    # The process may write no file past 2 MiB (EFBIG, as ENOSPC would come from a full disk) for one PATCH.
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024 * 1024, limits[1]))
    try:
        async with http.patch(url, headers={**patch_headers(0), **MINE}, data=data) as answer:
            await assert_problem(answer, 503, "GATEWAY_STORAGE_UNAVAILABLE")
            assert answer.headers["Retry-After"] == "30"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    offset, _ = await upload_offset(http, url, AUTH)  # the whole buffers (of at least 1 MiB) written before
    assert 1024 * 1024 <= offset <= 2 * 1024 * 1024
    assert await upload_package(http, gateway.url, AUTH, path, resume_url=url) == url
    stored = await gateway.packages.find_package(PORTAL, digest)
    assert stored is not None
    await stored.release()
