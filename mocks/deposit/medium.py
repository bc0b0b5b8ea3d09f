"""The operator's check of the medium against the act (§15): the archive read as a stream, member by member, each
file's digest taken in chunks, never the whole archive or a whole file in memory; then every row of the act
compared with what is really there (§16: a mismatch or an unreadable medium is a ground for a reasoned refusal).
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mocks.deposit.pack import Tables

CHUNK = 1024 * 1024
MAX_MEMBERS = 100_000
MAX_MISMATCHES = 20
"The refusal names at most this many differing rows (the first ones)."


class MediumUnreadable(Exception):
    """§16 3): the archive cannot be read (corrupt, truncated, not a tar.gz, or too many members)."""


@dataclass(frozen=True)
class Member:
    """One regular file on the medium."""

    path: str
    "Its path in the archive."
    size: int
    "Its size."
    mtime: int
    "Its change time (UTC seconds)."
    sha256: str
    "Its SHA-256."


@dataclass(frozen=True)
class Mismatch:
    """One row of the act that differs from the medium."""

    table: str
    "'sourceFiles' or 'libraries'."
    row: int
    "The row's number in the act (0: a file on the medium the act does not list)."
    path: str
    "The file's path."
    field: str
    "What differs: file, sizeBytes, modifiedAt, sha256 (libraries: declaredIn)."
    declared: str
    "What the act says."
    actual: str
    "What the medium has."


def read_medium(path: Path) -> dict[str, Member]:
    """The regular files in the tar.gz at ``path`` by path; raises :class:`MediumUnreadable`. Blocking: run it in
    a thread."""
    members: dict[str, Member] = {}
    try:
        # gzip decompressed here, not by tarfile: read to its end, it checks the CRC and length of everything, while
        # tarfile alone stops quietly at a damaged header after the first member and never reads the trailer.
        with gzip.GzipFile(path, "rb") as unpacked, tarfile.open(fileobj=unpacked, mode="r|") as tar:
            for info in tar:
                if len(members) >= MAX_MEMBERS:
                    raise MediumUnreadable(f"more than {MAX_MEMBERS} members")
                if not info.isfile():
                    continue
                handle = tar.extractfile(info)
                if handle is None:
                    raise MediumUnreadable(f"member {info.name!r} has no data")
                digest, size = hashlib.sha256(), 0
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                if size != info.size:
                    raise MediumUnreadable(f"member {info.name!r} is truncated")
                members[info.name] = Member(info.name, size, int(info.mtime), digest.hexdigest())
            while unpacked.read(CHUNK):  # the rest (end-of-archive blocks, padding) up to the gzip trailer
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise MediumUnreadable(f"{type(exc).__name__}: {exc}") from None
    return members


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _same_time(declared: str, actual: int) -> bool:
    try:
        return int(datetime.fromisoformat(declared).timestamp()) == actual
    except ValueError:
        return False


def compare(tables: Tables, members: dict[str, Member]) -> list[Mismatch]:
    """The act's rows that differ from the medium, in the act's order, then files the act does not list."""
    found: list[Mismatch] = []
    listed = set()
    for row in tables.source_files:
        listed.add(row.path)
        member = members.get(row.path)
        if member is None:
            found.append(Mismatch("sourceFiles", row.number, row.path, "file", row.path, "absent"))
            continue
        for field, declared, actual, same in (
                ("sizeBytes", str(row.size_bytes), str(member.size), row.size_bytes == member.size),
                ("sha256", row.sha256, member.sha256, row.sha256 == member.sha256),
                ("modifiedAt", row.modified_at, _iso(member.mtime), _same_time(row.modified_at, member.mtime))):
            if not same:
                found.append(Mismatch("sourceFiles", row.number, row.path, field, declared, actual))
    for path in sorted(set(members) - listed):
        found.append(Mismatch("sourceFiles", 0, path, "file", "absent", path))
    for lib in tables.libraries:
        if lib.declared_in not in members:
            found.append(Mismatch("libraries", lib.number, lib.declared_in, "declaredIn", lib.declared_in, "absent"))
    return found[:MAX_MISMATCHES]
