"""The archive: one file per sealed segment, ``segment-NNNNNNNN.jsonl``, linked into one chain.

A file holds the segment's records, one canonical JSON line each, in sequence order, each naming the SHA-256 of
the line before it (``prev``; the first names the last record of the previous segment), and a last line with the
seal: the statement (segment number, first and last sequence numbers, the previous segment's head, this head),
the gateway's signature over it, its certificate, and the TSA's RFC 3161 token over SHA-256 of the signature.
Files are written whole (temporary file, fsync, rename, fsync of the directory): a reader sees a segment
complete or not at all.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.messagelog.records import canonical

FORMAT = "egov-messagelog/1"
_NAME = re.compile(r"segment-(\d{8})\.jsonl")


@dataclass(frozen=True)
class Seal:
    """The last line of a segment file."""

    statement: dict[str, Any]
    "format, segment, first, last, count, prevHead, head, sealedAt."
    signature: bytes
    "The gateway's signature over the canonical statement."
    algorithm: str
    "rsa-pkcs1v15-sha256 or ecdsa-sha256."
    certificate: bytes
    "The gateway's certificate, DER."
    timestamp: bytes
    "The RFC 3161 TimeStampToken over SHA-256 of ``signature``, DER."

    def line(self) -> bytes:
        return canonical({"seal": self.statement, "signature": _b64(self.signature), "algorithm": self.algorithm,
                          "certificate": _b64(self.certificate), "timestamp": _b64(self.timestamp)})

    @classmethod
    def parse(cls, line: bytes) -> Seal:
        """ValueError (or KeyError, TypeError) when the line is not a seal."""
        raw = json.loads(line)
        statement = raw["seal"]
        if not isinstance(statement, dict) or statement.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} seal")
        return cls(statement, base64.b64decode(raw["signature"], validate=True), str(raw["algorithm"]),
                   base64.b64decode(raw["certificate"], validate=True),
                   base64.b64decode(raw["timestamp"], validate=True))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def segment_path(directory: Path, segment: int) -> Path:
    return directory / f"segment-{segment:08d}.jsonl"


def segment_number(path: Path) -> int | None:
    match = _NAME.fullmatch(path.name)
    return int(match.group(1)) if match else None


def segment_files(directory: Path) -> list[Path]:
    """The segment files in order of their number (other files are ignored)."""
    if not directory.is_dir():
        return []
    found = [(segment_number(p), p) for p in directory.iterdir()]
    return [path for number, path in sorted((n, p) for n, p in found if n is not None)]


def read_lines(path: Path) -> list[bytes]:
    """The file's lines without their line ends (a final empty line is dropped)."""
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def write_segment(directory: Path, segment: int, lines: list[bytes], seal: Seal) -> Path:
    """Write one segment file atomically; FileExistsError if the segment is already there."""
    directory.mkdir(parents=True, exist_ok=True)
    path = segment_path(directory, segment)
    if path.exists():
        raise FileExistsError(f"{path} exists already")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(b"".join(line + b"\n" for line in lines))
        out.write(seal.line() + b"\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return path


def last_seal(directory: Path) -> Seal | None:
    """The seal of the newest segment file, None when there is none (ValueError when it cannot be read)."""
    files = segment_files(directory)
    if not files:
        return None
    lines = read_lines(files[-1])
    if not lines:
        raise ValueError(f"{files[-1]} is empty")
    try:
        return Seal.parse(lines[-1])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{files[-1]}: its last line is not a seal ({exc})") from None
