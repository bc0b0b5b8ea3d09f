"""The tus 1.0.0 endpoints (core, creation, termination, expiration) at ``/api/v1/uploads``, for REST senders.

Every request but OPTIONS authenticates the sender with HTTP Basic; an upload is visible only to the sender
that created it (anyone else gets 404, as for an unknown id). Refusals are problem documents with stable codes.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate

from aiohttp import web

from gateway.access.senders import AuthenticatedSender
from gateway.errors import GatewayError
from gateway.packages.packages import valid_upload_id
from gateway.packages.records import UploadRecord
from gateway.uploads import headers
from gateway.uploads.context import UPLOADS, UploadContext
from gateway.uploads.receive import receive
from gateway.web.problems import guarded
from gateway.web.reading import basic_auth_sender

BASE = "/api/v1/uploads"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tus(handler: Handler) -> Handler:
    """Refusals as problem documents, and the protocol version on every answer."""
    inner = guarded(handler)

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        response = await inner(request)
        response.headers["Tus-Resumable"] = headers.TUS_VERSION
        if response.status == 412:
            response.headers["Tus-Version"] = headers.TUS_VERSION
        return response

    return wrapper


async def _sender(request: web.Request) -> tuple[UploadContext, AuthenticatedSender]:
    headers.require_tus(request)
    context = request.app[UPLOADS]
    return context, await basic_auth_sender(request, context.senders)


async def _own(context: UploadContext, request: web.Request, sender: AuthenticatedSender) -> UploadRecord:
    """The caller's own upload named in the path; anything else is UPLOAD_NOT_FOUND."""
    upload_id = request.match_info["upload_id"]
    record = await context.packages.records.get(upload_id) if valid_upload_id(upload_id) else None
    if record is None or record.sender_id != sender.sender_id:
        raise GatewayError("UPLOAD_NOT_FOUND", "no such upload of this sender (it may have expired)")
    return record


async def _wait_unlocked(context: UploadContext, upload_id: str) -> bool:
    """Wait (up to lock_wait_seconds) for a running PATCH of this upload to end; True when none runs."""
    deadline = time.monotonic() + context.settings.lock_wait_seconds
    while await context.packages.records.locked(upload_id):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _lock(context: UploadContext, upload_id: str) -> str:
    deadline = time.monotonic() + context.settings.lock_wait_seconds
    while (token := await context.packages.records.lock(upload_id)) is None:
        if time.monotonic() >= deadline:
            raise GatewayError("UPLOAD_LOCKED", "another PATCH of this upload is still running", retry_after=1)
        await asyncio.sleep(0.05)
    return token


async def _expires(context: UploadContext, record: UploadRecord) -> dict[str, str]:
    seconds = None if record.complete else await context.packages.records.expires_in(record.upload_id)
    return {} if seconds is None else {"Upload-Expires": formatdate(time.time() + seconds, usegmt=True)}


@tus
async def options(request: web.Request) -> web.StreamResponse:
    """What this server speaks (no authentication: nothing here is secret)."""
    return web.Response(status=204, headers={
        "Tus-Version": headers.TUS_VERSION, "Tus-Extension": headers.TUS_EXTENSIONS,
        "Tus-Max-Size": str(request.app[UPLOADS].settings.max_package_bytes)})


@tus
async def create(request: web.Request) -> web.StreamResponse:
    """POST: a new upload of Upload-Length bytes whose SHA-256 and file name are in Upload-Metadata."""
    context, sender = await _sender(request)
    declared = headers.creation(request, context.settings.max_package_bytes)
    record = await context.packages.records.create(sender.sender_id, declared.length, declared.sha256,
                                                   declared.filename)
    await asyncio.to_thread(context.packages.storage.create, record.upload_id)
    return web.Response(status=201, headers={"Location": f"{BASE}/{record.upload_id}", "Upload-Offset": "0",
                                             **await _expires(context, record)})


@tus
async def head(request: web.Request) -> web.StreamResponse:
    """HEAD: how many bytes the server holds (after any PATCH still running has ended)."""
    context, sender = await _sender(request)
    record = await _own(context, request, sender)
    if not record.complete and await _wait_unlocked(context, record.upload_id):
        record = await _own(context, request, sender)
    return web.Response(status=200, headers={
        "Upload-Offset": str(record.offset), "Upload-Length": str(record.length), "Cache-Control": "no-store",
        **await _expires(context, record)})


@tus
async def patch(request: web.Request) -> web.StreamResponse:
    """PATCH: append the body at Upload-Offset, streamed to storage; the digest is checked at the last byte."""
    context, sender = await _sender(request)
    record = await _own(context, request, sender)
    if request.content_type != headers.OFFSET_TYPE:
        raise GatewayError("CLIENT_UNSUPPORTED_MEDIA_TYPE", f"PATCH needs Content-Type: {headers.OFFSET_TYPE}")
    offset = headers.number(request, "Upload-Offset")
    context.slots.take()
    try:
        token = await _lock(context, record.upload_id)
        try:
            return await _append(context, request, sender, offset, token)
        finally:
            await context.packages.records.unlock(record.upload_id, token)
    finally:
        context.slots.give()


async def _append(context: UploadContext, request: web.Request, sender: AuthenticatedSender, offset: int,
                  token: str) -> web.StreamResponse:
    record = await _own(context, request, sender)  # read again under the lock: the offset may have moved
    if offset != record.offset or (record.complete and request.content_length):
        raise GatewayError("UPLOAD_OFFSET_MISMATCH", f"the server holds {record.offset} bytes")
    if record.complete:
        return web.Response(status=204, headers={"Upload-Offset": str(record.offset)})
    if request.content_length is not None and offset + request.content_length > record.length:
        raise GatewayError("UPLOAD_TOO_LARGE", f"the body would run past Upload-Length {record.length}")
    received = await receive(request, context.packages, context.settings, record, token, context.slots.threads)
    fresh = record if received.complete else await _own(context, request, sender)
    return web.Response(status=204, headers={"Upload-Offset": str(received.offset), **await _expires(context, fresh)})


@tus
async def delete(request: web.Request) -> web.StreamResponse:
    """DELETE (termination): the upload and its bytes are gone."""
    context, sender = await _sender(request)
    record = await _own(context, request, sender)
    token = await _lock(context, record.upload_id)
    try:
        await context.packages.discard(await _own(context, request, sender))
    finally:
        await context.packages.records.unlock(record.upload_id, token)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_route("OPTIONS", BASE, options)
    app.router.add_post(BASE, create)
    app.router.add_route("OPTIONS", BASE + "/{upload_id}", options)
    app.router.add_route("HEAD", BASE + "/{upload_id}", head)
    app.router.add_patch(BASE + "/{upload_id}", patch)
    app.router.add_delete(BASE + "/{upload_id}", delete)
