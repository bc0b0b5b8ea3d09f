"""What the intake handlers read from ``request.app[INTAKE]``: built once at start-up by the shell."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.access.senders import SenderDirectory
from gateway.config import Settings
from gateway.delivery.callbacks import Notifier
from gateway.delivery.registry import ServiceRegistry
from gateway.intake.pipeline import Pipeline
from gateway.intake.ws_security import WsSecurityGate
from gateway.lifecycle.store import ApplicationStore
from gateway.lifecycle.transitions import Lifecycle


@dataclass(frozen=True)
class IntakeContext:
    """The parts the SyncChannel, AsyncChannel, REST and discovery handlers use."""

    settings: Settings
    "The configuration in force (limits, public address)."
    pipeline: Pipeline
    "The request pipeline every intake hands its requests to."
    registry: ServiceRegistry
    "The services, for discovery and getMessages."
    senders: SenderDirectory
    "Sender authentication."
    store: ApplicationStore
    "Applications, for getMessages, getMessageStatus and delivery notifications (read only)."
    lifecycle: Lifecycle
    "The writer of applications' history (the sender's delivery notifications)."
    notifier: Notifier
    "The AsyncChannel inboxes."
    sync_wsdl: bytes
    "The served SyncChannel WSDL (address filled in)."
    ws_security: WsSecurityGate | None = None
    "WS-Security verification for the SOAP intakes (None: no endpoint processes wsse:Security)."


INTAKE = web.AppKey("intake", IntakeContext)
