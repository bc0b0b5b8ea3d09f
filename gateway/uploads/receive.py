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


class _Buffers:
    """Two write buffers used in turn: one fills from the socket while the pump writes the other (the second is
    allocated only once the first is full, so a short PATCH holds one small buffer)."""

    def __init__(self, pump: _Pump, size: int, room: int) -> None:
        self.pump, self.size, self.room = pump, size, room
        self.buffers = [memoryview(bytearray(size))]
        self.current, self.filled = self.buffers[0], 0

    async def put(self, data: bytes) -> bool:
        """Copy ``data`` in, handing each full buffer to the pump; True if it ran past the upload's length (the
        excess is not kept)."""
        overflow = len(data) > self.room
        view = memoryview(data)[:self.room]
        self.room -= len(view)
        while view:
            taken = min(len(view), self.size - self.filled)
            self.current[self.filled:self.filled + taken] = view[:taken]
            self.filled, view = self.filled + taken, view[taken:]
            if self.filled == self.size:
                await self.pump.hand_off(self.current)  # the other buffer's write has ended: it is free
                if len(self.buffers) == 1:
                    self.buffers.append(memoryview(bytearray(self.size)))
                self.current = self.buffers[1] if self.current is self.buffers[0] else self.buffers[0]
                self.filled = 0
                await self.pump.keep_alive()
        return overflow

    async def finish(self) -> None:
        """Hand the part-filled buffer to the pump and wait for every write."""
        if self.filled:
            await self.pump.hand_off(self.current[:self.filled])
        await self.pump.drain()


def _buffered(content: Any) -> bytes:
    """What aiohttp had received when the body broke off. Its readers raise the payload error before returning
    bytes already buffered, so the last segment to arrive would be lost; the buffer itself is kept, and
    ``_read_nowait`` (aiohttp 3.9 to 3.14, pinned in constraints.txt) is the one way to take it. A later aiohttp
    without it loses that tail again, which ``tests/test_uploads.py`` would show; the recorded offset stays true."""
    read = getattr(content, "_read_nowait", None)
    return bytes(read(-1)) if callable(read) else b""


def _ended_early(exc: Exception) -> bool:
    """Whether ``exc`` means the body stopped before its end: the client idle too long, the connection cut, or
    one of aiohttp's payload errors (a cut or broken chunked body; aiohttp does not export their classes)."""
    early = (TimeoutError, ConnectionError, asyncio.IncompleteReadError)
    return isinstance(exc, early) or type(exc).__module__.startswith("aiohttp")


async def _stream_body(request: web.Request, pump: _Pump, settings: UploadSettings) -> bool:
    """Copy the body into the pump; True if it held more than the upload's length (nothing beyond is written)."""
    room = pump.record.length - pump.stored
    size = min(settings.write_buffer_bytes, room, request.content_length or room)  # a short PATCH, small buffers
    buffers, overflow, more = _Buffers(pump, size, room), False, True
    try:
        while more and not overflow:
            data, more = await _next_piece(request, pump, settings)
            overflow = await buffers.put(data)  # its storage errors go to receive(): not an early end
    finally:
        await buffers.finish()
    return overflow


async def _next_piece(request: web.Request, pump: _Pump, settings: UploadSettings) -> tuple[bytes, bool]:
    """The next bytes of the body, and whether more may follow. A body that stopped early ends here, with the
    bytes aiohttp had buffered before it stopped."""
    try:
        async with asyncio.timeout(settings.idle_timeout_seconds):
            data = await request.content.readany()
    except Exception as exc:
        if not _ended_early(exc):
            raise
        log.info("upload %s: body ended early (%s)", pump.record.upload_id, type(exc).__name__)
        return _buffered(request.content), False
    return data, bool(data)


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
