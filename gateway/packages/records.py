"""Uploads' records in Redis: who uploads what, how far it has come, and the lock of the PATCH writing it.

An upload is a hash ``<prefix>:upload:<id>`` (sender, length, offset, sha256, filename, created, complete) that
expires ``incomplete_ttl_seconds`` after its last write while incomplete and never once complete; a complete one
is found by ``<prefix>:package:<sender>:<sha256>`` (its id). ``<prefix>:upload-lock:<id>`` is held by the one
request writing the upload.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from gateway.config.settings import UPLOAD_LOCK_SECONDS

LOCK_SECONDS = UPLOAD_LOCK_SECONDS
"A lock's lifetime; the writer renews it while bytes arrive, so only a dead process's lock runs out."

_RECORD_OFFSET = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'offset', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
# One key each (the record and its digest index are in different cluster slots): see complete() and forget().
_COMPLETE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'offset', ARGV[1], 'complete', '1')
redis.call('PERSIST', KEYS[1])
return 1
"""
_DROP_INDEX = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# Put back the index an unfinished completion replaced (ARGV[2]; none: delete it), if it still names ours.
_RESTORE_INDEX = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
return redis.call('SET', KEYS[1], ARGV[2])
"""
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class UploadRecord:
    """One upload as Redis holds it."""

    upload_id: str
    "32 hex digits; also the package's file name."
    sender_id: str
    "The sender that created it: the only one that may see, write or find it."
    length: int
    "Upload-Length: the package's size in bytes."
    offset: int
    "Bytes received and recorded so far."
    sha256: str
    "The declared lowercase hex SHA-256 of the whole package."
    filename: str
    "The declared file name (metadata only: never used as a path)."
    created: float
    "Creation time, UNIX seconds."
    complete: bool
    "All bytes received and the digest checked."


class UploadRecords:
    """The records, keyed under ``prefix``."""

    def __init__(self, redis: Redis, prefix: str, *, ttl_seconds: int) -> None:
        self.redis, self.prefix, self.ttl_seconds = redis, prefix, ttl_seconds

    def key(self, upload_id: str) -> str:
        return f"{self.prefix}:upload:{upload_id}"

    def _index(self, sender_id: str, sha256: str) -> str:
        return f"{self.prefix}:package:{sender_id}:{sha256}"

    def _lock(self, upload_id: str) -> str:
        return f"{self.prefix}:upload-lock:{upload_id}"

    async def create(self, sender_id: str, length: int, sha256: str, filename: str) -> UploadRecord:
        record = UploadRecord(secrets.token_hex(16), sender_id, length, 0, sha256, filename, time.time(), False)
        key = self.key(record.upload_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"sender": sender_id, "length": length, "offset": 0, "sha256": sha256,
                                    "filename": filename, "created": record.created, "complete": "0"})
            pipe.expire(key, self.ttl_seconds)
            await pipe.execute()
        return record

    async def get(self, upload_id: str) -> UploadRecord | None:
        raw = await self.redis.hgetall(self.key(upload_id))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return UploadRecord(upload_id, fields["sender"], int(fields["length"]), int(fields["offset"]),
                            fields["sha256"], fields["filename"], float(fields["created"]), fields["complete"] == "1")

    async def expires_in(self, upload_id: str) -> int | None:
        """Seconds left before an incomplete upload expires (None: no expiry, or no such upload)."""
        ttl = int(await self.redis.ttl(self.key(upload_id)))
        return ttl if ttl >= 0 else None

    async def record_offset(self, upload_id: str, offset: int) -> bool:
        """Store the offset and restart the expiry clock; False when the upload is gone (expired, deleted)."""
        return bool(await self.redis.eval(_RECORD_OFFSET, 1, self.key(upload_id), offset, self.ttl_seconds))

    async def complete(self, record: UploadRecord) -> bool:
        """Make it findable by its sender and digest, then mark it complete (no expiry any more).

        Two steps, index first: a finder checks the record is complete, so an index whose record is not (a crash
        in between, or the record expired) finds nothing; a record that expired gives the index back to the
        upload it named before."""
        index = self._index(record.sender_id, record.sha256)
        before = await self.redis.set(index, record.upload_id, get=True)
        if await self.redis.eval(_COMPLETE, 1, self.key(record.upload_id), record.length):
            return True
        earlier = _text(before) if isinstance(before, bytes | str) else ""
        await self.redis.eval(_RESTORE_INDEX, 1, index, record.upload_id, earlier)
        return False

    async def find(self, sender_id: str, sha256: str) -> str | None:
        upload_id = await self.redis.get(self._index(sender_id, sha256))
        return _text(upload_id) if upload_id else None

    async def forget(self, record: UploadRecord) -> None:
        """Delete the record, and the digest index if it names this upload."""
        # Two one-key steps: the index first (only if it names this upload), so none names a deleted record.
        await self.redis.eval(_DROP_INDEX, 1, self._index(record.sender_id, record.sha256), record.upload_id)
        await self.redis.delete(self.key(record.upload_id))

    async def exists(self, upload_ids: list[str]) -> list[bool]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for upload_id in upload_ids:
                pipe.exists(self.key(upload_id))
            return [bool(n) for n in await pipe.execute()]

    async def lock(self, upload_id: str) -> str | None:
        """Take the upload's write lock: a token to renew and release it with, or None if it is held."""
        token = secrets.token_hex(8)
        taken = await self.redis.set(self._lock(upload_id), token, nx=True, ex=LOCK_SECONDS)
        return token if taken else None

    async def locked(self, upload_id: str) -> bool:
        return bool(await self.redis.exists(self._lock(upload_id)))

    async def renew(self, upload_id: str, token: str) -> None:
        await self.redis.eval(_RENEW, 1, self._lock(upload_id), token, LOCK_SECONDS)

    async def unlock(self, upload_id: str, token: str) -> None:
        await self.redis.eval(_UNLOCK, 1, self._lock(upload_id), token)
