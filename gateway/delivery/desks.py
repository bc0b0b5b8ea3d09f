"""What the back-office desk and operator handlers read from ``request.app[DESKS]``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from connectors.queue import JobQueue
from gateway.access.senders import SenderDirectory
from gateway.delivery.engine import Delivery
from gateway.delivery.registry import ServiceRegistry
from gateway.lifecycle.store import ApplicationStore
from gateway.lifecycle.transitions import Lifecycle


@dataclass(frozen=True)
class DeskContext:
    """The parts the job API (desks) and the dead-letter API (operators) use."""

    jobs: JobQueue
    "The back-office job queue."
    store: ApplicationStore
    "Applications behind the jobs (read only)."
    lifecycle: Lifecycle
    "The writer of their status and history (taken, progress, stopped, replayed)."
    senders: SenderDirectory
    "Sender authentication (desks and operators)."
    registry: ServiceRegistry
    "The services, to check a desk's service exists."
    delivery: Delivery
    "Completion of a desk's result, and operator replay."


DESKS = web.AppKey("desks", DeskContext)
