"""Overload refused at the door: a shed request is answered from the first bytes of its connection.

When admission is shedding (:meth:`gateway.access.admission.Admission.shedding`), a REST submission refused at
the gate still costs aiohttp's whole request cycle: the head and body parsed, a request object, the handler, a
response built and written, about 0.2 ms of CPU. That cost is what overload spends instead of serving, so at 2x
and 4x the saturation rate it is the goodput lost. Here the refusal is decided in the connection's
``data_received``, before aiohttp parses anything: the request line is read (only its method and path), the
prepared answer is written (the same 503 GATEWAY_OVERLOADED problem document with Retry-After the gate gives,
plus ``Connection: close``), the write side is shut, and the connection closes at the caller's EOF or after a
short linger (so a body still arriving is not met with a reset that could lose the answer).

Only when it is safe to answer without aiohttp: the connection is between requests (nothing parsed and waiting,
no request in progress, no body being read), and the data begins with ``POST <an intake path> ``. Anything
else (another path, a partial request line, pipelined data) goes to aiohttp as before, and the gate refuses it
there. Security: nothing of the request beyond its request line is looked at, nothing is processed, and the
answer is the same for every caller; closing a connection is always allowed to a server.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from gateway.access.admission import Admission
from gateway.errors import GatewayError
from gateway.monitor.metrics import UNKNOWN, observe_request

REST_PATH = b"/api/v1/requests"
"The REST intake, the one path refused here (the SHEP channels' faults depend on the request's namespace)."
MAX_REQUEST_LINE = 8192
"A request line longer than this is left to aiohttp (which refuses it)."


def rest_refusal(retry_after: int) -> bytes:
    """The whole HTTP answer of a REST submission refused at the door: the gate's problem document (without a
    sessionId: no session was opened), Retry-After, Connection: close."""
    error = GatewayError("GATEWAY_OVERLOADED", "refused before it was read (queueing delay)", retry_after=retry_after)
    body = json.dumps({"type": f"urn:egov-gateway:error:{error.code}", "title": error.message(), "status": 503,
                       "code": error.code, "party": str(error.spec.party), "messages": dict(error.spec.messages),
                       "detail": error.detail, "retryAfterSeconds": retry_after}, ensure_ascii=False).encode()
    head = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nConnection: close\r\n"
            b"Content-Type: application/problem+json; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
            % (retry_after, len(body)))
    return head + body


@dataclass(frozen=True)
class Door:
    """What a connection asks before handing its data to aiohttp: is this a request to refuse at once?"""

    admission: Admission
    "The intake's gate (the same one the handlers enter): its state says whether requests are being shed."
    answer: bytes
    "The prepared answer of a refused REST submission (:func:`rest_refusal`)."

    @classmethod
    def of(cls, admission: Admission) -> Door:
        return cls(admission, rest_refusal(admission.policy.retry_after))

    def refusal(self, data: bytes) -> bytes | None:
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
        return self.answer
