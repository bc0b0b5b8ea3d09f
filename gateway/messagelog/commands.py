"""`egov-gateway log verify` and `egov-gateway log show`: the message log read back from the archive and Redis.

Exit codes: 0 everything holds (verify) / records found (show); 1 a break was found (verify) / nothing is logged
for that messageId (show); 2 unusable input (no archive, no trust, a bad date or configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from gateway.config import ConfigError, Settings, load_settings
from gateway.messagelog import tsp
from gateway.messagelog.archive import Seal, read_lines, segment_files
from gateway.messagelog.journal import LogKeys
from gateway.messagelog.verify import Walk, check_tail, verify_archive
from signing.trust import TrustStore

TrustLoader = Callable[[Path], TrustStore]
"Reads ``<state dir>/pki/trust.toml`` (the shell's, as `egov-gateway verify` uses it)."
REDIS_URL_FILE = Path("redis") / "url"
REDIS_CLUSTER_FILE = Path("redis") / "cluster"
"Present when the URL beside it names a node of a Redis Cluster (``demo --redis-cluster``)."
"Under the state dir: where the gateway notes its embedded Redis's URL, for these commands."


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], default_state_dir: Path) -> None:
    log_cmd = commands.add_parser("log", help="verify the message log, or show what it holds for one message")
    actions = log_cmd.add_subparsers(dest="log_command", required=True)
    for name, text in (("verify", "check every hash link, seal signature and timestamp; exit 0 only if all hold"),
                       ("show", "print the records of one messageId (and the cabinet reads that showed it) with the "
                               "proof that they were sealed")):
        action = actions.add_parser(name, help=text)
        action.add_argument("directory", nargs="?", type=Path, default=None,
                            help="the archive (default: [messagelog] archive_dir of --config, else "
                                 "STATE_DIR/messagelog)")
        action.add_argument("--config", type=Path, help="the gateway's configuration (archive, trust, Redis)")
        action.add_argument("--state-dir", type=Path, default=default_state_dir,
                            help="without --config: the demo's state dir (its PKI's trust.toml, its Redis)")
        action.add_argument("--redis-url", default=None, help="Redis holding the live tail (default: $REDIS_URL, "
                                                              "--config's redis.url, else the demo's)")
        action.add_argument("--key-prefix", default=None, help="the gateway's [redis] key_prefix (default: "
                                                                "--config's, else egov)")
        action.add_argument("--no-redis", action="store_true", help="check the archive only")
    verify = actions.choices["verify"]
    verify.add_argument("--from", dest="since", metavar="DATE", default=None,
                        help="only segments sealed from DATE (ISO 8601) on")
    verify.add_argument("--to", dest="until", metavar="DATE", default=None,
                        help="only up to the segment holding DATE's records")
    actions.choices["show"].add_argument("--message-id", required=True)


@dataclass(frozen=True)
class _Where:
    archive: Path
    trust: TrustStore
    redis_url: str | None
    prefix: str
    cluster: bool = False
    "The URL names a node of a Redis Cluster (``[redis] cluster``, REDIS_CLUSTER, or the demo's marker file)."

    def client(self) -> Redis:
        options: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 10}
        if self.cluster:  # the log's keys share one hash tag: one slot, same commands
            return cast(Redis, RedisCluster.from_url(self.redis_url or "", **options))
        return Redis.from_url(self.redis_url or "", **options)


def _where(args: argparse.Namespace, load_trust: TrustLoader) -> _Where:
    state = args.state_dir.resolve()
    settings: Settings | None = load_settings(args.config) if args.config else None
    if settings is not None:
        trust = TrustStore.from_files(settings.trust.anchors, settings.trust.intermediates)
        archive = settings.messagelog.archive(settings.state_dir)
        url, prefix = settings.redis.url, settings.redis.key_prefix
        cluster = settings.redis.cluster
    else:
        trust_file = state / "pki" / "trust.toml"
        if not trust_file.exists():
            raise ConfigError(f"{trust_file} does not exist: give --config FILE (its [trust] checks the seals), "
                              "or --state-dir of the demo")
        trust, archive, url, prefix = load_trust(trust_file), state / "messagelog", None, "egov"
        noted = state / REDIS_URL_FILE
        if noted.exists():
            url = noted.read_text(encoding="utf-8").strip() or None
        cluster = (state / REDIS_CLUSTER_FILE).exists()
    cluster = cluster or os.environ.get("REDIS_CLUSTER", "").strip().lower() in ("1", "true", "yes", "on")
    url = None if args.no_redis else (args.redis_url or os.environ.get("REDIS_URL") or url)
    return _Where(args.directory or archive, trust, url, args.key_prefix or prefix, cluster)


def run(args: argparse.Namespace, load_trust: TrustLoader) -> int:
    try:
        where = _where(args, load_trust)
        if not where.archive.is_dir() and where.redis_url is None:
            raise ConfigError(f"{where.archive} is not a directory: no message log archive there")
        if args.log_command == "verify":
            return _verify(args, where)
        return _show(args, where)
    except ValueError as exc:  # ConfigError, bad dates
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _date(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--from/--to: {text!r} is not an ISO 8601 date (e.g. 2026-12-01 or "
                          "2026-12-01T10:00+05:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _verify(args: argparse.Namespace, where: _Where) -> int:
    walk = verify_archive(where.archive, where.trust, since=_date(args.since), until=_date(args.until))
    if args.until:  # the archive's end was not walked: Redis's last seal is not to be compared with it
        tail_note = "not checked (--to)"
    elif where.redis_url:
        tail_note = asyncio.run(_check_live_tail(walk, where))
    else:
        tail_note = "not checked (no Redis)"
    print(f"archive {where.archive}: {walk.segments} segment(s), {walk.records} record(s) checked"
          + (f", {walk.skipped} outside --from/--to" if walk.skipped else ""))
    print(f"live tail in Redis: {tail_note}")
    if walk.ok:
        print(f"OK: every hash link, seal signature and timestamp holds (last sealed record {walk.seq})")
        return 0
    print(f"BROKEN: first break at {walk.problems[0]}")
    for problem in walk.problems[1:20]:
        print(f"  also: {problem}")
    if len(walk.problems) > 20:
        print(f"  ... and {len(walk.problems) - 20} more")
    return 1


async def _check_live_tail(walk: Walk, where: _Where) -> str:
    keys = LogKeys.under(where.prefix, cluster=where.cluster)
    redis = where.client()
    try:
        sealed = {_text(k): _text(v) for k, v in (await redis.hgetall(keys.sealed)).items()}
        head = int(await redis.get(keys.seq) or 0)
        seqs = [int(k) for k in await redis.hkeys(keys.records)]
    except (RedisError, OSError) as exc:
        return f"not checked (Redis unreachable: {type(exc).__name__})"
    finally:
        await redis.aclose()
    check_tail(walk, sealed, head, seqs)
    return f"{walk.tail} unsealed record(s), up to record {head}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Matches:
    """The records of one messageId, and the cabinet reads that showed its applications (records come in
    sequence order, so the request naming a session id comes before any read of it)."""

    def __init__(self, message_id: str) -> None:
        self.message_id, self.sessions = message_id, set[str]()

    def __call__(self, line: bytes) -> dict[str, Any] | None:
        """The record of ``line`` when it is one of them (read cheaply: only lines naming them are parsed)."""
        if self.message_id.encode() not in line and not any(s.encode() in line for s in self.sessions):
            return None
        record = _parsed(line)
        if record.get("messageId") == self.message_id:
            if record.get("session"):
                self.sessions.add(str(record["session"]))
            return record
        if record.get("kind") == "cabinet-read" and self.sessions & set(str(record.get("session", "")).split()):
            return record
        return None


def _show(args: argparse.Namespace, where: _Where) -> int:
    found, matching = 0, _Matches(args.message_id)
    for path in segment_files(where.archive):
        lines = read_lines(path)
        matches = [r for r in map(matching, lines[:-1]) if r is not None]
        if not matches:
            continue
        for record in matches:
            found += 1
            print(_describe(record))
        try:
            seal = Seal.parse(lines[-1])
        except (ValueError, KeyError, TypeError):
            print(f"  in {path.name}, whose seal cannot be read: run `egov-gateway log verify`")
            continue
        stamp = _stamp_text(seal, where.trust)
        statement = seal.statement
        print(f"  sealed in {path.name}: records {statement['first']}..{statement['last']}, head {statement['head']}"
              f"\n  signed by the gateway at {statement['sealedAt']}; {stamp}"
              f"\n  (`egov-gateway log verify` checks the links from these records to that seal)")
    if where.redis_url:
        found += asyncio.run(_show_tail(matching, where))
    if not found:
        print(f"nothing logged for messageId {args.message_id!r}")
        return 1
    return 0


def _parsed(line: bytes) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _stamp_text(seal: Seal, trust: TrustStore) -> str:
    try:
        stamp = tsp.verify_token(seal.timestamp, tsp.digest_of(seal.signature), trust)
    except tsp.TimestampError as exc:
        return f"TIMESTAMP DOES NOT HOLD: {exc}"
    return f"timestamped by {stamp.tsa} at {stamp.gen_time.isoformat()} (token serial {stamp.serial})"


def _describe(record: dict[str, Any]) -> str:
    parts = ", ".join(f"{name} sha256={digest}" for name, digest in sorted(record.get("parts", {}).items()))
    note = f" ({record['note']})" if record.get("note") else ""
    bodies = " [bodies stored, encrypted]" if record.get("bodies") else ""
    return (f"record {record.get('seq', '?')}  {record.get('at')}  {record.get('kind')}  sender={record.get('sender')}"
            f"  service={record.get('service')}  session={record.get('session')}{note}\n  {parts}{bodies}")


async def _show_tail(matching: _Matches, where: _Where) -> int:
    keys = LogKeys.under(where.prefix, cluster=where.cluster)
    redis = where.client()
    try:
        stored = await redis.hgetall(keys.records)
    except (RedisError, OSError) as exc:
        print(f"(live tail not read: Redis unreachable: {type(exc).__name__})")
        return 0
    finally:
        await redis.aclose()
    found = 0
    for seq, raw in sorted(((int(k), v) for k, v in stored.items()), key=lambda item: item[0]):
        record = matching(raw if isinstance(raw, bytes) else str(raw).encode())
        if record is not None:
            record["seq"] = seq
            found += 1
            print(_describe(record) + "\n  not sealed yet (waiting in Redis for the next seal)")
    return found
