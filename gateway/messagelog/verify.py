"""Checking the message log: every hash link, every seal's signature and timestamp, the live tail in Redis.

The walk stops at nothing: every problem is listed with its file, line and record, and the first one is the
break (a changed byte shows as the next record's ``prev`` not matching, or, for a segment's last record, as the
seal's head not matching; a deleted record as a gap in the sequence numbers; two records swapped as a sequence
number out of order).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.messagelog import tsp
from gateway.messagelog.archive import Seal, read_lines, segment_files, segment_number
from gateway.messagelog.records import GENESIS, canonical, chain_line, sha256_hex, stored_form
from signing.trust import TrustStore, UntrustedCertificateError

_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold."""

    where: str
    "File name (or 'redis' for the live tail)."
    line: int | None
    "1-based line in the file, when one is to blame."
    record: int | None
    "The record's sequence number, when known."
    what: str
    "What differs."

    def __str__(self) -> str:
        place = self.where + (f" line {self.line}" if self.line else "") + (
            f" record {self.record}" if self.record is not None else "")
        return f"{place}: {self.what}"


@dataclass
class Walk:
    """What the walk saw."""

    segments: int = 0
    "Segment files checked."
    records: int = 0
    "Archived records checked."
    tail: int = 0
    "Unsealed records found in Redis."
    skipped: int = 0
    "Segment files outside --from/--to."
    problems: list[Problem] = field(default_factory=list)
    "Every break found, first one first."
    seq: int = 0
    "Last sequence number seen."
    head: str = GENESIS
    "SHA-256 of the last line seen."
    segment: int = 0
    "Last segment number seen."
    last_sealed_at: datetime | None = None
    "When the last checked segment was sealed."

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_archive(directory: Path, trust: TrustStore, *, since: datetime | None = None,
                   until: datetime | None = None) -> Walk:
    """Walk the segment files of ``directory`` in order (``since``/``until``: only segments sealed from
    ``since`` on, and up to the first one sealed after ``until``)."""
    walk = Walk()
    for path in segment_files(directory):
        lines = read_lines(path)
        seal = _seal_of(path, lines, walk)
        sealed_at = _time(seal.statement.get("sealedAt")) if seal else None
        if since and sealed_at and sealed_at < since:
            _skip(walk, seal, lines)
            continue
        if until and walk.last_sealed_at and walk.last_sealed_at > until:
            walk.skipped += 1  # the segment before held the records up to ``until``
            continue
        _check_segment(path, lines, seal, trust, walk)
        walk.segments += 1
        walk.last_sealed_at = sealed_at
    return walk


def _skip(walk: Walk, seal: Seal | None, lines: list[bytes]) -> None:
    """A segment before --from: take its end as given, to link the next one."""
    walk.skipped += 1
    if seal is not None:
        walk.seq, walk.head = int(seal.statement.get("last", walk.seq)), str(seal.statement.get("head", walk.head))
        walk.segment = int(seal.statement.get("segment", walk.segment))


def _seal_of(path: Path, lines: list[bytes], walk: Walk) -> Seal | None:
    if not lines:
        walk.problems.append(Problem(path.name, None, None, "the file is empty"))
        return None
    try:
        return Seal.parse(lines[-1])
    except (ValueError, KeyError, TypeError) as exc:
        walk.problems.append(Problem(path.name, len(lines), None, f"the last line is not a readable seal ({exc})"))
        return None


def _check_segment(path: Path, lines: list[bytes], seal: Seal | None, trust: TrustStore, walk: Walk) -> None:
    name, number = path.name, segment_number(path)
    if number != walk.segment + 1:
        walk.problems.append(Problem(name, None, None, f"segment {walk.segment + 1} expected here: a segment file "
                                                      "is missing or renamed"))
    start_seq, start_head = walk.seq, walk.head
    _check_order(name, lines[:-1] if seal else lines, start_seq, walk)
    last_at: datetime | None = None
    for index, line in enumerate(lines[:-1] if seal else lines, start=1):
        record = _record(name, index, line, walk)
        if record is None:
            continue
        last_at = _time(record.get("at")) or last_at
        walk.records += 1
    walk.segment = number or walk.segment + 1
    if seal is not None:
        _check_seal(name, len(lines), seal, start_seq, start_head, number, trust, walk, last_at)


def _check_order(name: str, lines: list[bytes], start_seq: int, walk: Walk) -> None:
    """All the expected records are there but not in order: say so first (the links then break too)."""
    seqs = []
    for line in lines:
        try:
            seqs.append(int(json.loads(line)["seq"]))
        except (ValueError, KeyError, TypeError):
            return
    expected = list(range(start_seq + 1, start_seq + 1 + len(seqs)))
    if seqs != expected and sorted(seqs) == expected:
        moved = [(index, seq) for index, (seq, want) in enumerate(zip(seqs, expected, strict=True), 1) if seq != want]
        places = ", ".join(f"line {index} holds record {seq}" for index, seq in moved[:4])
        walk.problems.append(Problem(name, moved[0][0], expected[moved[0][0] - 1],
                                     f"records reordered: {places}"))


