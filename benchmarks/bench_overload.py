"""Graceful overload, measured (issue 9; never asserted in tests).

    .venv/bin/python benchmarks/bench_overload.py [--seconds 10] [--rates 0.5,1,2,4] [--concurrency 16]
                                                  [--limits 'min_in_flight = 8']

`egov-gateway serve` (one worker), the library mock and the test PKI's OCSP/CRL responder each run in a process
of their own, with an embedded redis-server (benchmarks/world.py). First the
closed-loop saturation throughput: ``--concurrency`` clients each sending REST reader registrations one after
another. Then an open-loop generator offers each rate (a multiple of saturation) for ``--seconds``: requests at
fixed intervals whatever the answers (a late generator catches up; the count is fixed), each timed from when it
was due, so a queue anywhere (the client's too) shows in the latency. Per rate: goodput (2xx), 503
GATEWAY_OVERLOADED refusals (each must carry Retry-After), other outcomes, p50/p99 of the accepted, and the
gateway's CPU (utime + stime from /proc/<pid>/stat, less its idle rate) per accepted request.

The CPU of one refusal is measured on its own: every slot of ``max_in_flight`` is held by a request whose body
never ends, so each further request is refused at the gate; the gateway's CPU over those refusals, less its idle
rate, divided by their count. The per-OK figure of a mixed run subtracts its refusals at that cost.
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
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from benchmarks.world import World, closed_loop, cpu_seconds, gateway_world
from mocks.pki import generate_pki
from mocks.portal.applicant import READER_TICKET_SERVICE
from tests.helpers import PORTAL, PORTAL_PASSWORD

MAX_IN_FLIGHT = 256
"The gateway's default [limits] max_in_flight: the slots the refusal-only run holds."


@dataclass
class Run:
    """What one open-loop run saw."""

    offered: float
    "Requests per second asked for."
    sent: int = 0
    "Requests sent."
    send_seconds: float = 0.0
    "From the first request due to the last one sent."
    ok: list[float] = field(default_factory=list)
    "Latencies (seconds, from when each was due) of the 2xx answers."
    refused: int = 0
    "503 GATEWAY_OVERLOADED answers with Retry-After."
    other: Counter[str] = field(default_factory=Counter)
    "Every other outcome, by status and code (or exception)."
    gateway_cpu: float = 0.0
    "Gateway CPU seconds over the run, its idle rate subtracted."
    wall: float = 0.0
    "Seconds from the first request due to the last answer."
    client_cpu: float = 0.0
    "CPU seconds of this process (the load generator) over the run."


class Requests:
    """REST reader registrations, each with a new messageId, cheap to make (one template, two fields filled in)."""

    def __init__(self, base_url: str, raw: bytes) -> None:
        self.url = f"{base_url}/api/v1/requests"
        envelope = {"requestInfo": {"messageId": "@ID@", "serviceId": READER_TICKET_SERVICE, "messageDate": "@DATE@",
                                    "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
                    "requestData": {"data": raw.decode()}}
        self.template = json.dumps(envelope)

    def body(self) -> bytes:
        return (self.template.replace("@ID@", str(uuid.uuid4()), 1)
                .replace("@DATE@", datetime.now(UTC).isoformat(), 1).encode())

    async def one(self, session: aiohttp.ClientSession, due: float, run: Run) -> None:
        try:
            async with session.post(self.url, data=self.body(),
                                    headers={"Content-Type": "application/json"}) as response:
                answer = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            run.other[type(exc).__name__] += 1
            return
        if 200 <= status < 300:
            run.ok.append(time.perf_counter() - due)
        elif status == 503 and b'"GATEWAY_OVERLOADED"' in answer and retry_after:
            run.refused += 1
        else:
            code = answer.split(b'"code": "', 1)[-1].split(b'"', 1)[0].decode(errors="replace")[:40]
            run.other[f"{status} {code}"] += 1


async def open_loop(requests: Requests, rate: float, seconds: float, *, timeout: float = 15.0) -> Run:
    """``rate × seconds`` requests, one due every ``1/rate`` seconds whatever the answers."""
    run, count, interval = Run(offered=rate), max(1, round(rate * seconds)), 1.0 / rate
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(count):
            due = start + i * interval
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(requests.one(session, due, run)))
        run.sent, run.send_seconds = count, time.perf_counter() - start
        await asyncio.gather(*tasks)
        run.wall = time.perf_counter() - start
    return run


async def idle_rate(pid: int, seconds: float = 2.0) -> float:
    """The gateway's CPU seconds per second with nothing to do (its background loops and the delay probe)."""
    cpu = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / seconds


