"""A mock's state on disk: one JSON file, written atomically, read once at start.

The demo gives every mock of its world a file under ``<state dir>/world/`` so a restart keeps what the
world already did (revocations, issued tickets, registrations), as the gateway's Redis keeps the cabinet.
A write goes to a temporary file in the same directory, is flushed to disk, and replaces the old file
with one rename: a crash leaves the old state or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StateFileError(RuntimeError):
    """The state file exists but cannot be read as this mock's state (the message names the file)."""


@dataclass(frozen=True)
class StateFile:
    """Where one mock keeps its state between runs."""

    path: Path
    "The JSON file, e.g. ``.egov/world/library.json``."

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none yet."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateFileError(f"cannot read {self.path}: {exc} (start with --fresh to begin anew)") from None
        if not isinstance(data, dict):
            raise StateFileError(f"{self.path} does not hold a JSON object (start with --fresh to begin anew)")
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Replace the saved state with ``data`` in one rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, ensure_ascii=False, indent=1)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
