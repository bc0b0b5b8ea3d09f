"""One message log record: what it holds, how it is written, how the chain hashes it, how bodies are sealed.

A record is a JSON object written in one canonical form (sorted keys, no spaces, UTF-8), so its bytes, and with
them its hash, are fixed once written. In Redis a record waits without ``seq`` and ``prev`` (the sequence number
is its hash field); the sealer appends both as the object's last members when it chains the records
(:func:`chain_line`), and the line written to the archive is exactly the bytes that were hashed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

GENESIS = "0" * 64
"The ``prev`` of the very first record and the previous head of the first segment."


class Kind(StrEnum):
    """What a record registers."""

    REQUEST = "request"
    "A request as received (the body's bytes), once its sender was authenticated and its checks passed."
    RECEIPT = "receipt"
    "The signed receipt the gateway gave for it."
    ANSWER = "answer"
    "The answer the gateway sent back (the HTTP body)."
    PROVIDER_ANSWER = "provider-answer"
    "A back-end's answer, as it came."
    RESULT = "result"
    "The checked, signed result filed in the cabinet and handed to the sender."
    CABINET_READ = "cabinet-read"
    "A cabinet read: who read which applicant's data (the applicant's IIN/BIN masked)."
    RESULT_DELIVERY = "result-delivery"
    "A result handed to its sender: in a getMessages answer, or pushed to its callback (the body sent)."


class BodyKeyError(ValueError):
    """The body key is missing or not 32 bytes of base64."""


class RecordError(ValueError):
    """A stored record cannot be read."""


def canonical(value: Mapping[str, Any]) -> bytes:
    """The one byte form of a record or a seal statement."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat(timespec="microseconds")


class BodyCipher:
    """AES-256-GCM over part bodies; each body's associated data is its SHA-256, binding it to its record."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise BodyKeyError("the message log body key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_base64(cls, text: str | None) -> BodyCipher:
        try:
            return cls(base64.b64decode(text or "", validate=True))
        except binascii.Error:
            raise BodyKeyError("the message log body key must be base64") from None

    def seal(self, body: bytes, digest: str) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, body, digest.encode())).decode()

    def open(self, sealed: str, digest: str) -> bytes:
        """The body; RecordError when it was not sealed under this key for this digest, or was changed."""
        try:
            raw = base64.b64decode(sealed, validate=True)
            body = self._aead.decrypt(raw[:12], raw[12:], digest.encode())
        except (binascii.Error, InvalidTag, ValueError):
            raise RecordError("the body does not open with this key (wrong key, or changed)") from None
        if sha256_hex(body) != digest:
            raise RecordError("the body's SHA-256 differs from the record's")
        return body


@dataclass(frozen=True)
class Entry:
    """What a room hands the log: one event with its parts; :func:`make_record` turns it into a record."""

    kind: Kind
    "What happened."
    sender: str
    "The sender (the system that called, or that an answer went to)."
    service: str
    "The serviceId ('' for a cabinet read)."
    message_id: str
    "The sender's messageId ('' for a cabinet read)."
    session: str
    "The application's sessionId ('' when there is none)."
    parts: Mapping[str, bytes]
    "Named parts (request, receipt, answer, result, ...): their SHA-256 is kept, their bytes only if configured."
    note: str = ""
    "Anything else worth knowing, never personal data in full (e.g. a masked owner and the action)."
    digests: Mapping[str, str] = field(default_factory=dict)
    """Parts named by their SHA-256 only, their bytes being in another record (one getMessages answer hands over
    several results: each has its record, the answer's body is kept once)."""


def make_record(entry: Entry, cipher: BodyCipher | None, at: str | None = None) -> dict[str, Any]:
    """The record of ``entry`` as it waits in Redis (without seq and prev)."""
    digests = {**entry.digests, **{name: sha256_hex(body) for name, body in entry.parts.items()}}
    record: dict[str, Any] = {"at": at or utc_iso(), "kind": str(entry.kind), "sender": entry.sender,
                              "service": entry.service, "messageId": entry.message_id, "session": entry.session,
                              "parts": digests}
    if entry.note:
        record["note"] = entry.note
    if cipher is not None:
        record["bodies"] = {name: cipher.seal(body, digests[name]) for name, body in entry.parts.items()}
    return record


def chain_line(stored: bytes, seq: int, prev: str) -> bytes:
    """The archive line of the record stored as ``stored`` at ``seq``, linked to ``prev`` (the previous line's
    SHA-256): the stored object with ``prev`` and ``seq`` added as its last members, the bytes whose SHA-256 the
    next record names. Built from bytes, without parsing: sealing costs a hash per record, not a JSON round trip."""
    if not (stored.startswith(b'{"') and stored.endswith(b"}")):
        raise RecordError(f"record {seq} in Redis is not a record object")
    return b'%s,"prev":"%s","seq":%d}' % (stored[:-1], prev.encode(), seq)


def stored_form(record: dict[str, Any]) -> bytes:
    """An archived record's bytes as they waited in Redis (without ``prev`` and ``seq``)."""
    return canonical({key: value for key, value in record.items() if key not in ("prev", "seq")})
