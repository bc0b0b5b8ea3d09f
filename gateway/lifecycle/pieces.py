"""A big part (a 10 MB document) written to Redis in pieces, ahead of the transaction that records it.

In one command a big value is held three more times in this process: redis-py joins a command's pieces into one
buffer (asyncio's ``writelines`` on Python 3.11), and the socket's transport keeps a copy of what the kernel did not
take at once (a slice, then a bytearray). Written as a ``SET`` of the first piece with an expiry and ``APPEND`` s of
the rest, each its own round trip of :data:`PIECE_BYTES`, it is held once. The create's transaction then makes the
key permanent (``PERSIST``); if the process dies in between, the key expires by itself (:data:`AHEAD_SECONDS`),
never read: nothing refers to it until the record exists.
"""

from __future__ import annotations

from redis.asyncio import Redis, RedisCluster

PIECE_BYTES = 256 * 1024
"Size of each piece; a part this size or smaller is written within the transaction, as any other key."
AHEAD_SECONDS = 3600
"Expiry of a part written ahead until its transaction persists it (it follows within the same request)."


async def write_ahead(redis: Redis | RedisCluster, key: str, value: bytes) -> None:
    """Write ``value`` under ``key`` piece by piece, expiring in :data:`AHEAD_SECONDS` until persisted."""
    view = memoryview(value)  # slices of it are not copies
    await redis.set(key, view[:PIECE_BYTES], ex=AHEAD_SECONDS)
    for start in range(PIECE_BYTES, len(view), PIECE_BYTES):
        await redis.append(key, view[start:start + PIECE_BYTES])