async def measured(pid: int, idle: float, requests: Requests, rate: float, seconds: float) -> Run:
    cpu, own = cpu_seconds(pid), time.process_time()
    run = await open_loop(requests, rate, seconds)
    run.gateway_cpu = max(0.0, cpu_seconds(pid) - cpu - idle * run.wall)
    run.client_cpu = time.process_time() - own
    return run


async def _held(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/v1/requests HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n{")
    await writer.drain()
    return reader, writer


async def _answered(reader: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), 0.001)
    except TimeoutError:
        return False
    return True


async def hold_slots(port: int, count: int) -> list[asyncio.StreamWriter]:
    """``count`` requests whose body never ends, each holding an in-flight slot while it waits for the rest; one
    that was answered instead (refused: the loop was late while they came in) is replaced until none is."""
    held = [await _held(port) for _ in range(count)]
    for _ in range(50):
        await asyncio.sleep(0.2)
        answered = [i for i, (reader, _) in enumerate(held) if await _answered(reader)]
        if not answered:
            break
        for i in answered:
            held[i][1].close()
            held[i] = await _held(port)
    return [writer for _, writer in held]


async def refusal_cpu(pid: int, port: int, idle: float, requests: Requests, rate: float, seconds: float) -> Run:
    """A run in which every request is refused at the gate (all ``max_in_flight`` slots held)."""
    writers = await hold_slots(port, MAX_IN_FLIGHT)
    try:
        for _ in range(100):  # until the gateway has taken them all
            probe = await open_loop(requests, 100, 0.05)
            if probe.refused == probe.sent:
                break
            await asyncio.sleep(0.1)
        return await measured(pid, idle, requests, rate, seconds)
    finally:
        for writer in writers:
            writer.close()


def row(run: Run, saturation: float, refusal_ms: float | None) -> dict[str, Any]:
    ok, latencies = len(run.ok), sorted(run.ok)
    goodput = ok / run.wall if run.wall else 0.0
    refused_cpu = run.refused * (refusal_ms or 0.0) / 1000
    return {
        "offered_per_s": run.offered, "sent": run.sent, "sent_per_s": run.sent / run.send_seconds,
        "ok": ok, "goodput_per_s": goodput, "goodput_pct_of_saturation": 100 * goodput / saturation,
        "refused_503": run.refused, "other": dict(run.other),
        "p50_ms": 1000 * statistics.median(latencies) if ok else None,
        "p99_ms": 1000 * latencies[max(0, int(ok * 0.99) - 1)] if ok else None,
        "gateway_cpu_s": run.gateway_cpu,
        "cpu_ms_per_ok": 1000 * (run.gateway_cpu - refused_cpu) / ok if ok else None,
        "cpu_ms_per_refused": refusal_ms,
        "gateway_cores": run.gateway_cpu / run.wall if run.wall else 0.0,
        "client_cores": run.client_cpu / run.wall if run.wall else 0.0,
    }


async def overload_results(*, seconds: float = 10.0, rates: tuple[float, ...] = (0.5, 1, 2, 4),
                           concurrency: int = 16, limits: str = "") -> dict[str, Any]:
    """Run the whole measurement in a world of its own and return it: saturation, refusal CPU, one row per rate."""
    work = Path(tempfile.mkdtemp(prefix="egov-bench-overload-"))
    pki = generate_pki(work / "pki")
    async with gateway_world(work / "world", pki, limits=limits) as world:
        return await measure_overload(world, seconds=seconds, rates=rates, concurrency=concurrency)


async def measure_overload(world: World, *, seconds: float, rates: tuple[float, ...],
                           concurrency: int) -> dict[str, Any]:
    """Saturation (closed loop), the CPU of a refusal, then the open loop at each multiple of saturation."""
    await closed_loop(world, 4 * concurrency, concurrency)  # warm up (OCSP answers cached, pools filled)
    saturated = await closed_loop(world, max(concurrency, int(150 * seconds / 2)), concurrency)
    saturation, saturation_cores = saturated.throughput, saturated.cpu_seconds / saturated.seconds
    pid, port = world.gateway_pid, int(world.base_url.rsplit(":", 1)[1])
    idle = await idle_rate(pid)
    requests = Requests(world.base_url, world.document)
    refusals = await refusal_cpu(pid, port, idle, requests, rate=4 * saturation, seconds=seconds / 2)
    # Only a run of refusals alone prices a refusal (an admitted request among them would be counted as one).
    clean = refusals.refused and not refusals.ok and not refusals.other
    refusal_ms = 1000 * refusals.gateway_cpu / refusals.refused if clean else None
    await idle_rate(pid, 1.0)  # the held slots given back
    runs = []
    for multiple in rates:
        runs.append(row(await measured(pid, idle, requests, multiple * saturation, seconds), saturation, refusal_ms))
        runs[-1]["multiple"] = multiple
        # The machine is shared: the goodput per core the gateway got, against saturation's per core.
        runs[-1]["goodput_per_core_pct"] = (100 * runs[-1]["goodput_per_s"] / max(runs[-1]["gateway_cores"], 1e-9)
                                            / (saturation / saturation_cores))
    return {"saturation_per_s": saturation, "saturation_gateway_cores": saturation_cores,
            "saturation_p50_ms": 1000 * saturated.percentile(0.5),
            "saturation_p99_ms": 1000 * saturated.percentile(0.99),
            "saturation_cpu_ms_per_ok": 1000 * saturated.cpu_per_ok,
            "concurrency": concurrency, "idle_cpu_per_s": idle, "cpu_ms_per_refused": refusal_ms,
            "refusal_run": row(refusals, saturation, refusal_ms), "runs": runs}


def print_table(results: dict[str, Any]) -> None:
    print(f"saturation (closed loop, {results['concurrency']} clients): {results['saturation_per_s']:.0f} req/s, "
          f"p99 {results['saturation_p99_ms']:.0f} ms, gateway {results['saturation_gateway_cores']:.2f} cores; "
          f"gateway idle CPU {1000 * results['idle_cpu_per_s']:.1f} ms/s")
    refusal = results["refusal_run"]
    print(f"refusal only ({refusal['sent']} sent at {refusal['offered_per_s']:.0f}/s, all slots held): "
          f"{refusal['refused_503']} refused 503, {refusal['ok']} OK, other {refusal['other'] or 0}; "
          f"gateway CPU per refusal {results['cpu_ms_per_refused'] or float('nan'):.3f} ms")
    print(f"\n{'load':>5} {'offered/s':>9} {'sent/s':>7} {'goodput/s':>9} {'% sat':>6} {'refused':>8} "
          f"{'other':>6} {'p50 ms':>7} {'p99 ms':>7} {'CPU/OK ms':>9} {'CPU/ref ms':>10} {'gw core':>7} {'client':>6} "
          f"{'%sat/core':>9}")
    for run in results["runs"]:
        other = sum(run["other"].values())
        print(f"{run['multiple']:>4}x {run['offered_per_s']:>9.0f} {run['sent_per_s']:>7.0f} "
              f"{run['goodput_per_s']:>9.0f} {run['goodput_pct_of_saturation']:>5.0f}% {run['refused_503']:>8} "
              f"{other:>6} {_ms(run['p50_ms'])} {_ms(run['p99_ms'])} {_ms(run['cpu_ms_per_ok'], 9, 2)} "
              f"{_ms(run['cpu_ms_per_refused'], 10, 3)} {run['gateway_cores']:>7.2f} {run['client_cores']:>6.2f} "
              f"{run['goodput_per_core_pct']:>8.0f}%")
    for run in results["runs"]:
        if run["other"]:
            print(f"  {run['multiple']}x other outcomes: {run['other']}")


def _ms(value: float | None, width: int = 7, digits: int = 0) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop seconds per rate")
    parser.add_argument("--rates", default="0.5,1,2,4", help="multiples of the saturation throughput")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients finding saturation")
    parser.add_argument("--limits", default="", help="TOML lines for the gateway's [limits] table")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    options = parser.parse_args()
    results = asyncio.run(overload_results(seconds=options.seconds, concurrency=options.concurrency,
                                           rates=tuple(float(r) for r in options.rates.split(",")),
                                           limits=options.limits.replace(";", "\n")))
    print_table(results)
    if options.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
