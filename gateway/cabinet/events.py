"""Live cabinet events: one Redis pub/sub connection per process, fanned out in memory to every open stream.

The store publishes each change on ``{prefix}:events:{owner}``. :class:`EventHub` holds one PSUBSCRIBE on
all those channels, on a Redis client of its own (one connection at most, never one of the pools intake,
jobs and delivery use), and hands each message to the bounded queues of the streams open for its owner;
messages nobody watches are dropped. One pattern instead of a SUBSCRIBE per owner: the process hears
every owner's changes (a small JSON per status change) but never sends a command while it reads, and a
new page is listening at once, with no round trip to Redis.

A page that reads too slowly never holds up the hub: when its queue is full its stream is ended (the
browser reconnects after ``retry:`` and reloads). Streams are capped per owner and in total
(:class:`~gateway.config.CabinetSettings`); the refusals carry Retry-After.

Wire format (:func:`serve`): ``retry:`` first; a ``connected`` event once the page is listening (a page
re-reads what it shows then: a change made between its render and this moment was not sent); one
``application`` event per change; a ``resync`` event after the hub resubscribed (changes made during
the outage were missed: reload); ``: keep-alive`` when idle, which is also how a gone page is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub

from gateway.config import CabinetSettings
from gateway.errors import GatewayError
from gateway.monitor.metrics import CABINET_STREAMS
from gateway.supervise import STORAGE_ERRORS, FailureBurst, supervise
from gateway.web.problems import problem
from signing.idnumbers import mask_id

log = logging.getLogger("egov.cabinet.events")
STREAM_RETRY_MS = 3000
"Sent as the SSE ``retry:`` field: how long a browser waits before reconnecting a stream that ended."
READ_SECONDS = 1.0
"Longest wait of one hub read: how soon the hub notices it should stop."


class Kind(StrEnum):
    """What a stream is told."""

    LISTENING = "listening"
    "The hub is subscribed: changes from now on arrive (sent again after every resubscription)."
    APPLICATION = "application"
    "One of the owner's applications changed; the data is the store's event JSON."
    END = "end"
    "The stream is over: its page read too slowly, or the server stops."


@dataclass(frozen=True)
class Notice:
    """One item in a stream's queue."""

    kind: Kind
    "What happened."
    data: str = ""
    "The event's JSON, for an application change."


LISTENING, END = Notice(Kind.LISTENING), Notice(Kind.END)


class Stream:
    """One open page's place in the hub: a bounded queue the hub fills without ever waiting."""

    def __init__(self, owner: str, size: int, scope: str | None = None) -> None:
        self.owner = owner
        "The IIN/BIN whose changes this stream gets."
        self.scope = scope
        "The sender whose applications' changes it gets; None: every sender's (``cabinet_reads_all``)."
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize=size + 1)  # +1: room for END, always
        self._size = size
        self.ended = False
        "True once END was queued: nothing else is."

    def offer(self, notice: Notice) -> bool:
        """Queue ``notice`` now; False (and the stream ended) when the page has fallen too far behind."""
        if self.ended:
            return False
        if self.queue.qsize() >= self._size:
            self.end()
            return False
        self.queue.put_nowait(notice)
        return True

    def end(self) -> None:
        """Drop what is queued and queue END: the page reconnects and reloads, so nothing is lost."""
        if not self.ended:
            self.ended = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(END)


def _glob_escape(text: str) -> str:
    for special in "\\*?[]":
        text = text.replace(special, "\\" + special)
    return text


