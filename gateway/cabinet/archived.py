"""The cabinet over Redis and the archive: live applications merged with archived ones, newest first.

An application is in one place or, while a sweep is moving it, in both (then the live copy is shown). The
merged page reads the first ``offset + limit`` of each side and merges them by creation time: deep pages cost
more, as they do in Redis; the count is the sum of both sides (an application being moved counts twice for a
moment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.lifecycle.application import Application
from gateway.lifecycle.archive import ArchiveStore, unreadable_refused
from gateway.lifecycle.store import ApplicationStore


@dataclass(frozen=True)
class Found:
    """One application the cabinet shows, and where it came from."""

    application: Application
    "The record."
    archived: bool
    "True when it came from the archive (it left Redis after the retention)."
    history: list[dict[str, Any]] | None = None
    "Its history when archived (a live one's is read from the store)."


async def page(store: ApplicationStore, archive: ArchiveStore | None, owner: str, *, sender_id: str | None,
               offset: int, limit: int) -> tuple[int, list[Found]]:
    """The owner's applications (``sender_id``'s, unless None), live and archived, newest first."""
    total, live = await store.list_for(owner, sender_id=sender_id, offset=0 if archive else offset,
                                       limit=offset + limit if archive else limit)
    if archive is None:
        return total, [Found(app, False) for app in live]
    with unreadable_refused():
        archived_total, archived = await archive.page(owner, sender_id=sender_id, offset=0, limit=offset + limit)
    shown = {app.id for app in live}
    merged = [Found(app, False) for app in live] + [
        Found(item.application, True, item.history) for item in archived if item.application.id not in shown]
    merged.sort(key=lambda found: found.application.created_at, reverse=True)
    return total + archived_total, merged[offset:offset + limit]


async def find(store: ApplicationStore, archive: ArchiveStore | None, owner: str, wanted: str, *, sender_id: str,
               scope: str | None) -> Found | None:
    """The application ``wanted`` (the sender's messageId, or a sessionId within ``scope``) of ``owner``."""
    app = await store.find_for(owner, wanted, sender_id=sender_id)
    session = wanted.startswith("{") and wanted.endswith("}")
    if app is None and session:
        app = await store.find_session_for(owner, wanted, sender_id=scope)
    if app is not None:
        return Found(app, False)
    if archive is None:
        return None
    with unreadable_refused():
        item = await archive.find(sender_id, wanted)
        if item is None and session:
            item = await archive.get(wanted)
        if item is not None and scope is not None and item.application.sender_id != scope:
            item = None
    if item is None or owner not in item.application.owners:  # never shown under another IIN or BIN
        return None
    return Found(item.application, True, item.history)
