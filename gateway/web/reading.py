"""Reading an HTTP request safely: the body within a limit, and the sender from HTTP Basic credentials."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from gateway.access.senders import AuthenticatedSender, SenderDirectory
from gateway.errors import GatewayError


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a larger body is refused before it is buffered whole."""
    if request.content_length is not None and request.content_length > limit:
        raise GatewayError("CLIENT_BODY_TOO_LARGE", f"limit is {limit} bytes")
    body = bytearray()
    while len(body) <= limit:  # read(n) returns what is buffered so far, not n bytes: read up to the limit
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise GatewayError("CLIENT_BODY_TOO_LARGE", f"limit is {limit} bytes")
    return bytes(body)


async def basic_auth_sender(request: web.Request, senders: SenderDirectory) -> AuthenticatedSender:
    """Authenticate a sender from HTTP Basic credentials (senderId:password), throttled by the peer's address."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        raise GatewayError("CLIENT_BAD_CREDENTIALS", "HTTP Basic credentials (senderId:password) are required")
    try:
        sender_id, _, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise GatewayError("CLIENT_BAD_CREDENTIALS", "unreadable Basic credentials") from None
    return await senders.authenticate(sender_id, password, client=request.remote)


async def operator_sender(request: web.Request, senders: SenderDirectory) -> AuthenticatedSender:
    """An operator (a sender with ``operator = true``) from HTTP Basic credentials; anyone else gets
    CLIENT_ACCESS_DENIED."""
    sender = await basic_auth_sender(request, senders)
    if not sender.settings.operator:
        raise GatewayError("CLIENT_ACCESS_DENIED", "operators only")
    return sender
