"""The sealer: one process at a time chains the waiting records, signs the head, has it timestamped, archives.

It runs in every gateway process but works only while it holds the lease (``P:mlog:sealer``, a Redis key with a
token and an expiry, renewed each round), so one process seals at a time; when that process dies the lease
expires and another takes over. Every ``check_seconds`` it looks whether ``segment_records`` records wait, or
the oldest has waited ``segment_seconds``; then it seals one segment (at most ``segment_records`` records):

1. reads the records after the last sealed one, in sequence order, and chains them (each line names the
   SHA-256 of the line before; the first, the previous segment's head);
2. signs the statement (segment, first, last, previous head, head) with the gateway's key, once per segment;
3. asks the TSA for an RFC 3161 token over SHA-256 of that signature and checks it in full (:mod:`.tsp`);
4. writes the segment file atomically (:mod:`.archive`), then, in one Lua step, records the seal in Redis and
   removes the sealed records (refused if the seal state moved under it).

A crash between 4's file and its Redis step leaves a file Redis does not know: the next round adopts it (same
first record, same previous head) instead of sealing the records again. A failure anywhere sets
``P:mlog:failing-since`` (every process sees it); the first success clears it.

The TSA is watched through these requests (no probe of its own: a TSA may count the stamps it gives): one that
fails sets ``P:mlog:tsa-failing`` (since when, how), which every process's readiness check ``tsa`` shows as a
warning; the first answer accepted clears it. Each request is counted in ``egov_tsa_requests_total``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from redis.asyncio import Redis

from gateway.config import MessageLogSettings
from gateway.messagelog import tsp
from gateway.messagelog.archive import FORMAT, Seal, last_seal, segment_path, write_segment
from gateway.messagelog.journal import LogKeys, is_cluster
from gateway.messagelog.records import GENESIS, RecordError, canonical, chain_line, sha256_hex, utc_iso
from gateway.monitor.messagelog import tsa_label
from gateway.monitor.metrics import observe_tsa
from gateway.supervise import sleep_unless, supervise
from signing import gost
from signing.gost.xmldsig_sign import GostSigningKey
from signing.signer import SigningKey
from signing.trust import TrustStore

log = logging.getLogger("egov.messagelog.sealer")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# KEYS: sealed, records, seq, pending-since, failing-since. ARGV: expected sealed seq, new seq, head, segment, at.
_COMMIT = """
local sealed = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if sealed ~= tonumber(ARGV[1]) then return redis.error_reply('the seal state moved: ' .. sealed) end
local last = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'seq', last, 'head', ARGV[3], 'segment', ARGV[4], 'at', ARGV[5])
for i = sealed + 1, last do redis.call('HDEL', KEYS[2], i) end
local head = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('DEL', KEYS[5])
if head > last then
  local nextrec = redis.call('HGET', KEYS[2], last + 1)
  local at = ARGV[5]
  if nextrec then at = cjson.decode(nextrec)['at'] end
  redis.call('SET', KEYS[4], at)
else
  redis.call('DEL', KEYS[4])
