"""Bodies too big to hold: an ``AsyncIterable[bytes]`` sent to a back-end as it is read, never whole in memory.

The size and SHA-256 are declared up front (``Content-Length``, and RFC 9530 ``Content-Digest``) so the receiver
can check what arrives; a source that yields more or fewer bytes than declared aborts the request instead of
sending a body that contradicts its headers. Used for software packages (the deposit service); the bytes come
from the gateway's package storage, but this module knows nothing of it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from connectors.base import ConnectorError
from connectors.rest import IDEMPOTENCY_HEADER, MAX_ANSWER_BYTES, UNREACHABLE, _problem_detail, _read_bounded

log = logging.getLogger("egov.connectors")


@dataclass(frozen=True)
class StreamedBody:
    """A body sent as it is read."""

    chunks: AsyncIterable[bytes] = field(repr=False)
    "Its bytes, in order (e.g. ``StoredPackage.chunks()``)."
    size: int
    "Exactly how many bytes ``chunks`` yields (Content-Length)."
    sha256: str
    "Lowercase hex SHA-256 of those bytes (sent as Content-Digest)."
    content_type: str = "application/octet-stream"
    "Content-Type of the body."


@dataclass(frozen=True)
class StreamAnswer:
    """What the back-end answered to a streamed body (2xx only; anything else is a ConnectorError)."""

    status: int
    "HTTP status."
    content_type: str
    "Its Content-Type (no parameters)."
    body: bytes
    "Its body, at most 4 MiB."


class _Counted:
    """The source, checked against its declared size as it is sent."""

    def __init__(self, body: StreamedBody) -> None:
        self.body, self.sent, self.wrong_size = body, 0, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.body.chunks:
            self.sent += len(chunk)
            if self.sent > self.body.size:
                self.wrong_size = True
                raise ValueError("the source yields more bytes than declared")
            yield chunk
        if self.sent != self.body.size:
            self.wrong_size = True
            raise ValueError("the source yields fewer bytes than declared")


def content_digest(sha256_hex: str) -> str:
    """RFC 9530 Content-Digest of a SHA-256 given in hex."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


async def send_stream(session: aiohttp.ClientSession, url: str, body: StreamedBody, *, method: str = "PUT",
                      idempotency_key: str | None = None, headers: dict[str, str] | None = None,
                      read_timeout: float = 60.0) -> StreamAnswer:
    """Send ``body`` to ``url`` streamed; the back-end's 2xx answer, else a ConnectorError (5xx, timeouts and
    connection failures transient; 4xx not). ``read_timeout`` bounds each wait for the socket, not the whole
    transfer (a gigabyte takes as long as it takes)."""
    counted = _Counted(body)
    sent_headers = {**(headers or {}), "Content-Type": body.content_type, "Content-Length": str(body.size),
                    "Content-Digest": content_digest(body.sha256)}
    if idempotency_key:
        sent_headers[IDEMPOTENCY_HEADER] = idempotency_key
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout)
    try:
        async with session.request(method, url, data=counted.__aiter__(), headers=sent_headers,
                                   timeout=timeout) as response:
            answer = await _read_bounded(response.content, MAX_ANSWER_BYTES + 1)
            status, content_type = response.status, response.content_type
    except TimeoutError:
        raise ConnectorError("PROVIDER_TIMEOUT", f"the back-end was silent for {read_timeout}s",
                             transient=True) from None
    except (aiohttp.ClientError, ValueError) as exc:
        if counted.wrong_size:
            raise ConnectorError("GATEWAY_INTERNAL", f"the stored body is not {body.size} bytes",
                                 transient=False) from None
        log.warning("streamed body to %s failed: %s: %s", url, type(exc).__name__, exc)
        raise ConnectorError("PROVIDER_UNAVAILABLE", UNREACHABLE, transient=True) from None
    except asyncio.CancelledError:
        raise
    if counted.wrong_size:
        raise ConnectorError("GATEWAY_INTERNAL", f"the stored body is not {body.size} bytes", transient=False)
    if len(answer) > MAX_ANSWER_BYTES:
        raise ConnectorError("PROVIDER_BAD_RESPONSE", "answer larger than 4 MiB", transient=False)
    if status >= 500:
        raise ConnectorError("PROVIDER_UNAVAILABLE", f"back-end answered HTTP {status}", transient=True)
    if status >= 400:
        raise ConnectorError("PROVIDER_REJECTED", _problem_detail(answer, status), transient=False)
    return StreamAnswer(status, content_type, answer)
