"""Connection hygiene: a header timeout, an idle timeout, a cap on open connections, a quiet accept loop.

* A connection must send a complete request head within ``listen.header_timeout_seconds`` of opening, or it
  is closed (slowloris). Later requests on a kept-alive connection are bounded by the idle timeout
  (``listen.keepalive_timeout_seconds``): aiohttp closes a connection whose next request has not arrived.
* At most ``listen.max_connections`` connections are open per process (unset: the open-files limit less a
  reserve for Redis pools, back-ends and files). The next connection is *accepted and refused*: a minimal
  ``503`` with ``Retry-After: 1`` and a GATEWAY_OVERLOADED problem document, then closed. Chosen over
  pausing accept(): a paused listener leaves callers hanging in the kernel's backlog until they time out,
  while a quick 503 tells them at once to come back, and keeps a descriptor free for the process's own use.
* asyncio logs "socket.accept() out of system resource" with a traceback on every failed accept(); that
  message (and the refusals above) is logged once per ``listen.error_log_seconds`` with a count.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.shell.door import Door

log = logging.getLogger("egov.connections")

HTTP_CLIENT_CONNECTIONS = 200
"The outgoing HTTP session's connection limit (back-ends, callbacks, OCSP): part of the descriptor reserve."
OTHER_DESCRIPTORS = 64
"Descriptors for everything else: log files, the event loop, the listening sockets, the trust store's files."
LOW_LIMIT = 4096
"Below this open-files limit the start-up check warns."


def connection_cap(settings: Settings) -> int:
    """``listen.max_connections``, or the open-files limit less the reserve (at least 16)."""
    if settings.listen.max_connections is not None:
        return settings.listen.max_connections
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, soft - reserved_descriptors(settings))


def reserved_descriptors(settings: Settings) -> int:
    pools = 2 * settings.redis.pool_size(settings.limits, settings.delivery)
    return pools + HTTP_CLIENT_CONNECTIONS + OTHER_DESCRIPTORS


def check_descriptor_limit(settings: Settings) -> None:
    """Raise the soft open-files limit to the hard one (as Go's runtime does), then warn if it stays low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
            soft = max(soft, target)
        except (ValueError, OSError):
            pass
    cap, reserve = connection_cap(settings), reserved_descriptors(settings)
    if soft < LOW_LIMIT or cap + reserve > soft:
        log.warning("the open-files limit is %d: %d client connections per process fit beside the %d descriptors "
                    "kept for Redis, back-ends and files; raise it (ulimit -n, systemd LimitNOFILE=) or set "
                    "listen.max_connections", soft, cap, reserve)


class Throttled:
    """A repeated event logged once per interval, with how many times it happened."""

    def __init__(self, text: str, interval: float) -> None:
        self.text, self.interval = text, interval
        self.count = 0
        self._next = 0.0

    def happened(self, detail: str = "") -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            log.warning("%s%s (%d times so far; logged at most once per %.0f s)", self.text, detail, self.count,
                        self.interval)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, interval: float) -> Throttled:
    """Log asyncio's accept() failures once per interval instead of one traceback per attempt."""
    throttled = Throttled("accept() failed: out of descriptors or memory; asyncio retries in a second", interval)
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            exc = context.get("exception")
            throttled.happened(f": {exc}" if exc else "")
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return throttled


def _refusal() -> bytes:
    error = GatewayError("GATEWAY_OVERLOADED", "too many open connections")
    body = json.dumps({"type": f"urn:egov-gateway:error:{error.code}", "title": error.message(), "status": 503,
                       "code": error.code, "party": str(error.spec.party), "messages": dict(error.spec.messages),
                       "detail": error.detail}, ensure_ascii=False).encode()
    head = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
            b"Content-Type: application/problem+json\r\nContent-Length: %d\r\n\r\n" % len(body))
    return head + body


REFUSAL = _refusal()


REFUSAL_LINGER_SECONDS = 0.25
"A refused connection is closed this long after its 503 at the latest (an idle flood's descriptors come back fast)."


