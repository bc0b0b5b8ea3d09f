"""The streaming seam of the connectors (issue 17): an AsyncIterable body sent to a loopback receiver with its
Content-Length and Content-Digest, read by the receiver in chunks; a source that lies about its size is never
sent whole, and the receiver's refusals map to the connector codes."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from connectors.base import ConnectorError
from connectors.streaming import StreamedBody, content_digest, send_stream
from gateway.shell.serve import start_site
from tests.helpers import free_port


@dataclass
class Receiver:
    """What the loopback receiver saw."""

    url: str
    status: int = 201
    bodies: list[tuple[int, str, str]] = field(default_factory=list)
    "(bytes read, their sha256, the Content-Digest header) per request read to its end."
    largest_read: int = 0


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    seen = Receiver(f"http://127.0.0.1:{port}/packages")

    async def put(request: web.Request) -> web.Response:
        hasher, count = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(1 << 16):
            hasher.update(chunk)
            count += len(chunk)
            seen.largest_read = max(seen.largest_read, len(chunk))
        seen.bodies.append((count, hasher.hexdigest(), request.headers["Content-Digest"]))
        assert request.headers["Content-Length"] == str(count)
        return web.json_response({"code": "NO", "detail": "refused"} if seen.status >= 400 else {"ok": True},
                                 status=seen.status)

    app = web.Application()
    app.router.add_put("/packages", put)
    runner = await start_site(app, "127.0.0.1", port)
    try:
        yield seen
    finally:
        await runner.cleanup()


async def source(blocks: list[bytes]) -> AsyncIterator[bytes]:
    for block in blocks:
        yield block


async def test_a_stream_arrives_whole_with_its_digest(receiver: Receiver) -> None:
    blocks = [os.urandom(1 << 20) for _ in range(16)]
    digest = hashlib.sha256(b"".join(blocks)).hexdigest()
    async with aiohttp.ClientSession() as session:
        answer = await send_stream(session, receiver.url, StreamedBody(source(blocks), 16 << 20, digest),
                                   idempotency_key="app-1")
    assert (answer.status, answer.content_type) == (201, "application/json")
    assert receiver.bodies == [(16 << 20, digest, content_digest(digest))]
    assert content_digest(digest) == f"sha-256=:{base64.b64encode(bytes.fromhex(digest)).decode()}:"


@pytest.mark.parametrize("declared", [3 << 20, 5 << 20])
async def test_a_source_of_another_size_is_not_sent(receiver: Receiver, declared: int) -> None:
    blocks = [os.urandom(1 << 20) for _ in range(4)]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConnectorError) as failed:
            await send_stream(session, receiver.url, StreamedBody(source(blocks), declared, "00" * 32))
    assert (failed.value.code, failed.value.transient) == ("GATEWAY_INTERNAL", False)
    assert receiver.bodies == []  # the receiver never read a complete body


@pytest.mark.parametrize(("status", "code", "transient"), [(503, "PROVIDER_UNAVAILABLE", True),
                                                           (409, "PROVIDER_REJECTED", False)])
async def test_refusals_map_to_connector_codes(receiver: Receiver, status: int, code: str, transient: bool) -> None:
    receiver.status = status
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConnectorError) as failed:
            await send_stream(session, receiver.url, StreamedBody(source([b"x" * 10]), 10, "00" * 32))
    assert (failed.value.code, failed.value.transient) == (code, transient)


async def test_an_unreachable_receiver_is_transient() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConnectorError) as failed:
            await send_stream(session, f"http://127.0.0.1:{free_port()}/x", StreamedBody(source([b"x"]), 1, "00" * 32))
    assert (failed.value.code, failed.value.transient) == ("PROVIDER_UNAVAILABLE", True)
