"""Scaling across cores: `egov-gateway serve --workers N`, closed loop, N = 1 and 2 (never asserted in tests).

    .venv/bin/python benchmarks/bench_workers.py [--requests 1200] [--concurrency 32]

Each N gets a fresh world (benchmarks/world.py: redis-server, OCSP responder, library and the gateway in
processes of their own). On a 2-core machine the load generator, the library, the OCSP responder and Redis
share the two cores with the workers, so the ratio printed is a floor of what two free cores give; the CPU
per request says whether a worker got cheaper or dearer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.world import LoadResult, closed_loop, gateway_world
from mocks.pki import TestPki, generate_pki


async def measure_workers(work: Path, pki: TestPki, *, requests: int, concurrency: int,
                          counts: tuple[int, ...] = (1, 2)) -> dict[int, LoadResult]:
    """A closed-loop run against a gateway of each worker count."""
    results: dict[int, LoadResult] = {}
    for workers in counts:
        async with gateway_world(work / f"workers-{workers}", pki, workers=workers) as world:
            results[workers] = await closed_loop(world, requests, concurrency)
    return results


def print_workers(results: dict[int, LoadResult], concurrency: int) -> None:
    print(f"serve --workers N, closed loop, {concurrency} clients")
    one = results[min(results)].throughput
    for workers, result in results.items():
        print(f"  {workers} worker(s): {result.throughput:6.0f}/s ({result.throughput / one:.2f}x), "
              f"p50 {1000 * result.percentile(0.5):.0f} ms, p99 {1000 * result.percentile(0.99):.0f} ms, "
              f"CPU per request {1000 * result.cpu_per_ok:.2f} ms, refused {result.refused} (503 GATEWAY_OVERLOADED), "
              f"failed {result.failed}; "
              f"{result.cores()}")


async def main(requests: int, concurrency: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="egov-bench-workers-"))
    pki = generate_pki(work / "pki")
    print_workers(await measure_workers(work, pki, requests=requests, concurrency=concurrency), concurrency)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.concurrency))
