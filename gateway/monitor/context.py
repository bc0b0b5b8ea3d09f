"""The monitoring seam of one application: where rooms register readiness checks and scrape-time gauges."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.config import MonitorSettings
from gateway.monitor.gauges import ScrapeGauges
from gateway.monitor.health import Readiness


@dataclass(frozen=True)
class MonitorContext:
    """Built with the application; filled at start-up (``shell/monitoring.register_gateway``, and any room)."""

    settings: MonitorSettings
    "The ``[monitor]`` table."
    readiness: Readiness
    "Checks run by ``/health/ready``."
    gauges: ScrapeGauges
    "Gauges read when ``/metrics`` is scraped."

    @classmethod
    def build(cls, settings: MonitorSettings) -> MonitorContext:
        # A check may make one probe round (timeout each) plus its own work: allow a little more than one timeout.
        return cls(settings, Readiness(timeout_seconds=settings.probe_timeout_seconds + 1.0),
                   ScrapeGauges(timeout_seconds=settings.probe_timeout_seconds,
                                cache_seconds=settings.gauge_cache_seconds))


MONITOR = web.AppKey("monitor", MonitorContext)
