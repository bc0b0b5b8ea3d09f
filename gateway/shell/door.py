"""Overload refused at the door: a shed request is answered from the first bytes of its connection.

When admission is shedding (:meth:`gateway.access.admission.Admission.shedding`), a REST submission refused at
the gate still costs aiohttp's whole request cycle: the head and body parsed, a request object, the handler, a
response built and written, about 0.2 ms of CPU. That cost is what overload spends instead of serving, so at 2x
and 4x the saturation rate it is the goodput lost. Here the refusal is decided in the connection's
``data_received``, before aiohttp parses anything: the request line is read (only its method and path), the
prepared answer is written (the same 503 GATEWAY_OVERLOADED problem document with Retry-After the gate gives,
and the request's bytes never reach aiohttp. When those first bytes are exactly one whole HTTP/1.1 request with a
plain ``Content-Length`` body (:func:`whole_request`), the connection stays open for the caller's next request,
as after any answer; otherwise the answer says ``Connection: close``, the write side is shut, and the connection
closes at the caller's EOF or after a short linger (so a body still arriving is not met with a reset that could
lose the answer).

Only when it is safe to answer without aiohttp: the connection is between requests (nothing parsed and waiting,
no request in progress, no body being read), and the data begins with ``POST <an intake path> ``. Anything
else (another path, a partial request line, pipelined data) goes to aiohttp as before, and the gate refuses it
there. Security: nothing of the request beyond its head is looked at, nothing is processed, and the answer is
the same for every caller. Keeping the connection needs the request's end to be beyond doubt (a proxy in front
may reuse the connection for other callers' requests): one ``Content-Length`` of digits, no
``Transfer-Encoding``, header names that are tokens, no folded lines, and nothing after the body; anything else
closes, which is always allowed to a server.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from gateway.access.admission import Admission
from gateway.errors import GatewayError
from gateway.monitor.metrics import UNKNOWN, observe_request

REST_PATH = b"/api/v1/requests"
"The REST intake, the one path refused here (the SHEP channels' faults depend on the request's namespace)."
MAX_REQUEST_LINE = 8192
"A request line longer than this is left to aiohttp (which refuses it)."
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SPACE = b" \t"


def whole_request(data: bytes) -> bool:
    """Whether ``data`` is exactly one HTTP/1.1 request whose end is beyond doubt: a head, then a body of its one
    ``Content-Length`` (digits only), no ``Transfer-Encoding``, no ``Connection: close``, header names that are
    tokens, no folded lines, and nothing after the body."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    request_line, *fields = data[:head_end].split(b"\r\n")
    if not request_line.endswith(b" HTTP/1.1"):
        return False
    length: int | None = None
    for field in fields:
        name, colon, value = field.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return False  # a folded line, a space before the colon, no colon: aiohttp's business
        name, value = name.lower(), value.strip(_SPACE)
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return False
            length = int(value)
        elif name == b"transfer-encoding" or (name == b"connection" and b"close" in value.lower()):
            return False
    return length is not None and head_end + 4 + length == len(data)


@dataclass(frozen=True)
class Refusal:
    """A request refused at the door: what to write, and whether the connection stays open after it."""

    answer: bytes
    "The whole HTTP answer (:func:`rest_refusal`)."
    keep_alive: bool
    "True when the request was whole (:func:`whole_request`): the connection serves the caller's next request."


def rest_refusal(retry_after: int, *, keep_alive: bool = False) -> bytes:
    """The whole HTTP answer of a REST submission refused at the door: the gate's problem document (without a
    sessionId: no session was opened), Retry-After, and unless ``keep_alive`` Connection: close."""
    error = GatewayError("GATEWAY_OVERLOADED", "refused before it was read (queueing delay)", retry_after=retry_after)
    body = json.dumps({"type": f"urn:egov-gateway:error:{error.code}", "title": error.message(), "status": 503,
                       "code": error.code, "party": str(error.spec.party), "messages": dict(error.spec.messages),
                       "detail": error.detail, "retryAfterSeconds": retry_after}, ensure_ascii=False).encode()
    head = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\n%s"
            b"Content-Type: application/problem+json; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
            % (retry_after, b"" if keep_alive else b"Connection: close\r\n", len(body)))
    return head + body


@dataclass(frozen=True)
class Door:
    """What a connection asks before handing its data to aiohttp: is this a request to refuse at once?"""

    admission: Admission
    "The intake's gate (the same one the handlers enter): its state says whether requests are being shed."
    closing: Refusal
    "The prepared refusal that closes the connection."
    keeping: Refusal
    "The prepared refusal that keeps it (for a whole request)."

    @classmethod
    def of(cls, admission: Admission) -> Door:
        retry_after = admission.policy.retry_after
        return cls(admission, Refusal(rest_refusal(retry_after), keep_alive=False),
                   Refusal(rest_refusal(retry_after, keep_alive=True), keep_alive=True))

    def refusal(self, data: bytes) -> Refusal | None:
        """The answer to write when ``data`` (the first bytes of a request) is refused here; None to go on."""
        if not self.admission.shedding() or not data.startswith(b"POST "):
            return None
        end = data.find(b" ", 5, MAX_REQUEST_LINE)
        if end < 0:
            return None
        path = data[5:end].split(b"?", 1)[0]
        if path != REST_PATH:
            return None
        self.admission.refused_at_door()
        observe_request("rest", UNKNOWN, "GATEWAY_OVERLOADED", time.perf_counter())
        return self.keeping if whole_request(data) else self.closing