class EventHub:
    """The process's one subscription to the cabinet's change channels, shared by all open streams.

    ``redis`` must be a client of the hub's own (its pool is held by the subscription); ``channel_prefix``
    is the store's channel name without the owner. The hub connects when the first stream opens, runs
    under :func:`~gateway.supervise.supervise` (:meth:`run`) and, after a Redis error, subscribes again
    after a backoff and tells every stream to ``resync``. Changes published meanwhile are missed. On a Redis
    Cluster the hub listens on one node (any: pub/sub is broadcast), moving to the next after a failure.
    """

    def __init__(self, redis: Redis, channel_prefix: str, settings: CabinetSettings) -> None:
        self.redis = redis
        "The hub's own client."
        self.settings = settings
        "Caps and keep-alive."
        self.pattern = _glob_escape(channel_prefix) + "*"
        "What the hub subscribes to."
        self.dropped = 0
        "Streams ended because their page read too slowly."
        self._prefix = channel_prefix
        self._streams: dict[str, set[Stream]] = {}
        self._total = 0
        self._pubsub: PubSub | None = None
        self._listening = False
        self._closed = False
        self._wanted = asyncio.Event()
        self._burst = FailureBurst("cabinet event hub", logger=log)
        self._turn = -1

    def open(self, owner: str, scope: str | None = None) -> Stream:
        """A new stream for ``owner``'s changes (of the applications ``scope`` sent, unless None); refused with
        ``CLIENT_TOO_MANY_STREAMS`` (this owner's cap) or ``GATEWAY_STREAMS_FULL`` (the process's cap, or it is
        stopping). Pair with :meth:`close`."""
        if len(self._streams.get(owner, ())) >= self.settings.max_streams_per_owner:
            raise GatewayError("CLIENT_TOO_MANY_STREAMS",
                               f"at most {self.settings.max_streams_per_owner} live streams per IIN/BIN")
        if self._closed or self._total >= self.settings.max_streams:
            raise GatewayError("GATEWAY_STREAMS_FULL", "too many live streams are open on this server")
        mine = self._streams.setdefault(owner, set())
        stream = Stream(owner, self.settings.stream_buffer, scope)
        mine.add(stream)
        self._total += 1
        CABINET_STREAMS.inc()
        if self._listening:
            stream.offer(LISTENING)
        self._wanted.set()
        return stream

    def close(self, stream: Stream) -> None:
        """Free the stream's place (idempotent)."""
        mine = self._streams.get(stream.owner)
        if mine is None or stream not in mine:
            return
        mine.discard(stream)
        self._total -= 1
        CABINET_STREAMS.dec()
        if not mine:
            del self._streams[stream.owner]

    def count(self, owner: str | None = None) -> int:
        """Streams open for ``owner``, or in all."""
        return self._total if owner is None else len(self._streams.get(owner, ()))

    def shutdown(self) -> None:
        """Refuse new streams and end the open ones (the server stops: their handlers return at once)."""
        self._closed = True
        for mine in self._streams.values():
            for stream in mine:
                stream.end()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the subscription up and fan messages out until ``stop`` is set."""
        try:
            await supervise("cabinet event hub", lambda: self._step(stop), stop, burst=self._burst)
        finally:
            await self._drop()

    async def aclose(self) -> None:
        """Close the subscription and the hub's client."""
        await self._drop()
        await self.redis.aclose()

    async def _step(self, stop: asyncio.Event) -> None:
        if self._pubsub is None:
            if not self._total:  # nobody listens: hold no connection until the first page comes
                await self._idle(stop)
                return
            await self._subscribe()
        assert self._pubsub is not None
        try:
            message = await self._pubsub.get_message(timeout=READ_SECONDS)
        except BaseException:  # a failed read leaves the connection unusable: subscribe afresh next time
            await self._drop()
            raise
        if message is not None:
            self._dispatch(message)

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wanted.clear()
        waits = [asyncio.ensure_future(self._wanted.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _subscribe(self) -> None:
        client: Redis | RedisCluster = self.redis  # a cluster client comes typed as Redis (shell/redis_clients.py)
        if isinstance(client, RedisCluster):
            # Classic pub/sub reaches every node of a cluster: listen on one, the next one after each failure,
            # so a dead node is left behind on the next try.
            await client.initialize()
            nodes = sorted(client.get_nodes(), key=lambda node: node.name)
            self._turn += 1
            pubsub: PubSub = client.pubsub(node=nodes[self._turn % len(nodes)])
        else:
            pubsub = self.redis.pubsub()
        try:
            await pubsub.psubscribe(self.pattern)
        except BaseException:
            with contextlib.suppress(*STORAGE_ERRORS):
                await pubsub.aclose()
            raise
        self._pubsub = pubsub  # listening once Redis confirms (the psubscribe message), not before

    async def _drop(self) -> None:
        self._listening = False
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*STORAGE_ERRORS):
                await pubsub.aclose()

    def _dispatch(self, message: dict[str, object]) -> None:
        if message["type"] == "psubscribe":
            self._listening = True
            for mine in self._streams.values():
                for stream in mine:
                    stream.offer(LISTENING)
            return
        if message["type"] != "pmessage":
            return
        channel, data = (_text(message[key]) for key in ("channel", "data"))
        if not channel.startswith(self._prefix):
            return
        owner = channel[len(self._prefix):]
        streams = self._streams.get(owner)
        if not streams:
            return
        sender = _sender_of(data) if any(stream.scope is not None for stream in streams) else None
        for stream in list(streams):
            if stream.scope is not None and stream.scope != sender:
                continue  # another sender's application: not even its messageId is shown
            if not stream.ended and not stream.offer(Notice(Kind.APPLICATION, data)):
                self.dropped += 1
                log.info("cabinet stream for %s ended: its page reads too slowly", mask_id(owner))


def _sender_of(data: str) -> str | None:
    """The ``senderId`` of a change event (the store writes it); None for anything unreadable."""
    try:
        event = json.loads(data)
    except ValueError:
        return None
    sender = event.get("senderId") if isinstance(event, dict) else None
    return sender if isinstance(sender, str) else None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def refusal(error: GatewayError, language: str, settings: CabinetSettings) -> web.Response:
    """The problem document for a refused stream; a cap refusal says when to try again."""
    response = problem(error, language)
    if error.code in ("CLIENT_TOO_MANY_STREAMS", "GATEWAY_STREAMS_FULL"):
        response.headers["Retry-After"] = str(settings.retry_after_seconds)
    return response


async def serve(request: web.Request, hub: EventHub, stream: Stream) -> web.StreamResponse:
    """Write ``stream`` to the page as server-sent events until it ends, the page goes away or the page
    stops reading (a write waiting two keep-alive intervals); the stream's place is freed in every case."""
    keep_alive = hub.settings.keep_alive_seconds
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    try:
        await response.prepare(request)
        await response.write(f"retry: {STREAM_RETRY_MS}\n\n".encode())
        heard = False
        while request.transport is not None and not request.transport.is_closing():
            try:
                async with asyncio.timeout(keep_alive):
                    notice = await stream.queue.get()
            except TimeoutError:
                chunk = b": keep-alive\n\n"
            else:
                if notice.kind is Kind.END:
                    break
                chunk = _chunk(notice, heard)
                heard = heard or notice.kind is Kind.LISTENING
            async with asyncio.timeout(2 * keep_alive):
                await response.write(chunk)
    except (ConnectionResetError, TimeoutError):  # the page went away, or stopped reading
        pass
    finally:
        hub.close(stream)
    return response


def _chunk(notice: Notice, heard: bool) -> bytes:
    if notice.kind is Kind.LISTENING:
        return b"event: resync\ndata: {}\n\n" if heard else b"event: connected\ndata: {}\n\n"
    lines = "".join(f"data: {line}\n" for line in notice.data.splitlines() or [""])
    return f"event: application\n{lines}\n".encode()
