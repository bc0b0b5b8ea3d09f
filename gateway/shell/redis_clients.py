"""The process's Redis clients, for one server, a Redis Cluster or a Sentinel-managed primary (``[redis]``).

Everything in the gateway is typed against :class:`redis.asyncio.Redis`. A cluster client
(:class:`redis.asyncio.RedisCluster`) offers the same command API and is handed out under that type; what
differs is that a MULTI, a script or a multi-key command must keep to the keys of one hash tag (one slot),
which every key scheme of the gateway does (docs/storage.md).

Pools: a single server or a Sentinel primary gets a *blocking* pool (a command that finds every connection
busy waits up to ``pool_timeout_seconds``). redis-py's cluster client keeps a pool per node that raises at once
when full; each node's pool is as large as the single server's would be, and the in-flight bound keeps the
admitted work below it. Every connection writes big values in slices (:mod:`gateway.shell.paced_writes`).
"""

from __future__ import annotations

import os
from typing import Any, cast
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff

from gateway.config import Settings
from gateway.shell.paced_writes import PacedSentinelConnection, pace_cluster, paced_class

CLUSTER_ENV = "REDIS_CLUSTER"
"Set to 1/true/yes (beside REDIS_URL) to treat the URL as a node of a Redis Cluster, as ``[redis] cluster`` does."


def cluster_mode(settings: Settings) -> bool:
    """``[redis] cluster``, or the environment switch ``REDIS_CLUSTER``."""
    return settings.redis.cluster or os.environ.get(CLUSTER_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def uses_sentinel(settings: Settings) -> bool:
    return bool(settings.redis.sentinel_urls)


def redis_client(url: str, settings: Settings, *, socket_timeout: float, **options: Any) -> Redis:
    """A client with its own pool sized from the configuration (``[redis] max_connections``).

    Few, quick retries: a blip is ridden out, an outage is reported at once (503, Retry-After). On a cluster,
    redis-py also follows MOVED/ASK and refreshes the topology after a failover.
    """
    size = settings.redis.pool_size(settings.limits, settings.delivery)
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)
    if cluster_mode(settings):
        options.pop("health_check_interval", None)  # per-node connections are checked on use
        client = pace_cluster(RedisCluster.from_url(url, max_connections=size, socket_timeout=socket_timeout,
                                                    socket_connect_timeout=2, retry=retry, **options))
        return cast(Redis, client)  # same command API; multi-key work keeps to one slot (docs/storage.md)
    if uses_sentinel(settings):
        return _sentinel_primary(settings, max_connections=size, socket_timeout=socket_timeout, retry=retry,
                                 connection_class=PacedSentinelConnection, **options)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=size, timeout=settings.redis.pool_timeout_seconds, socket_timeout=socket_timeout,
        socket_connect_timeout=2, retry=retry, **options)
    pool.connection_class = paced_class(url)  # after: from_url sets the URL scheme's class over a passed one
    return Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool's connections


def events_client(url: str, settings: Settings) -> Redis:
    """The cabinet event hub's own client: one connection (its pool is the subscription), no retries (the
    hub resubscribes and tells pages to resync), named so an operator sees it in ``CLIENT LIST``.

    On a cluster, classic pub/sub reaches every node, so the hub listens on one (redis-py picks it); when that
    node dies, the next subscription goes to a live one."""
    name = f"{settings.redis.key_prefix}-cabinet-events"
    options: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 10, "socket_keepalive": True,
                               "client_name": name}
    if cluster_mode(settings):
        return cast(Redis, RedisCluster.from_url(url, max_connections=2, retry=Retry(NoBackoff(), 1), **options))
    if uses_sentinel(settings):
        return _sentinel_primary(settings, max_connections=1, retry=Retry(NoBackoff(), 0), **options)
    return Redis.from_url(url, max_connections=1, retry=Retry(NoBackoff(), 0), **options)


def sentinel_addresses(urls: tuple[str, ...]) -> list[tuple[str, int]]:
    """``redis://host:port`` of each Sentinel as (host, port); the port defaults to Sentinel's 26379."""
    addresses = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(f"not a Sentinel address (redis://host:port): {url!r}")
        addresses.append((parts.hostname, parts.port or 26379))
    return addresses


def _sentinel_primary(settings: Settings, *, max_connections: int, **options: Any) -> Redis:
    """The current primary of ``sentinel_master``, as the Sentinels say; after a failover the pool asks again."""
    master = settings.redis.sentinel_master
    assert master, "checked at configuration load: sentinel_urls need sentinel_master"
    sentinel = Sentinel(sentinel_addresses(settings.redis.sentinel_urls), socket_timeout=2,  # type: ignore[no-untyped-call]
                        socket_connect_timeout=2)
    primary: Redis = sentinel.master_for(master, redis_class=Redis, connection_pool_class=SentinelConnectionPool,
                                         max_connections=max_connections, **options)
    return primary


def describe(url: str, settings: Settings) -> str:
    """Where the gateway's state lives, for banners and logs (never a password)."""
    if uses_sentinel(settings):
        return f"Sentinel primary {settings.redis.sentinel_master!r} via {len(settings.redis.sentinel_urls)} sentinels"
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port}" if parts.hostname else url
    return f"Redis Cluster (seed {where})" if cluster_mode(settings) else f"Redis {where}"
