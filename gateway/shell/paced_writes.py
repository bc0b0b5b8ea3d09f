"""Redis connections that write a big argument in slices, each slice handed to the socket once the one before
it has left.

Why: on Python 3.11, asyncio's socket transport joins what ``writelines`` is given into one bytes object, and
keeps what the socket did not take at once as a slice (a copy) added to its bytearray buffer (another copy).
A 10 MB document inside a Redis command so briefly existed three more times in the gateway's memory (issue 9's
big-document goal is a peak of three times the payload in all). Slices of :data:`SLICE_BYTES` written as
memoryviews, with a drain after each, keep the extra at about one slice. Small commands are written as before:
one write, one drain.

redis-py takes the connection class from its pool (``connection_class``); :func:`paced_class` gives the paced
twin of each class it would choose from a URL (plain TCP, TLS, a Unix socket); a Sentinel-managed primary's
pool gets :class:`PacedSentinelConnection`. A Redis Cluster client takes no ``connection_class``:
:func:`pace_cluster` sets it where redis-py (5 to 8) keeps it, the options every node it discovers is built from,
and the startup nodes already built (tests/test_paced_writes.py checks the connections of a real cluster's
nodes, so an upgrade that moves it is seen).
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.sentinel import SentinelManagedConnection

SLICE_BYTES = 256 * 1024
"An argument longer than this is written in slices this long (a small command is never sliced)."


class _PacedWrites(AbstractConnection):
    """The write path of every paced class (redis-py calls it for each command when ``socket_timeout`` is set,
    as every client of the gateway's has it)."""

    async def _send_packed_command(self, command: Iterable[bytes]) -> None:
        writer = self._writer
        assert writer is not None, "redis-py connects before it writes"
        for item in command:
            if len(item) <= SLICE_BYTES:
                writer.write(item)
                continue
            whole = memoryview(item)
            for start in range(0, len(whole), SLICE_BYTES):
                writer.write(whole[start:start + SLICE_BYTES])  # a view: the transport copies what is left of it
                await writer.drain()
        await writer.drain()


class PacedConnection(_PacedWrites, Connection):
    """``redis://``"""


class PacedSSLConnection(_PacedWrites, SSLConnection):
    """``rediss://``"""


class PacedUnixConnection(_PacedWrites, UnixDomainSocketConnection):
    """``unix://``"""


class PacedSentinelConnection(_PacedWrites, SentinelManagedConnection):
    """A Sentinel-managed primary (over TCP: the gateway has no TLS setting for Sentinel)."""


_PACED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: PacedConnection, SSLConnection: PacedSSLConnection, UnixDomainSocketConnection: PacedUnixConnection,
}


def paced_class(url: str) -> type[AbstractConnection]:
    """The paced twin of the connection class redis-py would use for ``url``."""
    chosen: type[AbstractConnection] = parse_url(url).get("connection_class", Connection)
    return _PACED.get(chosen, chosen)


def pace_cluster(client: RedisCluster) -> RedisCluster:
    """``client`` with paced connections to every node, those it knows now and those it discovers later."""
    chosen = client.connection_kwargs.get("connection_class", Connection)
    paced = _PACED.get(chosen, chosen)
    client.connection_kwargs["connection_class"] = paced  # the same options NodesManager builds new nodes from
    for node in client.startup_nodes:
        node.connection_class = paced
    return client
