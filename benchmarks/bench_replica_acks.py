"""What ``[redis] min_replica_acks = 1`` costs an acknowledgement, measured (never asserted in tests).

    .venv/bin/python benchmarks/bench_replica_acks.py [--requests 600] [--concurrency 16] [--slice 50]

Real parts: a primary and its replica (the bundled redis-server, loopback, AOF on, ``appendfsync everysec``), the
library mock and two `egov-gateway serve` processes on that primary, one with ``min_replica_acks = 0`` and one with
``1`` (separate key prefixes). The load is REST reader registrations of an *async* service, so the answer is the
acknowledgement (recorded, claimed, scheduled, indexed, durable, and with 1: on the replica) and not the back-end's
work; each has a fresh messageId under one signed document. The two gateways take turns in slices of ``--slice``
requests, so a machine whose load changes during the run (other work on the cores) weighs on both alike.

Printed: acknowledgement latency p50 / p99 / mean per mode, sequential (one client) and with ``--concurrency``
clients, how many WAITs the primary ran per acknowledgement (concurrent ones share one), and the marker + WAIT
round trip alone (``ReplicaAcks.confirm`` of one key, sequential), which is the
floor of what the wait adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from lxml import etree
from redis.asyncio import Redis

from gateway.lifecycle.replicas import ReplicaAcks
from mocks.pki import generate_pki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from tests.helpers import PORTAL, PORTAL_PASSWORD, free_port
from tests.processes import GatewayProcess, PrimaryReplica, library, write_config

MODES = (0, 1)
"min_replica_acks of the two gateways."


def body_of(document: str) -> bytes:
    return json.dumps({
        "requestInfo": {"messageId": str(uuid.uuid4()), "serviceId": READER_TICKET_SERVICE,
                        "messageDate": datetime.now(UTC).isoformat(),
                        "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
        "requestData": {"data": document}}).encode()


async def slice_of(http: aiohttp.ClientSession, url: str, document: str, count: int, clients: int) -> list[float]:
    """``count`` acknowledgements from ``clients`` concurrent clients; each one's latency in seconds."""
    latencies: list[float] = []

    async def client(n: int) -> None:
        for _ in range(n):
            body = body_of(document)
            start = time.perf_counter()
            async with http.post(f"{url}/api/v1/requests", data=body,
                                 headers={"Content-Type": "application/json"}) as response:
                answer = await response.json(content_type=None)
                assert response.status == 200 and answer["applicationStatus"] == "accepted", answer
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(client(count // clients) for _ in range(clients)))
    return latencies


def waits_run(pair: PrimaryReplica) -> int:
    """WAITs the primary has run (INFO commandstats)."""
    with pair.client() as primary:
        return int(primary.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def line(label: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return (f"  {label:<26} p50 {1000 * statistics.median(ordered):7.2f} ms   p99 {1000 * p99:7.2f} ms   "
            f"mean {1000 * statistics.fmean(ordered):7.2f} ms   ({len(ordered)} requests)")


async def wait_floor(url: str, count: int) -> list[float]:
    """The marker + WAIT round trip alone, sequential: what the wait adds at the least."""
    client = Redis.from_url(url)
    acks = ReplicaAcks(client, "bench-floor", replicas=1, timeout_ms=1000)
    latencies = []
    try:
        for n in range(count):
            start = time.perf_counter()
            await acks.confirm([f"bench-floor:app:{{{n}}}"])
            latencies.append(time.perf_counter() - start)
    finally:
        await client.aclose()
    return latencies


async def main(requests: int, concurrency: int, slice_size: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="egov-bench-replicas-"))
    pki = generate_pki(work / "pki")
    document = etree.tostring(signed_application(pki.person("aigerim"), READER_TICKET_SERVICE), encoding="unicode")
    with PrimaryReplica(work / "redis") as pair:
        async with library(pki) as library_url, aiohttp.ClientSession() as http:
            gateways = {}
            for acks in MODES:
                directory = work / f"acks-{acks}"
                directory.mkdir()
                config = write_config(directory, pki, free_port(), library_url, service='mode = "async"',
                                      redis=f'key_prefix = "bench-{acks}"\nmin_replica_acks = {acks}\n'
                                            'replica_ack_timeout_ms = 1000')
                gateways[acks] = GatewayProcess(config, env={"REDIS_URL": pair.url})
            try:
                await asyncio.gather(*(gateway.up() for gateway in gateways.values()))
                print(f"primary + replica on loopback (redis-server, AOF everysec); async REST acknowledgements, "
                      f"the two gateways taking turns in slices of {slice_size}")
                for clients in (1, concurrency):
                    measured: dict[int, list[float]] = {acks: [] for acks in MODES}
                    for acks in MODES:  # warm up: connections, caches
                        await slice_of(http, gateways[acks].url, document, clients * 4, clients)
                    waits = 0
                    for _ in range(max(1, requests // slice_size)):
                        for acks in MODES:
                            before = waits_run(pair)
                            measured[acks] += await slice_of(http, gateways[acks].url, document, slice_size,
                                                             clients)
                            waits += waits_run(pair) - before if acks else 0
                    print(f"\n{clients} client{'s' if clients > 1 else ''}:")
                    for acks in MODES:
                        print(line(f"min_replica_acks = {acks}", measured[acks]))
                    extra = statistics.median(measured[1]) - statistics.median(measured[0])
                    print(f"  the wait adds {1000 * extra:+.2f} ms at the median; {waits} WAITs for "
                          f"{len(measured[1])} acknowledgements ({waits / len(measured[1]):.2f} per acknowledgement)")
            finally:
                for gateway in gateways.values():
                    gateway.stop()
        print("\nmarker + WAIT alone (ReplicaAcks.confirm, one key, sequential):")
        print(line("round trip", await wait_floor(pair.url, max(200, requests))))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600, help="acknowledgements per mode and client count")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--slice", type=int, default=48, help="requests per turn (a multiple of --concurrency)")
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.concurrency, options.slice))
