"""The storage seam for package bytes: one protocol, and the local filesystem behind it by default.

Every call that touches the disk is blocking and is meant to be run in a worker thread (the callers in
``packages.py`` and ``gateway/uploads`` do so): a 1 GB package never passes through the event loop's thread
as one block, only as buffers handed from the socket to a thread and back.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from pathlib import Path
from typing import BinaryIO, Protocol

UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
"An upload's id: 32 lowercase hex digits (a random UUID); names a file, so nothing else is ever accepted."
DROP_BEHIND_BYTES = 32 << 20
"A package read is let go of from the page cache this often (it is read once, to be forwarded)."


class PackageStorage(Protocol):
    """Where package bytes live, by upload id. Implementations are blocking; call them from a thread."""

    def create(self, upload_id: str) -> None:
        """Create an empty package."""

    def open_append(self, upload_id: str, offset: int) -> BinaryIO:
        """Open for writing at ``offset``; anything stored beyond it (bytes written but never recorded as
        received, e.g. before a crash) is cut off first."""

    def settle(self, stream: BinaryIO, start: int, end: int) -> None:
        """Make everything written to ``stream`` durable (it survives a crash of the machine); bytes ``start`` to
        ``end`` of it need not stay in memory after (the caller will not read them back soon)."""

    def size(self, upload_id: str) -> int | None:
        """Bytes stored, or None when there is no such package."""

    def read(self, upload_id: str, offset: int = 0, chunk_size: int = 1 << 20) -> Generator[bytes, None, None]:
        """The bytes from ``offset`` on, ``chunk_size`` at a time."""

    def delete(self, upload_id: str) -> None:
        """Remove the package (no error if it is already gone)."""

    def ids(self) -> list[str]:
        """Every stored upload id (for the sweep of expired uploads)."""

    def location(self, upload_id: str) -> Path:
        """A path naming the package (for logs and for callers that hand the file to another process)."""


class FilesystemStorage:
    """Packages as files ``<directory>/<upload id>``, created with mode 0600."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def location(self, upload_id: str) -> Path:
        if not UPLOAD_ID.fullmatch(upload_id):
            raise ValueError("not an upload id")
        return self.directory / upload_id

    def create(self, upload_id: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.location(upload_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)

    def open_append(self, upload_id: str, offset: int) -> BinaryIO:
        stream = open(self.location(upload_id), "r+b", buffering=0)  # noqa: SIM115 - the caller closes it
        try:
            stream.truncate(offset)
            stream.seek(offset)
        except BaseException:
            stream.close()
            raise
        return stream

    def settle(self, stream: BinaryIO, start: int, end: int) -> None:
        # Dropping the flushed pages keeps a streamed package from filling the page cache: the next writes reuse
        # the pages just freed, and the final fsync has a window, not the whole package, to flush.
        os.fsync(stream.fileno())
        _drop_cached(stream.fileno(), start, end)

    def size(self, upload_id: str) -> int | None:
        try:
            return self.location(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, upload_id: str, offset: int = 0, chunk_size: int = 1 << 20) -> Generator[bytes, None, None]:
        with open(self.location(upload_id), "rb", buffering=0) as stream:
            stream.seek(offset)
            dropped = position = offset
            while chunk := stream.read(chunk_size):
                yield chunk
                position += len(chunk)
                if position - dropped >= DROP_BEHIND_BYTES:
                    _drop_cached(stream.fileno(), dropped, position)
                    dropped = position

    def delete(self, upload_id: str) -> None:
        self.location(upload_id).unlink(missing_ok=True)

    def ids(self) -> list[str]:
        try:
            return [entry.name for entry in os.scandir(self.directory) if UPLOAD_ID.fullmatch(entry.name)]
        except FileNotFoundError:
            return []


def _drop_cached(fd: int, start: int, end: int) -> None:
    """Tell the kernel bytes ``start`` to ``end`` of a file will not be read again soon (clean pages are freed)."""
    if end > start and hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)
