"""One PATCH body streamed to storage: gathered from the socket into buffers, each buffer written and hashed in a
worker thread while the next one fills, so the package is never whole in memory and the event loop never hashes.

A body that stops early (the connection cut, the client idle too long) keeps every byte that arrived: the
offset is recorded and the running digest kept for the next PATCH.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from aiohttp import web

from gateway.config import UploadSettings
from gateway.errors import GatewayError
from gateway.packages.packages import Packages
from gateway.packages.records import LOCK_SECONDS, UploadRecord

log = logging.getLogger("egov.uploads")
RECORD_EVERY_BYTES = 64 << 20
"While a body streams its offset is recorded this often, so a process that dies mid-way loses little."
RENEW_EVERY_SECONDS = LOCK_SECONDS / 6


@dataclass(frozen=True)
class Received:
    """How a PATCH body ended."""

    offset: int
    "Bytes of the package stored after it."
    complete: bool
    "The last byte arrived and the digest matched."


def _write(stream: BinaryIO, hasher: Any, buffer: bytearray) -> int:
    view = memoryview(buffer)
    while view:
        view = view[stream.write(view):]
    hasher.update(buffer)
    return len(buffer)


def _finish(stream: BinaryIO, fsync: bool) -> None:
    try:
        if fsync:
            os.fsync(stream.fileno())
    finally:
        stream.close()


class _Pump:
    """The state of one body being written: what is stored, what is in flight, when the offset was recorded."""

    def __init__(self, packages: Packages, record: UploadRecord, token: str, stream: BinaryIO, hasher: Any) -> None:
        self.packages, self.record, self.token, self.stream, self.hasher = packages, record, token, stream, hasher
        self.stored = self.recorded = record.offset
        self.pending: asyncio.Future[int] | None = None
        self.renewed = time.monotonic()

    async def hand_off(self, buffer: bytearray) -> None:
        """Wait for the previous write, then start this one in a thread (the buffer is not copied)."""
        await self.drain()
        self.pending = asyncio.get_running_loop().run_in_executor(None, _write, self.stream, self.hasher, buffer)

    async def drain(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.stored += await pending

    async def keep_alive(self) -> None:
        """Record the offset now and then, and renew the write lock while bytes arrive."""
        if self.stored - self.recorded >= RECORD_EVERY_BYTES:
            await self.packages.records.record_offset(self.record.upload_id, self.stored)
            self.recorded = self.stored
        if time.monotonic() - self.renewed >= RENEW_EVERY_SECONDS:
            await self.packages.records.renew(self.record.upload_id, self.token)
            self.renewed = time.monotonic()


async def _stream_body(request: web.Request, pump: _Pump, settings: UploadSettings) -> bool:
    """Copy the body into the pump; True if it held more than the upload's length (nothing beyond is written)."""
    room = pump.record.length - pump.stored
    buffer = bytearray()
    try:
        while True:
            async with asyncio.timeout(settings.idle_timeout_seconds):
                data = await request.content.readany()
            if not data:
                break
            if len(data) > room:
                buffer += data[:room]
                return True
            buffer += data
            room -= len(data)
            if len(buffer) >= settings.write_buffer_bytes:
                await pump.hand_off(buffer)
                buffer = bytearray()
                await pump.keep_alive()
    except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
        log.info("upload %s: body ended early (%s)", pump.record.upload_id, type(exc).__name__)
    except Exception as exc:  # aiohttp's payload errors (a cut connection, a broken chunked body) are not exported
        if not type(exc).__module__.startswith("aiohttp"):
            raise
        log.info("upload %s: body ended early (%s)", pump.record.upload_id, type(exc).__name__)
    finally:
        if buffer:
            await pump.hand_off(buffer)
        await pump.drain()
    return False


async def receive(request: web.Request, packages: Packages, settings: UploadSettings, record: UploadRecord,
                  token: str) -> Received:
    """Append the PATCH body at the record's offset; check the digest once the last byte is in."""
    storage, upload_id = packages.storage, record.upload_id
    stored = await asyncio.to_thread(storage.size, upload_id)
    if stored is None or stored < record.offset:  # bytes recorded but lost (the disk, not the client)
        await packages.records.record_offset(upload_id, stored or 0)
        raise GatewayError("UPLOAD_OFFSET_MISMATCH", f"the server holds {stored or 0} bytes: HEAD and resume")
    hasher = await packages.hasher(record)
    stream = await asyncio.to_thread(storage.open_append, upload_id, record.offset)
    pump = _Pump(packages, record, token, stream, hasher)
    try:
        try:
            overflow = await _stream_body(request, pump, settings)
        finally:
            await asyncio.to_thread(_finish, stream, settings.fsync and pump.stored == record.length)
    except OSError as exc:  # the disk (full, failing): keep what was written, the client resumes later
        log.warning("upload %s: the package storage failed: %s", upload_id, exc)
        if pump.stored < record.length and await packages.records.record_offset(upload_id, pump.stored):
            packages.keep_hasher(upload_id, pump.stored, hasher)
        raise GatewayError("GATEWAY_STORAGE_UNAVAILABLE", "the package could not be stored: HEAD and resume later",
                           retry_after=30) from None
    if overflow:
        await packages.discard(record)
        raise GatewayError("UPLOAD_TOO_LARGE", f"the body runs past Upload-Length {record.length}; upload discarded")
    if pump.stored < record.length:
        if not await packages.records.record_offset(upload_id, pump.stored):
            raise GatewayError("UPLOAD_NOT_FOUND", "the upload expired while its body was arriving")
        packages.keep_hasher(upload_id, pump.stored, hasher)
        return Received(pump.stored, False)
    if hasher.hexdigest() != record.sha256:
        await packages.discard(record)
        raise GatewayError("UPLOAD_DIGEST_MISMATCH", f"declared sha256 {record.sha256}; the upload was discarded")
    if not await packages.records.complete(record):
        await asyncio.to_thread(storage.delete, upload_id)
        raise GatewayError("UPLOAD_NOT_FOUND", "the upload expired while its body was arriving")
    return Received(pump.stored, True)
