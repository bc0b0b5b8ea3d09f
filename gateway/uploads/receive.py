"""One PATCH body streamed to storage: copied from the socket into two buffers in turn, each full buffer written
and hashed in a worker thread while the other fills, so the package is never whole in memory, the event loop
never hashes, and no buffer is allocated per chunk.

Every ``SYNC_EVERY_BYTES`` the bytes written are flushed to disk (fsync, in another thread while the writes go
on) and only then is the offset recorded: a recorded offset never counts a byte that is not on disk. A body that
stops early (the connection cut, the client idle too long) keeps every byte that arrived: it is flushed, the
offset recorded and the running digest kept for the next PATCH.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, BinaryIO

from aiohttp import web

from gateway.config import UploadSettings
from gateway.errors import GatewayError
from gateway.packages.packages import Packages
from gateway.packages.records import LOCK_SECONDS, UploadRecord

log = logging.getLogger("egov.uploads")
SYNC_EVERY_BYTES = 64 << 20
"""While a body streams, what was written is flushed to disk and its offset recorded this often, so a process or
machine that dies mid-way loses little (and the page cache holds a window of the package, not all of it)."""
RENEW_EVERY_SECONDS = LOCK_SECONDS / 6


@dataclass(frozen=True)
class Received:
    """How a PATCH body ended."""

    offset: int
    "Bytes of the package stored after it."
    complete: bool
    "The last byte arrived and the digest matched."


def _write(stream: BinaryIO, hasher: Any, view: memoryview) -> int:
    rest = view
    while rest:
        rest = rest[stream.write(rest):]
    hasher.update(view)
    return len(view)


class _Pump:
    """The state of one body being written: what is written, what is flushed to disk, what is recorded, and the
    write and the flush in flight."""

    def __init__(self, packages: Packages, record: UploadRecord, token: str, stream: BinaryIO, hasher: Any,
                 fsync: bool, threads: Executor) -> None:
        self.packages, self.record, self.token, self.stream, self.hasher = packages, record, token, stream, hasher
        self.fsync, self.threads = fsync, threads
        self.stored = self.durable = self.recorded = record.offset
        self.pending: asyncio.Future[int] | None = None
        self.settling: tuple[int, asyncio.Future[None]] | None = None
        self.renewed = time.monotonic()

    async def hand_off(self, view: memoryview) -> None:
        """Wait for the previous write, then start this one in a thread (the buffer is not copied: the caller
        fills it again only after the next hand-off)."""
        await self.drain()
        self.pending = asyncio.get_running_loop().run_in_executor(self.threads, _write, self.stream, self.hasher, view)

    async def drain(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.stored += await pending
            if not self.fsync:  # nothing is flushed: what is written is what may be recorded
                self.durable = self.stored

    async def keep_alive(self) -> None:
        """Flush what is written now and then and record it, and renew the write lock while bytes arrive."""
        if self.settling is not None and self.settling[1].done():
            await self.settled()
        if self.fsync and self.settling is None and self.stored - self.durable >= SYNC_EVERY_BYTES:
            storage, loop = self.packages.storage, asyncio.get_running_loop()
            flush = loop.run_in_executor(self.threads, storage.settle, self.stream, self.durable, self.stored)
            self.settling = (self.stored, flush)
        if self.durable - self.recorded >= SYNC_EVERY_BYTES:
            await self.packages.records.record_offset(self.record.upload_id, self.durable)
            self.recorded = self.durable
        if time.monotonic() - self.renewed >= RENEW_EVERY_SECONDS:
            await self.packages.records.renew(self.record.upload_id, self.token)
            self.renewed = time.monotonic()

    async def settled(self) -> None:
        """Wait for the flush in flight: the bytes it covers are durable."""
        if self.settling is not None:
            (end, flush), self.settling = self.settling, None
            await flush
            self.durable = end

    async def close(self, flush: bool) -> None:
        """Flush everything written (unless ``flush`` is False or fsync is off), then close the file."""
        try:
            await self.settled()
            if flush and self.fsync and self.stored > self.durable:
                await asyncio.get_running_loop().run_in_executor(self.threads, self.packages.storage.settle,
                                                                 self.stream, self.durable, self.stored)
                self.durable = self.stored
        finally:
            await asyncio.to_thread(self.stream.close)


async def _stream_body(request: web.Request, pump: _Pump, settings: UploadSettings) -> bool:
    """Copy the body into the pump; True if it held more than the upload's length (nothing beyond is written)."""
    room = pump.record.length - pump.stored
    size = min(settings.write_buffer_bytes, room, request.content_length or room)  # a short PATCH, small buffers
    buffers = [memoryview(bytearray(size))]  # the second one only once the first is full
    current, filled, overflow = buffers[0], 0, False
    try:
        while not overflow:
            async with asyncio.timeout(settings.idle_timeout_seconds):
                data = await request.content.readany()
            if not data:
                break
            if len(data) > room:
                data, overflow = data[:room], True
            room -= len(data)
            view = memoryview(data)
            while view:
                taken = min(len(view), size - filled)
                current[filled:filled + taken] = view[:taken]
                filled, view = filled + taken, view[taken:]
                if filled == size:
                    await pump.hand_off(current)  # the other buffer's write has ended: it is free
                    if len(buffers) == 1:
                        buffers.append(memoryview(bytearray(size)))
                    current, filled = buffers[1] if current is buffers[0] else buffers[0], 0
                    await pump.keep_alive()
    except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
        log.info("upload %s: body ended early (%s)", pump.record.upload_id, type(exc).__name__)
    except Exception as exc:  # aiohttp's payload errors (a cut connection, a broken chunked body) are not exported
        if not type(exc).__module__.startswith("aiohttp"):
            raise
        log.info("upload %s: body ended early (%s)", pump.record.upload_id, type(exc).__name__)
    finally:
        if filled:
            await pump.hand_off(current[:filled])
        await pump.drain()
    return overflow


