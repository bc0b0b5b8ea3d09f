"""Gauges computed when ``/metrics`` is scraped, from callbacks registered by the rooms that know the state.

State shared by all workers (the outbox and queues in Redis, the certificates, the message log) is read by the
process answering the scrape, so it is reported once whatever the number of workers, and never costs anything on
the request path. Readings are bounded by a timeout and reused for ``cache_seconds``, so a scraper (or several)
costs at most one round of reads per that interval; a reading that fails or times out is left out of the scrape
(its gauge disappears rather than showing a stale or made-up value) and logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from gateway.monitor.health import WarnOnce

GaugeReading = float | Mapping[tuple[str, ...], float] | None
"""One value (a gauge without labels), values by label values (in the order of the gauge's labels), or None
(nothing to report now)."""
GaugeSource = Callable[[], Awaitable[GaugeReading]]
"An async callable that reads a gauge's current value(s)."


@dataclass(frozen=True)
class ScrapeGauge:
    """A gauge read at scrape time."""

    name: str
    "Metric name (``egov_...``)."
    documentation: str
    "HELP text."
    labels: tuple[str, ...]
    "Label names; empty for a single value."
    read: GaugeSource
    "Reads the value(s)."


class ScrapeGauges:
    """The registered scrape-time gauges of one application, read together with a timeout and a short cache."""

    def __init__(self, *, timeout_seconds: float, cache_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_seconds = timeout_seconds
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._gauges: dict[str, ScrapeGauge] = {}
        self._cached: tuple[float, list[Metric]] | None = None
        self._lock = asyncio.Lock()
        self._warn = WarnOnce(every=60.0)  # a failing reading is logged once a minute, not at every scrape

    def register(self, name: str, documentation: str, read: GaugeSource, *, labels: tuple[str, ...] = ()) -> None:
        """Add a gauge; a name registered twice is a wiring mistake (ValueError)."""
        if name in self._gauges:
            raise ValueError(f"gauge {name} is already registered")
        self._gauges[name] = ScrapeGauge(name, documentation, labels, read)
        self._cached = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._gauges)

    async def collect(self) -> list[Metric]:
        """The gauges' families, read at most once per ``cache_seconds`` (concurrent scrapes share a reading)."""
        async with self._lock:
            if self._cached is not None and self.clock() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            gauges = list(self._gauges.values())
            readings = await asyncio.gather(*(self._read(g) for g in gauges))
            families = [family for gauge, reading in zip(gauges, readings, strict=True)
                        if (family := _family(gauge, reading)) is not None]
            self._cached = (self.clock(), families)
            return families

    async def _read(self, gauge: ScrapeGauge) -> GaugeReading:
        try:
            return await asyncio.wait_for(gauge.read(), self.timeout_seconds)
        except Exception as exc:  # a scrape shows what it can; the failure is the operator's news, in the log
            self._warn(f"gauge {gauge.name} not read: {type(exc).__name__}")
            return None


def _family(gauge: ScrapeGauge, reading: GaugeReading) -> Metric | None:
    if reading is None:
        return None
    if not gauge.labels:
        if isinstance(reading, Mapping):
            raise TypeError(f"gauge {gauge.name} has no labels but read {reading!r}")
        return GaugeMetricFamily(gauge.name, gauge.documentation, value=float(reading))
    family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=list(gauge.labels))
    if not isinstance(reading, Mapping):
        raise TypeError(f"gauge {gauge.name} has labels {gauge.labels} but read one value")
    for values, value in sorted(reading.items()):
        family.add_metric(list(values), float(value))
    return family
