"""What the gateway uses of packages: find a sender's complete package by digest, stream it, release it.

Handlers reach it as ``request.app[PACKAGES]`` (built once by the shell). The running SHA-256 of an upload
in progress is kept in this process between PATCH requests (a ``hashlib`` object per upload, bounded); a PATCH
that finds none for its offset (another process took the previous one, or this one restarted) re-hashes the
bytes already stored, streamed from disk in a worker thread, once. The client never re-sends them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from gateway.config import Settings
from gateway.packages.records import UploadRecord, UploadRecords
from gateway.packages.storage import UPLOAD_ID, FilesystemStorage, PackageStorage

log = logging.getLogger("egov.packages")
HASHERS_KEPT = 256
"Running digests of uploads in progress kept per process (the oldest is dropped; it is re-hashed from disk)."
REHASH_CHUNK = 4 << 20


@dataclass(frozen=True)
class StoredPackage:
    """A complete package whose SHA-256 was checked as it arrived, stored until :meth:`release`."""

    upload_id: str
    "The upload it came in by."
    sender_id: str
    "The sender that uploaded it."
    sha256: str
    "Lowercase hex SHA-256 of its bytes, checked."
    size: int
    "Bytes."
    filename: str
    "The file name the sender declared (metadata only)."
    path: Path
    "Where the storage keeps it (the filesystem storage: the file itself)."
    packages: Packages = field(repr=False, compare=False)
    "The store it lives in (for :meth:`chunks` and :meth:`release`)."

    async def chunks(self, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Its bytes, ``chunk_size`` at a time, each read in a worker thread (the event loop never blocks)."""
        reader = self.packages.storage.read(self.upload_id, 0, chunk_size)
        try:
            while chunk := await asyncio.to_thread(next, reader, b""):
                yield chunk
        finally:
            reader.close()

    async def release(self) -> None:
        """Delete it (the operator has it)."""
        await self.packages.release(self)


class Packages:
    """The upload records in Redis and the bytes in a :class:`PackageStorage`."""

    def __init__(self, records: UploadRecords, storage: PackageStorage) -> None:
        self.records, self.storage = records, storage
        self._hashers: OrderedDict[str, tuple[int, Any]] = OrderedDict()

    @classmethod
    def build(cls, redis: Redis, settings: Settings) -> Packages:
        records = UploadRecords(redis, settings.redis.key_prefix, ttl_seconds=settings.uploads.incomplete_ttl_seconds)
        return cls(records, FilesystemStorage(settings.uploads.path_under(settings.state_dir)))

    async def find_package(self, sender_id: str, sha256_hex: str) -> StoredPackage | None:
        """The sender's complete, digest-checked package with this SHA-256, or None."""
        upload_id = await self.records.find(sender_id, sha256_hex.lower())
        record = await self.records.get(upload_id) if upload_id else None
        if record is None or not record.complete or record.sender_id != sender_id:
            return None
        return StoredPackage(record.upload_id, sender_id, record.sha256, record.length, record.filename,
                             self.storage.location(record.upload_id), self)

    async def release(self, package: StoredPackage) -> None:
        record = await self.records.get(package.upload_id)
        if record is not None:
            await self.discard(record)

    async def discard(self, record: UploadRecord) -> None:
        """Forget the upload and delete its bytes (the file first: a record never names a missing file for long)."""
        self._hashers.pop(record.upload_id, None)
        await asyncio.to_thread(self.storage.delete, record.upload_id)
        await self.records.forget(record)

    async def sweep(self) -> int:
        """Delete the stored bytes of uploads whose record is gone (expired or discarded); how many."""
        ids = await asyncio.to_thread(self.storage.ids)
        alive = await self.records.exists(ids) if ids else []
        gone = [upload_id for upload_id, exists in zip(ids, alive, strict=True) if not exists]
        for upload_id in gone:
            self._hashers.pop(upload_id, None)
            await asyncio.to_thread(self.storage.delete, upload_id)
        if gone:
            log.info("deleted %d expired upload(s)", len(gone))
        return len(gone)

    async def hasher(self, record: UploadRecord) -> Any:
        """The running SHA-256 of the bytes stored so far: kept from the last PATCH, or re-hashed from disk."""
        kept = self._hashers.pop(record.upload_id, None)
        if kept is not None and kept[0] == record.offset:
            return kept[1]
        return await asyncio.to_thread(self._rehash, record)

    def keep_hasher(self, upload_id: str, offset: int, hasher: Any) -> None:
        self._hashers[upload_id] = (offset, hasher)
        while len(self._hashers) > HASHERS_KEPT:
            self._hashers.popitem(last=False)

    def _rehash(self, record: UploadRecord) -> Any:
        hasher = hashlib.sha256()
        done = 0
        for chunk in self.storage.read(record.upload_id, 0, REHASH_CHUNK):
            chunk = chunk[: record.offset - done]
            hasher.update(chunk)
            done += len(chunk)
            if done >= record.offset:
                break
        return hasher


def valid_upload_id(value: str) -> bool:
    return bool(UPLOAD_ID.fullmatch(value))


PACKAGES = web.AppKey("packages", Packages)
"The application's packages, for handlers (uploads, deposits)."