class _Refuse(asyncio.Protocol):
    """Over the cap: answer 503, stop writing, close at the caller's EOF or after a short linger.

    The linger lets a request already on its way be read (closing with unread data would reset the
    connection, and the caller might lose the 503)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(REFUSAL)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # the request is not read: the answer does not depend on it

    def eof_received(self) -> bool:
        self.transport.close()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self._timer.cancel()


class _HeadTimedHandler(RequestHandler):
    """aiohttp's handler, closed if the first request head is not complete within the header timeout, and asking
    the :class:`~gateway.shell.door.Door` (when there is one) before aiohttp parses a request.

    aiohttp has no header timeout of its own; this reads its handler's ``_request_count`` (heads parsed so
    far), for the door its state between requests (``_messages``, ``_payload_parser``, ``_request_in_progress``,
    ``_waiter``) and its ``_next_keepalive_close_time``, and builds handlers with its server's ``_kwargs``, all
    private in aiohttp 3.x (constraints.txt pins the version; tests/test_faults_processes.py and
    tests/test_door.py fail if they change).
    """

    head_timeout = 10.0
    door: Door | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._door_timer: asyncio.TimerHandle | None = None
        self._head_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            self.head_timeout, self._head_overdue)

    def data_received(self, data: bytes) -> None:
        if self._door_timer is not None:
            return  # refused at the door: the rest of the request is not read
        if self.door is not None and self._between_requests():
            refusal = self.door.refusal(data)
            if refusal is not None:
                (self._answer_at_door if refusal.keep_alive else self._refuse_at_door)(refusal.answer)
                return
        super().data_received(data)
        if self._head_timer is not None and self._request_count:
            self._head_timer.cancel()
            self._head_timer = None

    def _between_requests(self) -> bool:
        """Nothing of an earlier request is parsed, waiting, running or being read: new data starts a request."""
        return (not self._messages and self._payload_parser is None and not self._request_in_progress
                and not self._upgraded and not self._force_close and not self._close
                and (self._request_count == 0 or self._waiter is not None))

    def _answer_at_door(self, answer: bytes) -> None:
        """Answer a whole request aiohttp never saw; the connection waits for the next one as after any answer
        (its idle timeout counted from now)."""
        assert isinstance(self.transport, asyncio.Transport)
        self.transport.write(answer)
        self._next_keepalive_close_time = asyncio.get_running_loop().time() + self._keepalive_timeout

    def _refuse_at_door(self, answer: bytes) -> None:
        """Answer, shut the write side, close at the caller's EOF (the transport does) or after the linger."""
        transport = self.transport
        assert isinstance(transport, asyncio.Transport)
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
        self._door_timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_SECONDS, self.force_close)

    def _head_overdue(self) -> None:
        self._head_timer = None
        if not self._request_count:
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        for timer in (getattr(self, "_head_timer", None), getattr(self, "_door_timer", None)):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)


class GuardedSite(web.TCPSite):
    """A TCP site whose connections get the header timeout and the connection cap."""

    def __init__(self, runner: web.AppRunner, settings: Settings, *, reuse_port: bool = False,
                 door: Door | None = None) -> None:
        super().__init__(runner, settings.listen.host, settings.listen.port, reuse_address=True, reuse_port=reuse_port)
        self.settings, self.door = settings, door
        self.cap = connection_cap(settings)
        self.refused = Throttled(f"refused a connection: {self.cap} open (listen.max_connections)",
                                 settings.listen.error_log_seconds)

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        handler_type = type("HeadTimedHandler", (_HeadTimedHandler,),
                            {"head_timeout": self.settings.listen.header_timeout_seconds, "door": self.door})

        def factory() -> asyncio.BaseProtocol:
            if len(server.connections) >= self.cap:
                self.refused.happened()
                return _Refuse()
            handler: asyncio.BaseProtocol = handler_type(server, loop=loop, **server._kwargs)
            return handler

        self._server = await loop.create_server(factory, self._host, self._port, backlog=self._backlog,
                                                reuse_address=self._reuse_address, reuse_port=self._reuse_port)


def runner_for(app: web.Application, settings: Settings, access_log_class: Any) -> web.AppRunner:
    """An AppRunner with the idle (keep-alive) timeout from the settings."""
    return web.AppRunner(app, access_log_class=access_log_class,
                         keepalive_timeout=settings.listen.keepalive_timeout_seconds)
