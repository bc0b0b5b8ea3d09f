"""Per-sender request quotas by service, counted in Redis so every worker shares them.

A sender's ``quotas`` table names serviceIds (or ``*`` for each service without its own entry) with
``per_second`` and ``per_day`` limits. Requests per second use a one-second window; requests per day a
calendar day in Kazakhstan time (UTC+5, one zone since 2024) whose counter expires at midnight. Only
requests under a quota are counted: a sender without one costs no Redis call and leaves no trace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from redis.asyncio import Redis

from gateway.config import QuotaSettings, SenderSettings
from gateway.errors import GatewayError

KAZAKHSTAN = timezone(timedelta(hours=5))
_NO_QUOTA = QuotaSettings()

# Atomic for all workers: the second's window first, then the day's; a refusal by the day's limit is not
# counted, so the day's count is what was let through. Both keys carry the tag {<sender>:<service>}: one slot.
_COUNT = """
local per_second = tonumber(ARGV[1])
if per_second > 0 then
  local used = redis.call('INCR', KEYS[1])
  if used == 1 then redis.call('EXPIRE', KEYS[1], 2) end
  if used > per_second then return {1, used} end
end
local used = redis.call('INCR', KEYS[2])
if used == 1 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3])) end
local per_day = tonumber(ARGV[2])
if per_day > 0 and used > per_day then
  redis.call('DECR', KEYS[2])
  return {2, used - 1}
end
return {0, used}
"""


@dataclass(frozen=True)
class Usage:
    """One sender's use of one service now."""

    service_id: str
    "The service."
    quota: QuotaSettings
    "The limits that apply (both unset: none)."
    this_second: int
    "Requests counted in the current second (kept only when per_second is set)."
    today: int
    "Requests let through today (Kazakhstan time)."
    resets_in_seconds: int
    "Seconds until today's count starts again."

    def to_dict(self) -> dict[str, Any]:
        return {"serviceId": self.service_id,
                "perSecond": {"limit": self.quota.per_second, "used": self.this_second},
                "perDay": {"limit": self.quota.per_day, "used": self.today,
                           "resetsInSeconds": self.resets_in_seconds}}


class QuotaCounter:
    """Counts each sender's requests per service and refuses those beyond its quota.

    ``clock`` gives the time in epoch seconds (injected in tests to cross a day). Security caveat: a
    sender's quota is only as strict as Redis's reach; every worker must share the same Redis.
    """

    def __init__(self, redis: Redis, prefix: str, senders: dict[str, SenderSettings],
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:quota"
        self.senders = senders
        self.clock = clock
        self._count = redis.register_script(_COUNT)

    def quota_for(self, sender_id: str, service_id: str) -> QuotaSettings:
        sender = self.senders.get(sender_id)
        if sender is None:
            return _NO_QUOTA
        return sender.quotas.get(service_id) or sender.quotas.get("*") or _NO_QUOTA

    async def count(self, sender_id: str, service_id: str) -> None:
        """Count one request; 429 CLIENT_QUOTA_EXCEEDED with Retry-After when it is beyond the quota."""
        quota = self.quota_for(sender_id, service_id)
        if quota.per_second is None and quota.per_day is None:
            return
        now = self.clock()
        day, left = _day(now)
        keys = [self._second_key(sender_id, service_id, now), self._day_key(sender_id, service_id, day)]
        refused, _ = await self._count(keys=keys, args=[quota.per_second or 0, quota.per_day or 0,
                                                        math.ceil(left) + 1])
        if refused == 1:
            raise GatewayError("CLIENT_QUOTA_EXCEEDED", f"at most {quota.per_second} requests per second "
                                                        f"to {service_id}", retry_after=1)
        if refused == 2:
            raise GatewayError("CLIENT_QUOTA_EXCEEDED", f"at most {quota.per_day} requests per day "
                                                        f"to {service_id}", retry_after=math.ceil(left))

    async def usage(self, sender_id: str, service_ids: Iterable[str]) -> list[Usage]:
        """The sender's current use of each of ``service_ids`` that has a quota."""
        now = self.clock()
        day, left = _day(now)
        services = [s for s in service_ids if self.quota_for(sender_id, s) != _NO_QUOTA]
        keys = [key for service_id in services for key in (self._second_key(sender_id, service_id, now),
                                                             self._day_key(sender_id, service_id, day))]
        async with self.redis.pipeline(transaction=False) as pipe:  # GETs, not MGET: several services' slots
            for key in keys:
                pipe.get(key)
            values = await pipe.execute() if keys else []
        return [Usage(service_id, self.quota_for(sender_id, service_id), int(values[2 * i] or 0),
                      int(values[2 * i + 1] or 0), math.ceil(left)) for i, service_id in enumerate(services)]

    def _second_key(self, sender_id: str, service_id: str, now: float) -> str:
        return f"{self.prefix}:{{{sender_id}:{service_id}}}:s:{int(now)}"

    def _day_key(self, sender_id: str, service_id: str, day: str) -> str:
        return f"{self.prefix}:{{{sender_id}:{service_id}}}:d:{day}"


def _day(now: float) -> tuple[str, float]:
    """Today's date in Kazakhstan time and the seconds left until its midnight."""
    local = datetime.fromtimestamp(now, UTC).astimezone(KAZAKHSTAN)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), KAZAKHSTAN)
    return local.date().isoformat(), (midnight - local).total_seconds()
