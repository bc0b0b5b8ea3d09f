"""DER surgery for tests: certificates with another key algorithm OID (e.g. GOST), which no library makes."""

from __future__ import annotations


def der_replace_oid(der: bytes, old: str, new: str) -> bytes:
    """Re-encode DER with the first OID ``old`` replaced by ``new`` (lengths fixed up)."""

    def length(n: int) -> bytes:
        if n < 0x80:
            return bytes([n])
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return bytes([0x80 | len(raw)]) + raw

    def walk(data: bytes, done: list[bool]) -> bytes:
        out, i = b"", 0
        while i < len(data):
            tag, size, i = data[i], data[i + 1], i + 2
            if size & 0x80:
                count = size & 0x7F
                size, i = int.from_bytes(data[i : i + count], "big"), i + count
            body, i = data[i : i + size], i + size
            if not done[0] and tag == 0x06 and bytes([tag]) + length(size) + body == encode_oid(old):
                done[0] = True
                out += encode_oid(new)
                continue
            if tag & 0x20:
                body = walk(body, done)
            out += bytes([tag]) + length(len(body)) + body
        return out

    return walk(der, [False])


def encode_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = b""
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.insert(0, 0x80 | (arc & 0x7F))
        body += bytes(chunk)
    return bytes([0x06, len(body)]) + body