end
return last
"""


class SealError(Exception):
    """A seal could not be made (the reason is in the message); the records stay and wait."""


@dataclass(frozen=True)
class SealState:
    """The last seal as Redis holds it."""

    seq: int
    "Last sealed sequence number (0: none yet)."
    head: str
    "SHA-256 of its line (GENESIS before the first seal)."
    segment: int
    "Its segment number (0: none yet)."


def sign_statement(key: SigningKey | GostSigningKey, data: bytes) -> tuple[bytes, str]:
    if isinstance(key, GostSigningKey):  # the gateway signs with a GOST key: its curve names the hash
        curve = key.public().curve
        digest = gost.streebog512(data) if curve == gost.CURVE_512A else gost.gost94_test(data)
        return gost.sign(curve, key.private_scalar, digest), GOST_SEAL_ALGORITHMS[curve == gost.CURVE_512A]
    private = key.private_key
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(data, padding.PKCS1v15(), hashes.SHA256()), "rsa-pkcs1v15-sha256"
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(data, ec.ECDSA(hashes.SHA256())), "ecdsa-sha256"
    raise SealError(f"cannot sign with a {type(private).__name__}")  # pragma: no cover - SigningKey refuses others


GOST_SEAL_ALGORITHMS = {True: "gost2015-512-streebog512", False: "gost2004-gost94"}
"A seal's algorithm name for a GOST key, by whether it is on the 2015 512-bit curve."


class Sealer:
    """Seals the message log of one Redis prefix into ``archive_dir``."""

    def __init__(self, redis: Redis, prefix: str, settings: MessageLogSettings, *, key: SigningKey | GostSigningKey,
                 trust: TrustStore, session: aiohttp.ClientSession, archive_dir: Path) -> None:
        self.redis, self.settings, self.key, self.trust, self.session = redis, settings, key, trust, session
        self.archive_dir = archive_dir
        self.keys = LogKeys.under(prefix, cluster=is_cluster(redis))
        self.token = secrets.token_hex(16)
        self._renew = redis.register_script(_RENEW)
        self._commit = redis.register_script(_COMMIT)
        self.lease_ms = int((settings.tsa_timeout_seconds * 2 + settings.check_seconds * 3 + 10) * 1000)

    async def run(self, stop: asyncio.Event) -> None:
        """Seal whenever due until ``stop``; only the lease holder seals."""
        async def step() -> None:
            try:
                if await self._renew(keys=[self.keys.lease], args=[self.token, self.lease_ms]):
                    while await self.seal_if_due() and not stop.is_set():
                        pass  # a backlog: seal segment after segment
            finally:
                await sleep_unless(stop, self.settings.check_seconds)

        await supervise("message log sealer", step, stop)
        if await self.redis.get(self.keys.lease) == self.token.encode():
            await self.redis.delete(self.keys.lease)

    async def state(self) -> SealState:
        raw = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
               for k, v in (await self.redis.hgetall(self.keys.sealed)).items()}
        return SealState(int(raw.get("seq", 0)), raw.get("head", GENESIS), int(raw.get("segment", 0)))

    async def seal_if_due(self) -> bool:
        """Seal one segment if one is due; True when it sealed. Failures are recorded, then raised."""
        try:
            sealed = await self._seal_if_due()
        except Exception:
            await self.redis.set(self.keys.failing_since, utc_iso(), nx=True)
            raise
        return sealed

    async def _seal_if_due(self) -> bool:
        state = await self.state()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.seq)
            pipe.get(self.keys.pending_since)
            head_seq, pending = await pipe.execute()
        waiting = int(head_seq or 0) - state.seq
        if waiting <= 0:
            await self.redis.delete(self.keys.failing_since)
            return False
        since = datetime.fromisoformat(pending.decode()) if pending else datetime.now(UTC)
        age = (datetime.now(UTC) - since).total_seconds()
        if waiting < self.settings.segment_records and age < self.settings.segment_seconds:
            return False
        if await self._adopt(state):
            return True
        last = state.seq + min(waiting, self.settings.segment_records)
        await self.seal(state, last)
        return True

    async def seal(self, state: SealState, last: int) -> Path:
        """Seal records ``state.seq + 1 .. last`` as segment ``state.segment + 1``."""
        seqs = list(range(state.seq + 1, last + 1))
        stored = await self.redis.hmget(self.keys.records, [str(s) for s in seqs])
        lines, prev = [], state.head
        for seq, raw in zip(seqs, stored, strict=True):
            if raw is None:
                raise SealError(f"record {seq} is missing from Redis: the unsealed tail was tampered with")
            try:
                line = chain_line(raw.encode() if isinstance(raw, str) else raw, seq, prev)
            except RecordError as exc:
                raise SealError(str(exc)) from None
            lines.append(line)
            prev = sha256_hex(line)
        segment = state.segment + 1
        statement = {"format": FORMAT, "segment": segment, "first": seqs[0], "last": last, "count": len(seqs),
                     "prevHead": state.head, "head": prev, "sealedAt": utc_iso()}
        signature, algorithm = sign_statement(self.key, canonical(statement))
        stamp = await self._timestamp(signature)
        seal = Seal(statement, signature, algorithm, self.key.certificate.public_bytes(Encoding.DER), stamp.token)
        path = await asyncio.to_thread(write_segment, self.archive_dir, segment, lines, seal)
        await self._record(state, statement)
        log.info("sealed segment %d: records %d..%d, head %s, timestamp by %s at %s", segment, seqs[0], last,
                 prev[:16], stamp.tsa, stamp.gen_time.isoformat())
        return path

    async def _record(self, state: SealState, statement: dict[str, Any]) -> None:
        await self._commit(keys=[self.keys.sealed, self.keys.records, self.keys.seq, self.keys.pending_since,
                                 self.keys.failing_since],
                           args=[state.seq, statement["last"], statement["head"], statement["segment"],
                                 statement["sealedAt"]])

    async def _adopt(self, state: SealState) -> bool:
        """A segment file written by a sealer that died before recording it: record it now, do not seal again."""
        if not segment_path(self.archive_dir, state.segment + 1).exists():
            return False
        seal = await asyncio.to_thread(last_seal, self.archive_dir)
        statement = seal.statement if seal else {}
        if statement.get("segment") != state.segment + 1 or statement.get("first") != state.seq + 1 \
                or statement.get("prevHead") != state.head:
            raise SealError(f"{segment_path(self.archive_dir, state.segment + 1)} exists but does not continue "
                            f"the sealed chain (Redis: segment {state.segment}, record {state.seq})")
        await self._record(state, statement)
        log.warning("adopted segment %s written before a restart", statement.get("segment"))
        return True

    async def _timestamp(self, signature: bytes) -> tsp.Stamp:
        """The TSA's checked token over SHA-256 of ``signature``; the TSA's state follows the outcome."""
        digest = tsp.digest_of(signature)
        query, nonce = tsp.request_for(digest)
        url = self.settings.tsa_url or ""
        try:
            async with self.session.post(url, data=query, headers={"Content-Type": tsp.CONTENT_TYPE_QUERY},
                                         timeout=aiohttp.ClientTimeout(total=self.settings.tsa_timeout_seconds)) \
                    as response:
                if response.status != 200:
                    raise await self._tsa_failed("unavailable", f"answered HTTP {response.status}")
                body = await response.content.read(1024 * 1024)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise await self._tsa_failed("unavailable", f"cannot be reached ({type(exc).__name__})") from None
        try:
            stamp = await asyncio.to_thread(tsp.check_response, body, digest, nonce, self.trust)
        except tsp.TimestampError as exc:
            raise await self._tsa_failed("refused", f"sent an answer that was refused: {exc}") from None
        observe_tsa("ok")
        if await self.redis.delete(self.keys.tsa_failing):  # it was failing (here or in another process)
            log.info("TSA %s answers again", tsa_label(url))
        return stamp

    async def _tsa_failed(self, result: str, detail: str) -> SealError:
        """Count the failed request, note it for every process's readiness check; the error to raise."""
        observe_tsa(result)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(self.keys.tsa_failing, "since", utc_iso())
            pipe.hset(self.keys.tsa_failing, "detail", detail)
            started, _ = await pipe.execute()
        if started:  # logged once per outage; the sealer's own failure log follows every burst
            log.warning("TSA %s is failing: %s", tsa_label(self.settings.tsa_url or ""), detail)
        return SealError(f"the TSA {detail}")
