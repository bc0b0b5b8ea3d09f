"""JSON from callers, parsed within bounds: ``json.loads`` recurses once per nesting level, so a body of a
few kilobytes of ``[[[[...`` would end in a ``RecursionError`` (a 500 and a traceback per request). The nesting
depth is measured first, without recursion, and a body too deep or too large is refused as
``CLIENT_MALFORMED_JSON`` / ``CLIENT_BODY_TOO_LARGE`` before the parser sees it."""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.errors import GatewayError

MAX_DEPTH = 32
"Deepest nesting of arrays and objects accepted; the gateway's own envelopes need 4."
MAX_TOKENS = 100_000
"Strings, arrays and objects scanned at most when measuring the depth; more is refused (bounds the scan's cost)."
# A string (escapes included; an unterminated one runs to the end, so no match ever fails and rescans: linear)
# or one bracket. Brackets inside strings are skipped with their string.
_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


def check_nesting(body: bytes, max_depth: int = MAX_DEPTH, max_tokens: int = MAX_TOKENS) -> None:
    """Refuse (``CLIENT_MALFORMED_JSON``) a body nested deeper than ``max_depth``, without recursing."""
    if body.count(b"[") + body.count(b"{") <= max_depth:  # cannot be deeper: skip the scan (C speed)
        return
    depth = 0
    for count, token in enumerate(_TOKENS.finditer(body)):
        if count >= max_tokens:
            raise GatewayError("CLIENT_MALFORMED_JSON", f"more than {max_tokens} JSON values")
        bracket = token.group()
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise GatewayError("CLIENT_MALFORMED_JSON", f"JSON nested deeper than {max_depth} levels")
        elif bracket in (b"]", b"}"):
            depth -= 1


def checked_text(body: bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> str:
    """``body`` as JSON text, decoded as ``json.loads`` would (UTF-8, -16 or -32), once it is within the bounds:
    ``CLIENT_BODY_TOO_LARGE`` above ``max_bytes``; ``CLIENT_MALFORMED_JSON`` nested deeper than ``max_depth``, with
    too many values, or not decodable. Apart from :func:`loads_text` so a caller can drop a big body before the
    parse."""
    if len(body) > max_bytes:
        raise GatewayError("CLIENT_BODY_TOO_LARGE", f"limit is {max_bytes} bytes")
    check_nesting(body, max_depth)
    try:
        return body.decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError as exc:
        raise GatewayError("CLIENT_MALFORMED_JSON", str(exc)[:200]) from None


def loads_text(text: str) -> Any:
    """Parse text from :func:`checked_text`, or raise ``CLIENT_MALFORMED_JSON``."""
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise GatewayError("CLIENT_MALFORMED_JSON", str(exc)[:200]) from None
    except RecursionError:  # not reachable within max_depth; kept so no setting can turn it into a 500
        raise GatewayError("CLIENT_MALFORMED_JSON", "JSON nested too deeply") from None


def loads_bounded(body: bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``body`` as JSON within the bounds of :func:`checked_text`, or raise :class:`GatewayError`."""
    return loads_text(checked_text(body, max_bytes=max_bytes, max_depth=max_depth))
