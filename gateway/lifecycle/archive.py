"""The archive: finished applications that left Redis, still readable by the cabinet and by intake's repeats.

An archived application is everything the cabinet serves of it: the record (which holds the signed receipt and
the signed result document), its history, and when it became final. :class:`ArchiveStore` is the seam; the
embedded :class:`FileArchive` keeps one directory, shared by every node (a network file system, like the
message log's archive directory)::

    apps/<h2>/<sha(id)>.json                   the application (record, history, finished/archived times)
    messages/<h2>/<sha(sender, messageId)>     its session id: a repeated messageId still gets the first answer
    owners/<sha(owner)>/all/<newest>~<sha(id)>             empty markers, one per application of the owner;
    owners/<sha(owner)>/by/<sha(sender)>/<newest>~<sha(id)>  names sort newest first (inverted creation time)

Every file is written whole (a temporary file in the same directory, fsync, rename) so no reader ever sees half
of one, and the application file before the files that point to it. Writing the same application again
rewrites the same names: several nodes archiving at once, or a sweep rerun after a crash, are harmless.
The files hold applicants' IINs and signed documents: the directory must stay as private as Redis.
Provability does not rest on these files: the receipt and the result are documents signed by the gateway,
and the message log (docs/messagelog.md) holds the hash-chained, sealed and timestamped record of what was
received and answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from gateway.errors import GatewayError
from gateway.lifecycle.application import Application

_NEWEST = 10**15
"Markers are named ``_NEWEST - created_ms``, zero-padded: ascending file names are newest first."


@dataclass(frozen=True)
class ArchivedApplication:
    """One application as archived: what the cabinet lists and serves of it."""

    application: Application
    "The record as it was last stored in Redis (receipt and result included)."
    history: list[dict[str, Any]]
    "Its history events, oldest first."
    finished_at: float
    "Epoch seconds it entered the finished index (about when it became final)."
    archived_at: str
    "ISO time it was archived."

    def to_json(self) -> str:
        return json.dumps({"application": json.loads(self.application.to_json()), "history": self.history,
                           "finishedAt": self.finished_at, "archivedAt": self.archived_at},
                          ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ArchivedApplication:
        data = json.loads(raw)
        return cls(Application.from_json(json.dumps(data["application"])), list(data["history"]),
                   float(data["finishedAt"]), str(data["archivedAt"]))


class ArchiveStore(Protocol):
    """Where finished applications go when they leave Redis. Writes are idempotent (same id, same place)."""

    async def put(self, item: ArchivedApplication) -> None:
        """Store ``item`` durably (or replace an earlier copy of the same application); readable once it returns."""

    async def get(self, app_id: str) -> ArchivedApplication | None:
        """The archived application with this session id."""

    async def find(self, sender_id: str, message_id: str) -> ArchivedApplication | None:
        """The archived application ``sender_id`` submitted under ``message_id``."""

    async def page(self, owner: str, *, sender_id: str | None, offset: int,
                   limit: int) -> tuple[int, list[ArchivedApplication]]:
        """The owner's archived applications (only ``sender_id``'s unless None), newest first, and their count."""

    async def has(self, owner: str, sender_id: str) -> bool:
        """Whether ``sender_id`` has any archived application of ``owner``."""


@contextlib.contextmanager
def unreadable_refused() -> Iterator[None]:
    """For readers answering a request: an archive that cannot be read (a network file system gone) is the
    retryable 503 GATEWAY_STORAGE_UNAVAILABLE, like Redis down, never a stack trace."""
    try:
        yield
    except OSError as exc:
        raise GatewayError("GATEWAY_STORAGE_UNAVAILABLE", f"the archive cannot be read: {type(exc).__name__}") \
            from None


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class FileArchive:
    """The embedded archive: files under one directory (see the module's layout). File work runs in threads."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync

    def _app_file(self, app_id: str) -> Path:
        digest = _sha(app_id)
        return self.root / "apps" / digest[:2] / f"{digest}.json"

    def _message_file(self, sender_id: str, message_id: str) -> Path:
        digest = _sha(sender_id, message_id)
        return self.root / "messages" / digest[:2] / digest

    def _owner_dir(self, owner: str, sender_id: str | None) -> Path:
        base = self.root / "owners" / _sha(owner)
        return base / "all" if sender_id is None else base / "by" / _sha(sender_id)

    async def put(self, item: ArchivedApplication) -> None:
        await asyncio.to_thread(self._put, item)

    def _put(self, item: ArchivedApplication) -> None:
        app = item.application
        self._write(self._app_file(app.id), item.to_json().encode())
        self._write(self._message_file(app.sender_id, app.message_id), app.id.encode())
        created_ms = int(datetime.fromisoformat(app.created_at).timestamp() * 1000)
        marker = f"{_NEWEST - created_ms:016d}~{_sha(app.id)}"
        for owner in app.owners:
            for directory in (self._owner_dir(owner, None), self._owner_dir(owner, app.sender_id)):
                if not (directory / marker).exists():
                    self._write(directory / marker, b"")

    def _write(self, path: Path, data: bytes) -> None:
        """``data`` as ``path``, whole or not at all: a temporary file beside it, flushed, then renamed."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        try:
            with temporary.open("wb") as out:
                out.write(data)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        if self.fsync:  # the rename itself must survive a power cut
            descriptor = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    async def get(self, app_id: str) -> ArchivedApplication | None:
        return await asyncio.to_thread(self._read, self._app_file(app_id))

    @staticmethod
    def _read(path: Path) -> ArchivedApplication | None:
        try:
            return ArchivedApplication.from_json(path.read_bytes())
        except FileNotFoundError:
            return None

    async def find(self, sender_id: str, message_id: str) -> ArchivedApplication | None:
        return await asyncio.to_thread(self._find, sender_id, message_id)

    def _find(self, sender_id: str, message_id: str) -> ArchivedApplication | None:
        try:
            app_id = self._message_file(sender_id, message_id).read_text()
        except FileNotFoundError:
            return None
        item = self._read(self._app_file(app_id))
        # The pointer is named by a digest: check it is really this sender's messageId.
        if item is None or (item.application.sender_id, item.application.message_id) != (sender_id, message_id):
            return None
        return item

    async def page(self, owner: str, *, sender_id: str | None, offset: int,
                   limit: int) -> tuple[int, list[ArchivedApplication]]:
        return await asyncio.to_thread(self._page, owner, sender_id, offset, limit)

    def _page(self, owner: str, sender_id: str | None, offset: int,
              limit: int) -> tuple[int, list[ArchivedApplication]]:
        try:
            markers = sorted(name for name in os.listdir(self._owner_dir(owner, sender_id))
                             if not name.startswith("."))
        except FileNotFoundError:
            return 0, []
        items = []
        for marker in markers[offset:offset + limit]:
            digest = marker.rpartition("~")[2]
            item = self._read(self.root / "apps" / digest[:2] / f"{digest}.json")
            if item is not None and owner in item.application.owners and (
                    sender_id is None or item.application.sender_id == sender_id):
                items.append(item)
        return len(markers), items

    async def has(self, owner: str, sender_id: str) -> bool:
        return await asyncio.to_thread(self._has, self._owner_dir(owner, sender_id))

    @staticmethod
    def _has(directory: Path) -> bool:
        try:
            with os.scandir(directory) as entries:
                return any(not entry.name.startswith(".") for entry in entries)
        except FileNotFoundError:
            return False