async def receive(request: web.Request, packages: Packages, settings: UploadSettings, record: UploadRecord,
                  token: str, threads: Executor) -> Received:
    """Append the PATCH body at the record's offset; check the digest once the last byte is in."""
    storage, upload_id = packages.storage, record.upload_id
    stored = await asyncio.to_thread(storage.size, upload_id)
    if stored is None or stored < record.offset:  # bytes recorded but lost (the disk, not the client)
        await packages.records.record_offset(upload_id, stored or 0)
        raise GatewayError("UPLOAD_OFFSET_MISMATCH", f"the server holds {stored or 0} bytes: HEAD and resume")
    hasher = await packages.hasher(record)
    stream = await asyncio.to_thread(storage.open_append, upload_id, record.offset)
    pump = _Pump(packages, record, token, stream, hasher, settings.fsync, threads)
    overflow = False
    try:
        try:
            overflow = await _stream_body(request, pump, settings)
        finally:
            await pump.close(flush=not overflow)  # a body past the length is discarded: no need to flush it
    except OSError as exc:  # the disk (full, failing): keep what is on it, the client resumes later
        log.warning("upload %s: the package storage failed: %s", upload_id, exc)
        kept = pump.durable < record.length and await packages.records.record_offset(upload_id, pump.durable)
        if kept and pump.durable == pump.stored:  # else the digest runs past the offset: the next PATCH re-hashes
            packages.keep_hasher(upload_id, pump.durable, hasher)
        raise GatewayError("GATEWAY_STORAGE_UNAVAILABLE", "the package could not be stored: HEAD and resume later",
                           retry_after=30) from None
    if overflow:
        await packages.discard(record)
        raise GatewayError("UPLOAD_TOO_LARGE", f"the body runs past Upload-Length {record.length}; upload discarded")
    if pump.stored < record.length:  # flushed by close(): durable == stored
        if not await packages.records.record_offset(upload_id, pump.durable):
            raise GatewayError("UPLOAD_NOT_FOUND", "the upload expired while its body was arriving")
        packages.keep_hasher(upload_id, pump.durable, hasher)
        return Received(pump.durable, False)
    if hasher.hexdigest() != record.sha256:
        await packages.discard(record)
        raise GatewayError("UPLOAD_DIGEST_MISMATCH", f"declared sha256 {record.sha256}; the upload was discarded")
    if not await packages.records.complete(record):
        await asyncio.to_thread(storage.delete, upload_id)
        raise GatewayError("UPLOAD_NOT_FOUND", "the upload expired while its body was arriving")
    return Received(pump.stored, True)
