"""Idempotency keys for the mock back-ends: a request repeated under the same ``Idempotency-Key`` gets the first
answer, and the handler runs once.

The gateway's REST connector sends its application id as the key, the commission desk ``<session id>:<step>``;
a back-end that honours it turns the gateway's at-least-once delivery (a lease that expires after a crash brings
the application back) into exactly-once registration. Answers are kept with the mock's state (``as_json`` /
``load``), so a restarted mock answers a repeat as before. Only final answers are kept: a 5xx (or an injected
fault, which the fault middleware answers before this one runs) may be retried and then processed.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

IDEMPOTENCY_HEADER = "Idempotency-Key"
LIMIT = 10_000
"Answers remembered; the oldest are forgotten first."


@dataclass(frozen=True)
class Remembered:
    """The first answer given under one key."""

    status: int
    "Its HTTP status."
    content_type: str
    "Its media type."
    body: bytes
    "Its body, byte for byte."


@dataclass
class IdempotencyMemory:
    """Answers by ``<path> <key>``, and what the handlers processed (to count duplicates)."""

    answers: OrderedDict[str, Remembered] = field(default_factory=OrderedDict)
    "First answers by scoped key."
    pending: dict[str, asyncio.Future[Remembered]] = field(default_factory=dict)
    "Keys whose first request is being handled now: a concurrent repeat waits for its answer."
    processed: Counter[str] = field(default_factory=Counter)
    "How often a handler processed each document (by the id it names): above 1 is a duplicate."
    replayed: int = 0
    "Repeats answered from memory."

    def count(self, document_id: str | None) -> None:
        """A handler processed the document named ``document_id`` (call once per processing)."""
        if document_id:
            self.processed[document_id] += 1

    def stats(self) -> dict[str, Any]:
        """What ``GET /_control/stats`` answers."""
        duplicates = sorted(name for name, n in self.processed.items() if n > 1)
        return {"processed": sum(self.processed.values()), "documents": len(self.processed),
                "duplicates": duplicates, "replayed": self.replayed}

    def as_json(self) -> dict[str, Any]:
        return {key: {"status": r.status, "content_type": r.content_type,
                      "body": base64.b64encode(r.body).decode("ascii")} for key, r in self.answers.items()}

    def load(self, data: dict[str, Any]) -> None:
        """Answers saved by :meth:`as_json` (KeyError, TypeError or ValueError for damaged data)."""
        self.answers = OrderedDict((str(key), Remembered(int(item["status"]), str(item["content_type"]),
                                                         base64.b64decode(item["body"], validate=True)))
                                   for key, item in data.items())


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def idempotency_middleware(memory_of: Callable[[web.Request], IdempotencyMemory],
                           saved: Callable[[web.Request], None], *, prefix: str = "/api/") -> Any:
    """Middleware answering a repeated key under ``prefix`` with the first answer; ``saved`` persists it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()[:200]
        if request.method != "POST" or not key or not request.path.startswith(prefix):
            return await handler(request)
        memory, scoped = memory_of(request), f"{request.path} {key}"
        while scoped in memory.pending:  # the first request under this key is still being handled
            await asyncio.shield(memory.pending[scoped])
        if scoped in memory.answers:
            memory.replayed += 1
            return _response(memory.answers[scoped])
        future: asyncio.Future[Remembered] = asyncio.get_running_loop().create_future()
        memory.pending[scoped] = future
        try:
            response = await handler(request)
            if isinstance(response, web.Response) and response.status < 500 and isinstance(response.body, bytes):
                memory.answers[scoped] = Remembered(response.status, response.content_type, response.body)
                while len(memory.answers) > LIMIT:
                    memory.answers.popitem(last=False)
                saved(request)
            return response
        finally:
            del memory.pending[scoped]
            future.set_result(Remembered(0, "", b""))

    return middleware


def _response(remembered: Remembered) -> web.Response:
    return web.Response(status=remembered.status, body=remembered.body, content_type=remembered.content_type,
                        charset="utf-8", headers={"Idempotent-Replayed": "true"})
