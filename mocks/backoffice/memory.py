"""What the desk remembers of each application it worked on, and how that survives a restart.

A job that comes back (the desk restarted, or the gateway redelivered it) must not be registered with the
library twice nor decided twice: the desk keeps, per session id, the submission number the library gave
and the library's signed decision. :class:`RedisDeskMemory` keeps it in Redis (``run --redis``), so a fresh desk
that takes over a reclaimed job resumes where the dead one stopped; :class:`DeskMemory` keeps it in this process
and, given a :class:`~mocks.statefile.StateFile`, on disk (the demo's ``<state>/world/desk.json``). Either way
the library calls also carry an Idempotency-Key, so a step done but not yet remembered is answered again.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from mocks.backoffice.commission import FundObjectInfo
from mocks.statefile import StateFile, StateFileError

LIMIT = 1000
"Applications whose finished steps the desk remembers."


@dataclass
class Memory:
    """Steps done for one application, kept so a redelivered job is not registered twice."""

    number: str | None = None
    "The library's submission number, once registered."
    objects: tuple[FundObjectInfo, ...] = ()
    "What the commission looks at."
    decision: bytes | None = None
    "The library's signed FundDecision, once made."


def memory_json(memory: Memory) -> dict[str, Any]:
    return {"number": memory.number, "objects": [asdict(o) for o in memory.objects],
            "decision": base64.b64encode(memory.decision).decode("ascii") if memory.decision else None}


def memory_from(item: dict[str, Any]) -> Memory:
    """KeyError, TypeError or ValueError for damaged data."""
    decision = item["decision"]
    return Memory(item["number"], tuple(FundObjectInfo(**o) for o in item["objects"]),
                  base64.b64decode(decision, validate=True) if decision is not None else None)


class Progress(Protocol):
    """Where the desk keeps its finished steps per session id."""

    async def recall(self, session_id: str) -> Memory: ...

    async def keep(self, session_id: str, memory: Memory) -> None: ...

    async def drop(self, session_id: str) -> None: ...


class RedisDeskMemory:
    """Memories in Redis, one key per application (``<prefix>:<session id>``), kept ``ttl_seconds`` after the
    last step: every desk sharing the Redis sees what any of them did."""

    def __init__(self, redis: Redis, prefix: str, *, ttl_seconds: int = 7 * 86_400) -> None:
        self.redis, self.prefix, self.ttl = redis, prefix, ttl_seconds

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}:{session_id}"

    async def recall(self, session_id: str) -> Memory:
        raw = await self.redis.get(self._key(session_id))
        if raw is None:
            return Memory()
        try:
            return memory_from(json.loads(raw))
        except (KeyError, TypeError, ValueError):  # damaged: start over; the library's keys answer the repeats
            return Memory()

    async def keep(self, session_id: str, memory: Memory) -> None:
        await self.redis.set(self._key(session_id), json.dumps(memory_json(memory)), ex=self.ttl)

    async def drop(self, session_id: str) -> None:
        await self.redis.delete(self._key(session_id))


class DeskMemory:
    """Memories by session id, oldest forgotten first beyond :data:`LIMIT`; saved on every change."""

    def __init__(self, store: StateFile | None = None) -> None:
        self.store = store
        self.items: OrderedDict[str, Memory] = OrderedDict()
        data = store.load() if store is not None else None
        if data is not None and store is not None:
            try:
                for session_id, item in data["memory"].items():
                    self.items[session_id] = memory_from(item)
            except (KeyError, TypeError, ValueError) as exc:
                raise StateFileError(f"{store.path} is damaged ({exc!r}); start with --fresh") from None

    def remember(self, session_id: str) -> Memory:
        """The memory of ``session_id`` (a new one if none), now the most recent."""
        memory = self.items.pop(session_id, None) or Memory()
        self.items[session_id] = memory
        while len(self.items) > LIMIT:
            self.items.popitem(last=False)
        return memory

    def forget(self, session_id: str) -> None:
        if self.items.pop(session_id, None) is not None:
            self.save()

    def save(self) -> None:
        """Write every memory to the store (nothing without one)."""
        if self.store is None:
            return
        self.store.save({"memory": {session_id: memory_json(m) for session_id, m in self.items.items()}})

    async def recall(self, session_id: str) -> Memory:
        return self.remember(session_id)

    async def keep(self, session_id: str, memory: Memory) -> None:
        self.save()

    async def drop(self, session_id: str) -> None:
        self.forget(session_id)

    def __len__(self) -> int:
        return len(self.items)
