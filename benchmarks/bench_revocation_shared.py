"""One revocation check answered three ways: by the OCSP responder, by the shared cache in Redis, from memory
(measured, never asserted).

    .venv/bin/python benchmarks/bench_revocation_shared.py [--rounds 300]

A check of one certificate against its issuer (RSA: aigerim's SIGN certificate under the NCA test CA; GOST:
kitap-signer's GOST certificate under the GOST NCA) by :class:`signing.revocation.RevocationChecker`:

- *network*: a new checker each round (empty memory, no shared store) asks the mock responder on loopback, in
  this process; its time includes the responder's signing, not a real WAN round trip to NCA; *with a shared
  miss*: the same with the store, whose entry is deleted before each round (a GET that finds nothing, then the
  SET of the answer; the DEL's own time is taken off);
- *shared*: a new checker each round with the gateway's Redis store (``RedisSharedAnswers``, a local embedded
  redis-server) finds the answer another checker stored, and checks it as a fresh one (signature, CertID,
  freshness) before using it;
- *memory*: the same checker again (two dict lookups).

Also printed: the size of the stored response and Redis's ``MEMORY USAGE`` of its key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from cryptography import x509
from redis.asyncio import Redis

from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.revocation_cache import RedisSharedAnswers
from mocks.pki import TestPki, generate_pki
from mocks.pki.revocation import run_revocation
from signing.revocation import RevocationChecker, RevocationSettings
from signing.revocation_fields import key_hash
from tests.helpers import free_port


async def per_round_ms(rounds: int, once: Callable[[], Awaitable[object]]) -> float:
    await once()  # warm: connections, first-time imports
    started = time.perf_counter()
    for _ in range(rounds):
        await once()
    return (time.perf_counter() - started) * 1000 / rounds


def pairs(pki: TestPki) -> dict[str, tuple[x509.Certificate, x509.Certificate]]:
    rsa = (pki.person("aigerim").sign.load_certificate(), pki.authorities["nca"].load_certificate())
    gost_files = pki.person("kitap-signer").gost_sign
    found = {"RSA": rsa}
    if gost_files is not None:
        found["GOST"] = (gost_files.load_certificate(), pki.authorities["gost-nca"].load_certificate())
    return found


async def measure_pair(name: str, leaf: x509.Certificate, issuer: x509.Certificate, settings: RevocationSettings,
                       http: aiohttp.ClientSession, redis: Redis, rounds: int) -> None:
    store = RedisSharedAnswers(redis, "bench")
    key = store.key(f"{key_hash(issuer).hex()}:{leaf.serial_number:x}")
    network = await per_round_ms(rounds, lambda: RevocationChecker(settings, http).check(leaf, issuer))

    async def miss() -> None:  # the shared cache asked in vain, then the answer stored
        await redis.delete(key)
        await RevocationChecker(settings, http, shared=store).check(leaf, issuer)

    missed = await per_round_ms(rounds, miss) - await per_round_ms(rounds, lambda: redis.delete(key))
    await RevocationChecker(settings, http, shared=store).check(leaf, issuer)  # stores the answer
    shared = await per_round_ms(rounds, lambda: RevocationChecker(settings, http, shared=store).check(leaf, issuer))
    warm = RevocationChecker(settings, http)
    memory = await per_round_ms(rounds * 10, lambda: warm.check(leaf, issuer))
    der = await redis.get(key) or b""
    usage = await redis.memory_usage(key)
    print(f"{name}: network {network:.2f} ms (with a shared miss and the store {missed:.2f} ms), "
          f"shared {shared:.3f} ms, memory {memory * 1000:.1f} us per check ({rounds} rounds); "
          f"stored response {len(der)} bytes, Redis MEMORY USAGE {usage} B")


async def measure(pki: TestPki, redis_url: str, rounds: int) -> None:
    port = free_port()
    runner = await run_revocation(pki, port=port)
    redis = Redis.from_url(redis_url)
    settings = RevocationSettings(ocsp_url=f"http://127.0.0.1:{port}/ocsp")
    try:
        async with aiohttp.ClientSession() as http:
            for name, (leaf, issuer) in pairs(pki).items():
                await measure_pair(name, leaf, issuer, settings, http, redis, rounds)
    finally:
        await redis.aclose()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as directory:
        pki = generate_pki(Path(directory) / "pki")
        with EmbeddedRedis(Path(directory) / "redis") as server:
            asyncio.run(measure(pki, server.url, rounds))


if __name__ == "__main__":
    main()
