"""What the cabinet handlers read from ``request.app[CABINET]``: built once at start-up by the shell."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.access.senders import SenderDirectory
from gateway.cabinet.access_log import AccessLog
from gateway.cabinet.calendar import WorkingCalendar
from gateway.cabinet.events import EventHub
from gateway.cabinet.readable import ReadableDocuments
from gateway.delivery.registry import ServiceRegistry
from gateway.lifecycle.archive import ArchiveStore
from gateway.lifecycle.store import ApplicationStore


@dataclass(frozen=True)
class CabinetContext:
    """The parts the cabinet API and its live event streams use."""

    store: ApplicationStore
    "Applications and their history."
    registry: ServiceRegistry
    "Service titles and regulated terms, for deadlines."
    senders: SenderDirectory
    "Sender authentication (the portal)."
    calendar: WorkingCalendar
    "Kazakhstan working days, for deadlines."
    events: EventHub
    "The live event streams' one shared subscription (its own Redis connection), with their caps."
    readable: ReadableDocuments
    "Each service's compiled schemas, to give documents and results as JSON fields."
    access_log: AccessLog
    "The register of cabinet reads (who read whose data, when)."
    archive: ArchiveStore | None = None
    "Applications that left Redis after the retention (listed and served marked archived); None: none."


CABINET = web.AppKey("cabinet", CabinetContext)
