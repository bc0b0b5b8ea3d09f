"""What the desk remembers of each application it worked on, and how that survives a restart.

A job that comes back (the desk restarted, or the gateway redelivered it) must not be registered with the
library twice nor decided twice: the desk keeps, per session id, the submission number the library gave
and the library's signed decision, in memory and, given a :class:`~mocks.statefile.StateFile`, on disk
(the demo's ``<state>/world/desk.json``).
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from dataclasses import asdict, dataclass

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


class DeskMemory:
    """Memories by session id, oldest forgotten first beyond :data:`LIMIT`; saved on every change."""

    def __init__(self, store: StateFile | None = None) -> None:
        self.store = store
        self.items: OrderedDict[str, Memory] = OrderedDict()
        data = store.load() if store is not None else None
        if data is not None and store is not None:
            try:
                for session_id, item in data["memory"].items():
                    decision = item["decision"]
                    self.items[session_id] = Memory(
                        item["number"], tuple(FundObjectInfo(**o) for o in item["objects"]),
                        base64.b64decode(decision, validate=True) if decision is not None else None)
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
        self.store.save({"memory": {
            session_id: {"number": m.number, "objects": [asdict(o) for o in m.objects],
                         "decision": base64.b64encode(m.decision).decode("ascii") if m.decision else None}
            for session_id, m in self.items.items()}})

    def __len__(self) -> int:
        return len(self.items)
