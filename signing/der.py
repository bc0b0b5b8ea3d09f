"""The little DER a GOST PKI needs that no installed library does for unknown algorithms: split a structure
into its elements, and encode the few types certificates, CRLs and OCSP responses are assembled from.

Only definite-length DER is read (BER's indefinite lengths are refused): anything else raises
:class:`DerError`, so a malformed input fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass


class DerError(ValueError):
    """The bytes are not the DER expected."""


@dataclass(frozen=True)
class Tlv:
    """One DER element."""

    tag: int
    "The identifier octet (single-byte tags only, enough for X.509)."
    content: bytes
    "The content octets."
    raw: bytes
    "The whole element: identifier, length and content."


def read(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """The element starting at ``offset`` and the offset just after it."""
    if offset + 2 > len(data):
        raise DerError("truncated element")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not supported")
    at = offset + 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or at + count > len(data):
            raise DerError("bad length")
        size, at = int.from_bytes(data[at:at + count], "big"), at + count
    end = at + size
    if end > len(data):
        raise DerError("element longer than its container")
    return Tlv(tag, data[at:end], data[offset:end]), end


def one(data: bytes) -> Tlv:
    """The single element ``data`` holds (nothing may follow it)."""
    element, end = read(data)
    if end != len(data):
        raise DerError("trailing bytes after the element")
    return element


def children(data: bytes) -> list[Tlv]:
    """The elements of a constructed value's content, in order."""
    out, at = [], 0
    while at < len(data):
        element, at = read(data, at)
        out.append(element)
    return out


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + length(len(content)) + content


def sequence(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def bit_string(value: bytes) -> bytes:
    return tlv(0x03, b"\x00" + value)  # no unused bits


def integer(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
    return tlv(0x02, raw)


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([parts[0] * 40 + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def read_oid(element: Tlv) -> str:
    """The dotted form of an OBJECT IDENTIFIER element."""
    if element.tag != 0x06 or not element.content:
        raise DerError("not an OBJECT IDENTIFIER")
    values, current = [], 0
    for byte in element.content:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            values.append(current)
            current = 0
    first = min(values[0] // 40, 2)
    return ".".join(str(v) for v in (first, values[0] - 40 * first, *values[1:]))


def bit_string_bytes(element: Tlv) -> bytes:
    """The content of a BIT STRING without unused bits."""
    if element.tag != 0x03 or not element.content or element.content[0] != 0:
        raise DerError("not a BIT STRING of whole bytes")
    return element.content[1:]
