"""Failed sign-in attempts counted in Redis per client address and per sender id, shared by every worker.

Fixed windows: the first failure starts a counter that expires after ``window_seconds``. At its limit an
address or sender id is refused before any password check (429 CLIENT_TOO_MANY_ATTEMPTS, Retry-After: the
rest of the window), and the refused attempts go on counting; at twice the limit it is locked out for
``lockout_seconds`` (429 CLIENT_LOCKED_OUT). Sender ids appear in keys only as a digest, so made-up ids
cannot write arbitrary keys, and known and unknown ids are counted alike.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.config import AuthSettings
from gateway.errors import GatewayError, storage_refusal

# Count one failure on KEYS[1], starting its window (ARGV[1] seconds) if it is the first: one key, one slot.
_COUNT = """
redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX')
return redis.call('INCR', KEYS[1])
"""


@dataclass(frozen=True)
class Admission:
    """An attempt let through to the password check, with what the check found in Redis."""

    address_key: str
    "This client address's part of the keys."
    sender_key: str
    "The sender id's part of the keys (a digest)."
    trusted: bool
    "The address authenticated as this sender recently: that sender's failure count does not hold it."


class FailureThrottle:
    """Admits, counts and locks out sign-in attempts (see the module docstring).

    Security caveat: the per-sender count spares addresses that authenticated as that sender recently,
    so a flood against a sender id cannot lock its real owner out; a new address of the owner can be held
    while such a flood lasts. Redis trouble refuses the attempt (503), it never skips the throttle.
    """

    def __init__(self, redis: Redis, prefix: str, settings: AuthSettings) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:auth"
        self.settings = settings
        self._count = redis.register_script(_COUNT)

    async def admit(self, sender_id: str, address: str) -> Admission:
        """Raise 429 when the address or the sender id is throttled or locked out; else the admission."""
        admission = Admission(address or "unknown", hashlib.sha256(sender_id.encode()).hexdigest()[:32], False)
        a, s = self._keys(admission)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in (a["lock"], s["lock"]):
                    pipe.pttl(key)
                for key in (a["fail"], s["fail"]):
                    pipe.get(key)
                    pipe.ttl(key)
                pipe.exists(self._trusted_key(admission))
                lock_a, lock_s, fails_a, ttl_a, fails_s, ttl_s, trusted = await pipe.execute()
        except RedisError as exc:
            raise storage_refusal(exc, "sign-in attempts cannot be counted") from None
        admission = Admission(admission.address_key, admission.sender_key, bool(trusted))
        if lock_a > 0 or (lock_s > 0 and not trusted):
            seconds = math.ceil(max(lock_a, lock_s if not trusted else 0) / 1000)
            raise GatewayError("CLIENT_LOCKED_OUT", f"try again in {seconds} s", retry_after=seconds)
        if int(fails_a or 0) >= self.settings.address_failures:
            await self._refuse(a, self.settings.address_failures, ttl_a, "from this address")
        if int(fails_s or 0) >= self.settings.sender_failures and not trusted:
            await self._refuse(s, self.settings.sender_failures, ttl_s, "for this senderId")
        return admission

    async def failed(self, admission: Admission) -> None:
        """Count a failed attempt for its address and sender id; lock out either at twice its limit."""
        a, s = self._keys(admission)
        window = self.settings.window_seconds
        try:
            async with self.redis.pipeline(transaction=False) as pipe:  # two slots on a cluster: a script each
                for key in (a["fail"], s["fail"]):
                    pipe.eval(_COUNT, 1, key, window)  # EVAL: a short script, and no NOSCRIPT inside a pipeline
                fails_a, fails_s = await pipe.execute()
            for keys, fails, limit in ((a, fails_a, self.settings.address_failures),
                                       (s, fails_s, self.settings.sender_failures)):
                if fails >= 2 * limit:
                    await self.redis.set(keys["lock"], 1, ex=self.settings.lockout_seconds, nx=True)
        except RedisError as exc:
            raise storage_refusal(exc, "sign-in attempts cannot be counted") from None

    async def succeeded(self, admission: Admission) -> None:
        """Remember the address as this sender's (no write when it already is)."""
        if admission.trusted:
            return
        try:
            await self.redis.set(self._trusted_key(admission), 1, ex=self.settings.trusted_address_seconds)
        except RedisError as exc:
            raise storage_refusal(exc, "sign-in attempts cannot be counted") from None

    async def _refuse(self, keys: dict[str, str], limit: int, ttl: int, whose: str) -> None:
        """A throttled attempt: counted, locking out at twice the limit, and refused with the window's rest."""
        try:
            fails = await self._count(keys=[keys["fail"]], args=[self.settings.window_seconds])
            if fails >= 2 * limit:
                await self.redis.set(keys["lock"], 1, ex=self.settings.lockout_seconds, nx=True)
                seconds = self.settings.lockout_seconds
                raise GatewayError("CLIENT_LOCKED_OUT", f"too many failed sign-ins {whose}; try again in "
                                                        f"{seconds} s", retry_after=seconds)
        except RedisError as exc:
            raise storage_refusal(exc, "sign-in attempts cannot be counted") from None
        seconds = max(ttl, 1)
        raise GatewayError("CLIENT_TOO_MANY_ATTEMPTS", f"too many failed sign-ins {whose}; try again in {seconds} s",
                           retry_after=seconds)

    def _keys(self, admission: Admission) -> tuple[dict[str, str], dict[str, str]]:
        a, s = f"addr:{admission.address_key}", f"id:{admission.sender_key}"
        return ({"fail": f"{self.prefix}:fail:{a}", "lock": f"{self.prefix}:lock:{a}"},
                {"fail": f"{self.prefix}:fail:{s}", "lock": f"{self.prefix}:lock:{s}"})

    def _trusted_key(self, admission: Admission) -> str:
        return f"{self.prefix}:trusted:{admission.sender_key}:{admission.address_key}"
