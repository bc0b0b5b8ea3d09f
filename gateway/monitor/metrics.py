"""The gateway's Prometheus metrics, defined once per process, and their exposition.

Counters and histograms live in prometheus_client's default registry. Under ``serve --workers N`` the parent sets
``PROMETHEUS_MULTIPROC_DIR`` (:func:`prepare_multiprocess_dir`) before any worker imports prometheus_client, so
every worker writes its values to files there and whichever worker answers ``/metrics`` reports the sum of all
(:func:`exposition`). Gauges that describe shared state (the outbox, the queues in Redis, certificates) are not
kept here: they are computed at scrape time by the answering process (:mod:`gateway.monitor.gauges`), so they are
reported once, not once per worker. Recording a sample costs a dict lookup and a lock: cheap enough for the
request path (docs/monitoring.md has the measurement).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
NONE = "none"
"The label value for an absent one (a passed signature has no sub-indication)."
UNKNOWN = "unknown"
"The service label of a request whose service is unknown or not read yet (keeps label values bounded)."

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double the counters' series and nobody here queries them
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("egov_requests", "Requests answered by the intakes, by channel, service and result code.",
                   ("channel", "service", "code"))
REQUEST_SECONDS = Histogram("egov_request_duration_seconds", "Time to answer an intake request.",
                            ("channel", "service"), buckets=_LATENCY_BUCKETS)
SIGNATURE_CHECKS = Counter("egov_signature_checks", "Applicants' signatures checked, by ETSI indication.",
                           ("indication", "sub_indication"))
REVOCATION_LOOKUPS = Counter("egov_revocation_lookups",
                             "Revocation lookups (OCSP, CRL, the shared cache in Redis), by source and result.",
                             ("source", "result"))
REVOCATION_CACHE_HITS = Counter("egov_revocation_cache_hits", "Revocation checks answered from the OCSP cache.")
TSA_REQUESTS = Counter("egov_tsa_requests", "Time-stamp requests to the TSA (message log seals), by result.",
                       ("result",))
BACKEND_CALLS = Counter("egov_backend_calls", "Calls to back-ends (submit and poll), by service and outcome.",
                        ("service", "outcome"))
BACKEND_SECONDS = Histogram("egov_backend_call_duration_seconds", "Time of one back-end call.", ("service",),
                            buckets=_LATENCY_BUCKETS)
# Per-process state: in multi-process mode a breaker counts as open when it is open in any live worker, and the
# streams are summed over the live workers.
BREAKER_OPEN = Gauge("egov_breaker_open", "1 while the back-end's circuit breaker is open (or half-open).",
                     ("service",), multiprocess_mode="livemax")
CABINET_STREAMS = Gauge("egov_cabinet_streams", "Cabinet live event streams open.", multiprocess_mode="livesum")


def observe_request(channel: str, service: str, code: str, started: float) -> None:
    """Count one answered intake request (``started``: its ``time.perf_counter()``)."""
    REQUESTS.labels(channel, service, code).inc()
    REQUEST_SECONDS.labels(channel, service).observe(time.perf_counter() - started)


def observe_signature(indication: str, sub_indication: str | None) -> None:
    SIGNATURE_CHECKS.labels(indication, sub_indication or NONE).inc()


def observe_revocation(source: str, result: str) -> None:
    """The revocation checker's lookup observer (``signing.revocation.LookupObserver``)."""
    if source == "cache":
        REVOCATION_CACHE_HITS.inc()
    else:
        REVOCATION_LOOKUPS.labels(source, result).inc()


def observe_tsa(result: str) -> None:
    """One time-stamp request of the message log's sealer: ``ok``, ``unavailable`` (unreachable, slow, not HTTP
    200) or ``refused`` (an answer that failed the token's checks)."""
    TSA_REQUESTS.labels(result).inc()


def observe_backend(service: str, outcome: str, started: float) -> None:
    BACKEND_CALLS.labels(service, outcome).inc()
    BACKEND_SECONDS.labels(service).observe(time.perf_counter() - started)


def multiprocess() -> bool:
    """Whether values are shared through files (decided by the environment when prometheus_client loaded)."""
    return MULTIPROC_ENV in os.environ


def prepare_multiprocess_dir(path: Path) -> None:
    """Empty ``path`` and point prometheus_client there; call in the parent before any worker starts."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)


def process_exited(pid: int) -> None:
    """Drop an exited worker's live gauges (its counters stay in the sums, as Prometheus expects)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class _Union:
    """What one scrape shows: the process's (or all workers') metrics and the scrape-time gauges."""

    def __init__(self, base: CollectorRegistry, extra: Iterable[Metric]) -> None:
        self.base, self.extra = base, extra

    def collect(self) -> Iterator[Metric]:
        yield from self.base.collect()
        yield from self.extra


def _base_registry() -> CollectorRegistry:
    if not multiprocess():
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def exposition(extra: Iterable[Metric]) -> bytes:
    """The Prometheus text format of everything recorded, plus ``extra`` (scrape-time families)."""
    return generate_latest(_Union(_base_registry(), extra))


RECEIPT_BATCHES = Counter("egov_receipt_batches", "Receipt batches signed (one gateway signature each).")
RECEIPTS_BATCHED = Counter("egov_receipts_batched", "Receipts signed in batches (divided by egov_receipt_batches: "
                           "the mean batch size).")


def observe_receipt_batch(size: int) -> None:
    """One batch of ``size`` receipts signed under one root."""
    RECEIPT_BATCHES.inc()
    RECEIPTS_BATCHED.inc(size)
