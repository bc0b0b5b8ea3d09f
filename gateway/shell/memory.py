"""`egov-gateway redis-memory`: Redis memory per kind of key, and what the retention would free now.

Keys are walked with SCAN (on a cluster, redis-py's scan_iter walks every primary) for at most ``--seconds``;
``MEMORY USAGE`` is asked of up to ``--samples`` keys of each kind and the kind's total estimated from their
mean. A walk cut short by the time limit says so and how far it got (``DBSIZE``). Exit codes: 0 measured,
2 no Redis to ask.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from gateway.config import Settings, load_settings
from gateway.config.retention import RetentionSettings
from gateway.lifecycle.retention import FinishedIndex
from gateway.lifecycle.store import ApplicationStore
from gateway.messagelog.commands import REDIS_URL_FILE

_ID = re.compile(r"\{+[^}]*\}+")
_NUMBERS = re.compile(r"(?<=:)(\d{6,}|[0-9a-fA-F-]{16,})(?=:|$)")


@dataclass
class Kind:
    """What was seen of one kind of key."""

    keys: int = 0
    "Keys of this kind found."
    sampled: int = 0
    "How many of them MEMORY USAGE was asked of."
    sampled_bytes: int = 0
    "Their bytes in all."

    @property
    def estimated_bytes(self) -> int:
        return round(self.sampled_bytes / self.sampled * self.keys) if self.sampled else 0


@dataclass
class MemoryReport:
    """One measurement: per kind, how complete the walk was, and what the retention would free."""

    kinds: dict[str, Kind] = field(default_factory=dict)
    "Per kind of key (ids replaced by placeholders)."
    scanned: int = 0
    "Keys walked."
    dbsize: int = 0
    "Keys in Redis (every primary's, on a cluster)."
    complete: bool = True
    "False when the time limit cut the walk short."
    finished: int = 0
    "Applications in the finished index."
    due: int = 0
    "Of those, final for longer than the retention: the next sweeps archive them."
    due_bytes: int = 0
    "Estimated bytes their record, status and history keys take (cabinet entries and claims come on top)."


def kind_of(key: str, prefix: str) -> str:
    """A key's kind: the gateway's key scheme with the variable parts named (``egov:app:{id}:history``)."""
    if not key.startswith(prefix + ":"):
        return "(other keys)"
    rest = key[len(prefix) + 1:]
    head, _, tail = rest.partition(":")
    if head == "cabinet":
        parts = tail.split(":")
        shape = {"by": ":by:<sender>", "msg": ":msg:<sender>", "indexed": ":indexed"}
        return f"{prefix}:cabinet:<owner>" + (shape.get(parts[1], ":…") if len(parts) > 1 else "")
    if head == "msg":
        return f"{prefix}:msg:<sender>:<messageId>"
    named = _NUMBERS.sub("<n>", _ID.sub("{id}", rest))
    return f"{prefix}:" + ":".join(named.split(":")[:3])


async def measure(redis: Redis, prefix: str, retention: RetentionSettings, *, seconds: float = 10.0,
                  samples: int = 100, clock: Any = time.monotonic) -> MemoryReport:
    """Walk the keys for at most ``seconds`` and sample their memory (see the module docstring)."""
    report = MemoryReport(dbsize=int(await redis.dbsize()))
    deadline = clock() + seconds
    batch: list[tuple[str, Kind]] = []
    async for raw in redis.scan_iter(count=1000):
        key = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        kind = report.kinds.setdefault(kind_of(key, prefix), Kind())
        kind.keys += 1
        report.scanned += 1
        if kind.sampled + sum(1 for _, k in batch if k is kind) < samples:
            batch.append((key, kind))
        if len(batch) >= 200:
            await _sample(redis, batch)
            batch = []
        if clock() > deadline:
            report.complete = False
            break
    await _sample(redis, batch)
    await _retention(redis, prefix, retention, report)
    return report


async def _sample(redis: Redis, batch: list[tuple[str, Kind]]) -> None:
    if not batch:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for key, _ in batch:
            pipe.memory_usage(key)
        sizes = await pipe.execute()
    for (_, kind), size in zip(batch, sizes, strict=True):
        if size is not None:  # the key went away meanwhile
            kind.sampled += 1
            kind.sampled_bytes += int(size)


async def _retention(redis: Redis, prefix: str, retention: RetentionSettings, report: MemoryReport) -> None:
    index, store = FinishedIndex(redis, prefix), ApplicationStore(redis, prefix)
    report.finished = int(await redis.zcard(index.key))
    report.due = await index.count_due(time.time() - retention.finished_seconds)
    if not report.due:
        return
    sample = [app_id for app_id, _ in await index.due(time.time() - retention.finished_seconds, 50)]
    per_app = []
    for app_id in sample:
        keys = store.own_keys(app_id)
        sizes = [await redis.memory_usage(key) for key in keys]
        per_app.append(sum(int(size or 0) for size in sizes))
    report.due_bytes = round(sum(per_app) / len(per_app) * report.due) if per_app else 0


def render(report: MemoryReport, retention: RetentionSettings) -> str:
    """The report as an operator reads it: kinds by estimated bytes, largest first."""
    lines = [f"{'kind of key':<48} {'keys':>10} {'sampled':>8} {'bytes/key':>10} {'estimated':>11}"]
    total = 0
    for name, kind in sorted(report.kinds.items(), key=lambda item: -item[1].estimated_bytes):
        mean = kind.sampled_bytes // kind.sampled if kind.sampled else 0
        total += kind.estimated_bytes
        lines.append(f"{name:<48} {kind.keys:>10} {kind.sampled:>8} {mean:>10} {_size(kind.estimated_bytes):>11}")
    lines.append(f"{'all kinds':<48} {report.scanned:>10} {'':>8} {'':>10} {_size(total):>11}")
    if not report.complete:
        lines.append(f"partial: the time limit stopped the walk after {report.scanned} of {report.dbsize} keys")
    days = retention.finished_seconds / 86_400
    lines.append(f"retention ({days:g} days after the final state): {report.finished} finished applications "
                 f"indexed, {report.due} due now, freeing about {_size(report.due_bytes)} "
                 "(record, status, history; their cabinet entries and messageId claims on top)")
    return "\n".join(lines)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], default_state_dir: Path) -> None:
    cmd = commands.add_parser("redis-memory", help="Redis memory per kind of key, and what retention would free now")
    cmd.add_argument("--config", type=Path, help="the gateway's configuration (Redis, key prefix, retention)")
    cmd.add_argument("--state-dir", type=Path, default=default_state_dir,
                     help="without --config: the demo's state dir (its embedded Redis)")
    cmd.add_argument("--redis-url", default=None, help="default: $REDIS_URL, --config's redis.url, else the demo's")
    cmd.add_argument("--key-prefix", default=None, help="the gateway's [redis] key_prefix (default: --config's, "
                                                        "else egov)")
    cmd.add_argument("--cluster", action="store_true", help="the URL is a Redis Cluster node (default: "
                                                           "--config's redis.cluster, else $REDIS_CLUSTER)")
    cmd.add_argument("--seconds", type=float, default=10.0, help="longest walk over the keys (default 10)")
    cmd.add_argument("--samples", type=int, default=100, help="MEMORY USAGE calls per kind of key (default 100)")


def run(args: argparse.Namespace) -> int:
    settings: Settings | None = load_settings(args.config) if args.config else None
    url = args.redis_url or os.environ.get("REDIS_URL") or (settings.redis.url if settings else None)
    noted = args.state_dir / REDIS_URL_FILE
    if url is None and settings is None and noted.is_file():
        url = noted.read_text().strip()
    if not url:
        print("error: no Redis to ask: give --redis-url, --config, or --state-dir of a running demo", file=sys.stderr)
        return 2
    prefix = args.key_prefix or (settings.redis.key_prefix if settings else "egov")
    retention = settings.retention if settings else RetentionSettings()
    cluster = args.cluster or bool(getattr(settings.redis, "cluster", False) if settings else False) or \
        os.environ.get("REDIS_CLUSTER", "").lower() in ("1", "true")
    try:
        report = asyncio.run(_measure(url, cluster, prefix, retention, args.seconds, max(1, args.samples)))
    except RedisError as exc:
        print(f"error: Redis at {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(render(report, retention))
    return 0


async def _measure(url: str, cluster: bool, prefix: str, retention: RetentionSettings, seconds: float,
                   samples: int) -> MemoryReport:
    # A RedisCluster has the same command API (multi-key commands stay within one slot here).
    redis = cast(Redis, RedisCluster.from_url(url)) if cluster else Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=10)
    try:
        return await measure(redis, prefix, retention, seconds=seconds, samples=samples)
    finally:
        await redis.aclose()
