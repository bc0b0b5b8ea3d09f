"""`make bench`: one table of the gateway's speed, every figure measured in this one run (never asserted in tests).

    .venv/bin/python benchmarks/bench_summary.py [--seconds 8] [--requests 900] [--markdown]

1. The crypto floor of a request: one XMLDSig verification of the applicant's document (signxml, certificate
   pinned) plus one XMLDSig signature (the gateway's key, loaded once), on this core, now.
2. Saturation: a closed loop of 16 clients against `egov-gateway serve` (1 worker), with redis-server, the OCSP
   responder and the library in processes of their own (benchmarks/world.py); the gateway's CPU per request
   read from /proc, and its ratio to the floor; the CPU of one refusal (benchmarks/bench_overload.py).
3. Open loop at fixed offered rates (½×, 1×, 2×, 4× the saturation just measured): goodput, its share of the
   saturation throughput, refusals (503 GATEWAY_OVERLOADED), p50/p99 of the accepted requests, CPU per OK.
4. Big documents (benchmarks/bench_bigdocs.py): the gateway's peak RSS for a signed 1 MB and 10 MB document, and
   Redis bytes (memory and AOF) per small application.
5. `serve --workers 2` against 1 worker (benchmarks/bench_workers.py).

Everything shares this machine's cores: the load generator and the mocks take their part of them, so the
throughput figures are those of this machine, not of the gateway alone. The detailed benchmarks (message log,
uploads, soak, shared revocation, replica acks) print more: `make bench-details`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier

from benchmarks.bench_bigdocs import measure as measure_documents
from benchmarks.bench_overload import measure_overload
from benchmarks.bench_workers import measure_workers
from benchmarks.world import gateway_world
from mocks.pki import TestPki, generate_pki
from signing.signer import DocumentSigner, SigningKey

Row = tuple[str, str]
RATES = (0.5, 1.0, 2.0, 4.0)
"Offered rates of the open-loop runs, as multiples of the measured saturation."


def seconds_per_call(action: Callable[[], object], seconds: float = 2.0) -> float:
    """CPU seconds of one call, on this core (process time, after one warm-up call)."""
    action()
    count, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        action()
        count += 1
    return (time.process_time() - start) / count


def crypto_floor(pki: TestPki, document: bytes) -> tuple[float, float]:
    """Seconds of one signxml verification of ``document`` and of one signature with the gateway's key."""
    certificate = pki.person("aigerim").sign.load_certificate()
    config = SignatureConfiguration(location="./")
    verify = seconds_per_call(lambda: XMLVerifier().verify(document, x509_cert=certificate, expect_config=config))
    signer = DocumentSigner(SigningKey.from_pem(pki.systems["gateway"].cert, pki.systems["gateway"].key))
    result = etree.fromstring(b"<ReaderTicket xmlns='urn:egov:kazneb:reader-ticket:v1'><iin>1</iin></ReaderTicket>")
    return verify, seconds_per_call(lambda: signer.sign(result))


def _overload_rows(results: dict[str, Any], floor: float) -> list[Row]:
    saturation = results["saturation_per_s"]
    rows = [("saturation, closed loop, 1 worker",
             f"{saturation:,.0f}/s ({results['concurrency']} clients), p50 {results['saturation_p50_ms']:.0f} ms, "
             f"p99 {results['saturation_p99_ms']:.0f} ms"),
            ("gateway CPU per request at saturation",
             f"{results['saturation_cpu_ms_per_ok']:.2f} ms = {results['saturation_cpu_ms_per_ok'] / floor:.1f}x "
             f"the floor")]
    refusal = results["cpu_ms_per_refused"]
    rows.append(("gateway CPU per refusal (503 GATEWAY_OVERLOADED)",
                 f"{refusal:.3f} ms" if refusal is not None else "not measured (the refusal run admitted some)"))
    for run in results["runs"]:
        label = f"open loop {run['multiple']:g}x = {run['offered_per_s']:,.0f}/s offered"
        other = sum(run["other"].values())
        p50, p99, cpu = run["p50_ms"], run["p99_ms"], run["cpu_ms_per_ok"]
        rows.append((label, f"goodput {run['goodput_per_s']:,.0f}/s ({run['goodput_pct_of_saturation']:.0f}% of "
                            f"saturation), refused {run['refused_503']:,}, other {other}; accepted p50 "
                            f"{p50 or float('nan'):.0f} ms, p99 {p99 or float('nan'):.0f} ms; CPU per OK "
                            f"{cpu or float('nan'):.2f} ms ({(cpu or float('nan')) / floor:.1f}x)"))
    return rows


def _document_rows(results: dict[str, Any]) -> list[Row]:
    small = results["smallApplications"]
    rows = [("Redis bytes per application (small, SOAP)",
             f"{small['redisBytesPerApplication']:,.0f} in memory, {small['aofBytesPerApplication']:,.0f} of AOF")]
    rows += [(f"{big['sizeMB']:g} MB signed document: gateway peak RSS above idle",
              f"{big['peakRssAboveIdleMB']:.1f} MB = {big['peakRssAboveIdleTimesPayload']:.1f}x the payload; "
              f"Redis +{big['redisUsedDeltaMB']:.1f} MB kept, AOF +{big['aofDeltaMB']:.1f} MB")
             for big in results["bigDocuments"]]
    return rows


async def measure(work: Path, *, seconds: float, requests: int) -> list[Row]:
    pki = generate_pki(work / "pki")
    rows: list[Row] = []
    async with gateway_world(work / "one-worker", pki) as world:
        verify, sign = crypto_floor(pki, world.document)
        floor = 1000 * (verify + sign)
        rows += [("crypto floor: signxml verify + one signature",
                  f"{floor:.2f} ms ({1000 * verify:.2f} + {1000 * sign:.2f}), document {len(world.document):,} "
                  f"bytes")]
        rows += _overload_rows(await measure_overload(world, seconds=seconds, rates=RATES, concurrency=16), floor)
    rows += _document_rows(await measure_documents())
    workers = await measure_workers(work, pki, requests=requests, concurrency=32)
    rows += [(f"serve --workers {count}, closed loop of 32",
              f"{result.throughput:,.0f}/s ({result.throughput / workers[1].throughput:.2f}x), CPU per request "
              f"{1000 * result.cpu_per_ok:.2f} ms; {result.cores()}") for count, result in workers.items()]
    return rows


def print_table(rows: list[Row], markdown: bool) -> None:
    if markdown:
        print("| what | measured |\n|---|---|")
        for what, value in rows:
            print(f"| {what.strip()} | {value} |")
        return
    width = max(len(what) for what, _ in rows)
    for what, value in rows:
        print(f"{what:<{width}}  {value}")


async def main(seconds: float, requests: int, markdown: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="egov-bench-") as work:
        rows = await measure(Path(work), seconds=seconds, requests=requests)
    print(f"python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}")
    print_table(rows, markdown)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each open-loop run")
    parser.add_argument("--requests", type=int, default=900, help="requests of each closed-loop run")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the README)")
    options = parser.parse_args()
    asyncio.run(main(options.seconds, options.requests, options.markdown))
