"""Shared by the mock back-ends: fault injection (``POST /_control/fail``) and bounded body reading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

MAX_DELAY_SECONDS = 60.0


@dataclass
class FaultPlan:
    """Injected failures and delay for the guarded requests of one mock service."""

    status: int | None = None
    "HTTP status the next requests answer with."
    remaining: int = 0
    "How many more requests fail."
    delay: float = 0.0
    "Seconds every guarded request waits before it is handled."
    late: float = 0.0
    "Seconds every answer waits after its request was handled: the work is done, the answer comes late (a caller"
    " that dies meanwhile never learns it)."

    def as_json(self) -> dict[str, Any]:
        plan: dict[str, Any] = {"status": self.status, "count": self.remaining, "delay": self.delay}
        if self.late:
            plan["late"] = self.late
        return plan

    def update(self, data: Any) -> str | None:
        """Apply a control body ``{"status", "count", "delay"}``; return what is wrong with it, or None."""
        if not isinstance(data, dict) or not ({"status", "delay", "late"} & data.keys()):
            return 'expected a JSON object with "status" (and "count") and/or "delay" and/or "late"'
        status, count, delay, late = data.get("status"), data.get("count", 1), data.get("delay"), data.get("late")
        # bool is an int subclass; reject it so {"status": true} is not taken for 1.
        if status is not None and (type(status) is not int or not 400 <= status <= 599):
            return '"status" must be an integer 400..599'
        if type(count) is not int or count < 1:
            return '"count" must be a positive integer'
        if delay is not None and (type(delay) not in (int, float) or not 0 <= delay <= MAX_DELAY_SECONDS):
            return f'"delay" must be a number of seconds 0..{MAX_DELAY_SECONDS:g}'
        if late is not None and (type(late) not in (int, float) or not 0 <= late <= MAX_DELAY_SECONDS):
            return f'"late" must be a number of seconds 0..{MAX_DELAY_SECONDS:g}'
        if status is not None:
            self.status, self.remaining = status, count
        if delay is not None:
            self.delay = float(delay)
        if late is not None:
            self.late = float(late)
        return None


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds ``limit`` bytes (checked while streaming, not after)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
