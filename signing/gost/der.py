"""Just enough DER to read and write GOST SubjectPublicKeyInfo (``cryptography`` cannot load GOST keys).

Definite lengths only, as DER requires; anything else is refused with :class:`DerError`.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE = 0x30
OID = 0x06
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
INTEGER = 0x02


class DerError(ValueError):
    """The bytes are not the DER structure expected."""


@dataclass(frozen=True)
class Tlv:
    """One DER element."""

    tag: int
    "The identifier octet."
    value: bytes
    "The contents octets."
    end: int
    "Offset just past the element in the buffer it was read from."


def read(data: bytes, offset: int = 0) -> Tlv:
    """The element starting at ``offset``."""
    if offset + 2 > len(data):
        raise DerError("truncated element")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not used here")
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise DerError("bad length")
        length = int.from_bytes(data[start:start + count], "big")
        if length < 0x80 or data[start] == 0:
            raise DerError("non-minimal length")
        start += count
    end = start + length
    if end > len(data):
        raise DerError("element runs past the end")
    return Tlv(tag, data[start:end], end)


def children(value: bytes) -> list[Tlv]:
    """The elements inside a constructed element's contents."""
    out, offset = [], 0
    while offset < len(value):
        element = read(value, offset)
        out.append(element)
        offset = element.end
    return out


def expect(element: Tlv, tag: int, what: str) -> bytes:
    if element.tag != tag:
        raise DerError(f"{what}: tag {element.tag:#x}, expected {tag:#x}")
    return element.value


def decode_oid(value: bytes) -> str:
    if not value or value[-1] & 0x80:
        raise DerError("bad OBJECT IDENTIFIER")
    arcs, current = [], 0
    for byte in value:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def encode(tag: int, value: bytes) -> bytes:
    size = len(value)
    if size < 0x80:
        return bytes([tag, size]) + value
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + value


def encode_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.insert(0, 0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(chunk)
    return encode(OID, bytes(body))


def sequence(*elements: bytes) -> bytes:
    return encode(SEQUENCE, b"".join(elements))
