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


def der_replace_spki(certificate_der: bytes, spki: bytes) -> bytes:
    """The certificate with its SubjectPublicKeyInfo replaced by ``spki`` (its own signature no longer verifies:
    for tests whose path validator does not check it)."""

    def tlv(data: bytes, i: int) -> tuple[int, int]:  # (start of contents, end)
        size, j = data[i + 1], i + 2
        if size & 0x80:
            count = size & 0x7F
            size, j = int.from_bytes(data[j:j + count], "big"), j + count
        return j, j + size

    def wrap(tag: int, body: bytes) -> bytes:
        size = len(body)
        head = bytes([size]) if size < 0x80 else bytes([0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes(
            (size.bit_length() + 7) // 8, "big")
        return bytes([tag]) + head + body

    cert_start, cert_end = tlv(certificate_der, 0)
    tbs_start, tbs_end = tlv(certificate_der, cert_start)
    fields, i = [], tbs_start
    while i < tbs_end:
        _, end = tlv(certificate_der, i)
        fields.append(certificate_der[i:end])
        i = end
    index = (1 if fields[0][0] == 0xA0 else 0) + 5
    fields[index] = spki
    tbs = wrap(0x30, b"".join(fields))
    rest = certificate_der[tbs_end:cert_end]
    return wrap(0x30, tbs + rest)
