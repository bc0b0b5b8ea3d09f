"""A correct sender's latency while clients flood the gateway with wrong passwords (measured, never asserted).

    .venv/bin/python benchmarks/bench_auth_flood.py [--clients 8] [--requests 2000]

The gateway runs in a process of its own on an embedded redis-server. Each flooding client sends
``portal:wrong`` without pause from its own loopback address (127.0.0.2, ...), so the per-address throttle
sees distinct clients. Measured from 127.0.0.1: the correct portal's authenticated request
(``GET /api/v1/services/allowed``) and ``/health``, as p50/p99/max, in three runs: no flood; a flood with
the default ``[auth]`` throttle (wrong passwords are soon refused with 429, no scrypt); and a flood with
the throttle lifted, so every wrong password costs a scrypt in the bounded pool of worker threads.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from gateway.shell.redis_embedded import EmbeddedRedis
from mocks.pki import generate_pki
from tests.helpers import PORTAL, PORTAL_PASSWORD, free_port

# The gateway process: the test system's settings, revocation off, this run's [auth].
CHILD = """
import asyncio, json, sys
from dataclasses import replace
from pathlib import Path
from gateway.config import AuthSettings, RedisSettings
from gateway.shell.app import create_app
from gateway.shell.serve import start_site, wait_for_stop
from mocks.pki import load_pki
from tests.helpers import make_settings

state, redis_url, port, auth = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
settings = make_settings(state, load_pki(state / "pki"), port=port, library_url="http://127.0.0.1:9")
settings = replace(settings, auth=AuthSettings(**auth), redis=RedisSettings(key_prefix=sys.argv[5]))

async def main():
    runner = await start_site(create_app(settings, redis_url=redis_url), "127.0.0.1", port)
    await wait_for_stop()
    await runner.cleanup()

asyncio.run(main())
"""


def summary(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"  {label:<34} p50 {statistics.median(ordered) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   "
          f"max {ordered[-1] * 1000:7.1f} ms   (n={len(ordered)})")


async def measure(url: str, clients: int, requests: int) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth(PORTAL, PORTAL_PASSWORD)}
    stop = asyncio.Event()
    flood_answers: collections.Counter[int] = collections.Counter()

    async def flood(n: int) -> None:
        connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{n + 2}", 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            while not stop.is_set():
                wrong = {"Authorization": aiohttp.encode_basic_auth(PORTAL, f"wrong-{n}")}
                async with session.get(f"{url}/api/v1/services/allowed", headers=wrong) as answer:
                    flood_answers[answer.status] += 1

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v1/services/allowed", headers=auth) as warm:
            assert warm.status == 200, await warm.text()
        tasks = [asyncio.create_task(flood(n)) for n in range(clients)]
        await asyncio.sleep(0.5 if clients else 0)  # let the flood build up
        correct, health = [], []
        for _ in range(requests):
            start = time.perf_counter()
            async with session.get(f"{url}/api/v1/services/allowed", headers=auth) as answer:
                await answer.read()
                assert answer.status == 200, answer.status
            correct.append(time.perf_counter() - start)
            start = time.perf_counter()
            async with session.get(f"{url}/health") as answer:
                await answer.read()
            health.append(time.perf_counter() - start)
        stop.set()
        await asyncio.gather(*tasks)
    summary("correct sender (services/allowed)", correct)
    summary("/health", health)
    if clients:
        print(f"  flood answers: {dict(sorted(flood_answers.items()))}")


async def run(state: Path, redis_url: str, clients: int, requests: int) -> None:
    runs = [("no flood", {}, 0),
            (f"{clients} clients flooding, default [auth]", {}, clients),
            (f"{clients} clients flooding, throttle lifted (every attempt a scrypt)",
             {"address_failures": 10**9, "sender_failures": 10**9}, clients)]
    for number, (label, auth, flooders) in enumerate(runs):
        port = free_port()
        gateway = subprocess.Popen([sys.executable, "-c", CHILD, str(state), redis_url, str(port),
                                    json.dumps(auth), f"bench{number}"], cwd=Path(__file__).resolve().parents[1])
        try:
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as session:
                for _ in range(300):
                    try:
                        async with session.get(f"{url}/health") as answer:
                            if answer.status == 200:
                                break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.1)
            print(label)
            await measure(url, flooders, requests)
        finally:
            gateway.terminate()
            gateway.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        generate_pki(state / "pki")
        with EmbeddedRedis(state / "redis") as redis:
            asyncio.run(run(state, redis.url, args.clients, args.requests))


if __name__ == "__main__":
    main()
