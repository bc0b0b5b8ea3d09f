"""The shared revocation cache in Redis: one OCSP response per certificate, for every node (``[revocation]
shared_cache``).

``P:ocsp:<issuer key hash hex>:<serial hex>`` holds the raw response DER, set with PX so that it is gone when the
answer expires for the node that fetched it. Each key is its own slot (single-key GET and SET only), so it works
alike on one server, a Sentinel primary and a Redis Cluster. Readers trust nothing in it: the checker verifies a
stored response as a fresh one (signing/revocation_ocsp.py) and any failure here is a miss
(signing/revocation_shared.py).
"""

from __future__ import annotations

from redis.asyncio import Redis


class RedisSharedAnswers:
    """:class:`signing.revocation_shared.SharedAnswers` over the gateway's Redis client."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix

    def key(self, key: str) -> str:
        """The Redis key of a checker's key (``<issuer key hash hex>:<serial hex>``)."""
        return f"{self.prefix}:ocsp:{key}"

    async def get(self, key: str) -> bytes | None:
        value = await self.redis.get(self.key(key))
        assert value is None or isinstance(value, bytes), "the gateway's clients never decode responses"
        return value

    async def put(self, key: str, der: bytes, ttl_seconds: float) -> None:
        milliseconds = int(ttl_seconds * 1000)
        if milliseconds > 0:
            await self.redis.set(self.key(key), der, px=milliseconds)