def _record(name: str, index: int, line: bytes, walk: Walk) -> dict[str, Any] | None:
    expected = walk.seq + 1
    try:
        record = json.loads(line)
        seq = record["seq"]
        if not isinstance(seq, int) or not isinstance(record, dict):
            raise TypeError("seq is not a number")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        walk.problems.append(Problem(name, index, expected, f"not a readable record ({exc}): changed?"))
        walk.seq, walk.head = expected, sha256_hex(line)
        return None
    if seq > expected:
        missing = f"record {expected}" if seq == expected + 1 else f"records {expected}..{seq - 1}"
        walk.problems.append(Problem(name, index, seq, f"{missing} missing before it (deleted?)"))
    elif seq < expected:
        walk.problems.append(Problem(name, index, seq, f"out of order: record {expected} expected here "
                                                       "(records reordered?)"))
    if record.get("prev") != walk.head:
        walk.problems.append(Problem(name, index, seq, f"its prev does not match the SHA-256 of the line before "
                                                       f"(record {walk.seq} changed, or records moved)"))
    if chain_line(stored_form(record), seq, str(record.get("prev"))) != line:
        walk.problems.append(Problem(name, index, seq, "the line is not in its canonical form (edited?)"))
    walk.seq, walk.head = max(walk.seq, seq), sha256_hex(line)
    return record


def _check_seal(name: str, line_no: int, seal: Seal, start_seq: int, start_head: str, number: int | None,
                trust: TrustStore, walk: Walk, last_at: datetime | None) -> None:
    statement = seal.statement

    def fail(what: str, record: int | None = None) -> None:
        walk.problems.append(Problem(name, line_no, record, f"seal: {what}"))

    if statement.get("segment") != number:
        fail(f"names segment {statement.get('segment')}, the file is segment {number}")
    if statement.get("prevHead") != start_head:
        fail("its previous head is not the previous segment's head (a segment was replaced or removed)")
    if statement.get("first") != start_seq + 1 or statement.get("last") != walk.seq:
        fail(f"covers records {statement.get('first')}..{statement.get('last')}, the file holds "
             f"{start_seq + 1}..{walk.seq}")
    if statement.get("head") != walk.head:
        fail(f"its head is not the SHA-256 of the last record (record {walk.seq} changed?)", walk.seq)
    walk.head = str(statement.get("head", walk.head))
    sealed_at = _time(statement.get("sealedAt"))
    try:
        certificate = x509.load_der_x509_certificate(seal.certificate)
        _verify_signature(certificate, seal)
        trust.validate(certificate, [], sealed_at or certificate.not_valid_before_utc)
    except (ValueError, InvalidSignature, UntrustedCertificateError) as exc:
        fail(f"the gateway's signature does not hold: {exc or type(exc).__name__}")
    try:
        stamp = tsp.verify_token(seal.timestamp, tsp.digest_of(seal.signature), trust)
    except tsp.TimestampError as exc:
        fail(f"the timestamp does not hold: {exc}")
        return
    if sealed_at and abs(stamp.gen_time - sealed_at) > _CLOCK_SKEW + timedelta(minutes=5):
        fail(f"timestamped at {stamp.gen_time.isoformat()}, far from its sealing time {sealed_at.isoformat()}")
    if last_at and last_at > stamp.gen_time + _CLOCK_SKEW:
        fail(f"a record is dated {last_at.isoformat()}, after its timestamp {stamp.gen_time.isoformat()}")


def _verify_signature(certificate: x509.Certificate, seal: Seal) -> None:
    key, data = certificate.public_key(), canonical(seal.statement)
    if isinstance(key, rsa.RSAPublicKey) and seal.algorithm == "rsa-pkcs1v15-sha256":
        key.verify(seal.signature, data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePublicKey) and seal.algorithm == "ecdsa-sha256":
        key.verify(seal.signature, data, ec.ECDSA(hashes.SHA256()))
    else:
        raise ValueError(f"algorithm {seal.algorithm} does not fit the certificate's key")


def check_tail(walk: Walk, sealed: dict[str, str], head_seq: int, seqs: Sequence[int]) -> None:
    """The live tail: Redis's last seal is the archive's last, and the unsealed records are all there."""
    if sealed and (int(sealed.get("seq", 0)) != walk.seq or sealed.get("head", GENESIS) != walk.head):
        walk.problems.append(Problem("redis", None, int(sealed.get("seq", 0)),
                                     f"the last seal Redis knows (record {sealed.get('seq')}, segment "
                                     f"{sealed.get('segment')}) is not the archive's last (record {walk.seq})"))
    present = set(seqs)
    start = int(sealed.get("seq", walk.seq)) if sealed else walk.seq
    missing = [seq for seq in range(start + 1, head_seq + 1) if seq not in present]
    if missing:
        walk.problems.append(Problem("redis", None, missing[0],
                                     f"{len(missing)} unsealed record(s) missing from Redis (deleted?)"))
    walk.tail = len(present)


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
