"""Telling the sender: the AsyncChannel inbox (getMessages) and callbacks to the sender's IAsyncChannelClient.

When an async application reaches a final state its answer joins the sender's inbox for the service
(a lease schedule: ``getMessages`` leases messages for five minutes; ``sendDeliveryNotification``
with MESSAGE_ACCEPTED removes them, RESEND makes them available again). If the sender registered a
``callback_url``, the gateway also pushes the answer there (``sendMessage``, retried with backoff up to
``CallbackSettings.attempts`` times; then it stays in the inbox only) and every status change
(``changeMassageStatusNotification``, spelt as in SHEP, best effort). A pushed answer that the portal
took leaves the inbox. The callback loop and every push run under :func:`gateway.supervise.supervise`.

A push the sender took is a ``result-delivery`` record in the message log (:mod:`gateway.messagelog.deliveries`),
appended after its HTTP 200 and before the push is marked done: a push that could not be logged is made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field

import aiohttp
from lxml import etree
from redis.asyncio import Redis
from redis.exceptions import RedisError

import schemas
from gateway.config import SenderSettings
from gateway.delivery.resilience import backoff_seconds
from gateway.delivery.schedule import LeaseSchedule
from gateway.lifecycle.application import Application
from gateway.lifecycle.store import ApplicationStore
from gateway.lifecycle.transitions import Lifecycle
from gateway.messagelog import deliveries
from gateway.messagelog.journal import MessageLog
from gateway.shep.envelope import BODY, ENVELOPE, SOAP_ENV
from gateway.shep.messages import async_message, change_status_notification
from gateway.supervise import FailureBurst, SupervisorSettings, backoff_delay, guard, sleep_unless, spawn, supervise

log = logging.getLogger("egov.notifications")
CLIENT_NS = schemas.ASYNC_CLIENT_NS
"The sender's IAsyncChannelClient: both callbacks are in .../AsyncChannel/v10/Types/Client."
CALLBACK_ATTEMPTS = 20
INBOX_LEASE_SECONDS = 300.0
_IDLE_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class CallbackSettings:
    """How answers are pushed to senders' callback endpoints (per process)."""

    attempts: int = CALLBACK_ATTEMPTS
    "Pushes of one answer that the sender may refuse before the gateway gives up (it stays in getMessages)."
    retry_base_seconds: float = 0.5
    "Backoff after the first refused push; doubled per further refusal, with jitter."
    retry_cap_seconds: float = 60.0
    "Longest wait between two pushes of one answer."
    supervision: SupervisorSettings = field(default_factory=SupervisorSettings)
    "Backoff of the callback loop itself when storage fails."

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("callback attempts must be at least 1")


class Notifier:
    """Inbox and callbacks; one per process. Registered as a status listener of the lifecycle."""

    def __init__(self, redis: Redis, prefix: str, store: ApplicationStore, senders: dict[str, SenderSettings],
                 session: aiohttp.ClientSession, *, lifecycle: Lifecycle,
                 settings: CallbackSettings | None = None, messagelog: MessageLog | None = None) -> None:
        """``messagelog``: where the answers the senders' callbacks took are logged."""
        self.redis, self.prefix, self.store, self.senders, self.session = redis, prefix, store, senders, session
        self.lifecycle, self.messagelog = lifecycle, messagelog
        self.settings = settings or CallbackSettings()
        self.callbacks = LeaseSchedule(redis, f"{prefix}:callbacks")
        self._attempts: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # status notifications in flight (kept referenced)
        supervision = self.settings.supervision
        self._push_failures = FailureBurst("callback push", supervision, logger=log)
        self._status_failures = FailureBurst("status notification", supervision, logger=log)

    def inbox(self, sender_id: str, service_id: str) -> LeaseSchedule:
        return LeaseSchedule(self.redis, f"{self.prefix}:inbox:{sender_id}:{service_id}")

    async def on_change(self, app: Application) -> None:
        """Lifecycle listener: an application's status changed."""
        if app.mode != "async":
            return
        sender = self.senders.get(app.sender_id)
        if app.status.final:
            await self.inbox(app.sender_id, app.service_id).schedule(app.id)
            if sender and sender.callback_url:
                await self.callbacks.schedule(app.id)
        if sender and sender.callback_url:  # best effort, guarded: a failure is logged, never raised
            spawn(self._tasks, self._status_notification(sender.callback_url, app), self._status_failures, app.id)

    async def _status_notification(self, url: str, app: Application) -> None:
        root = etree.Element(f"{{{CLIENT_NS}}}changeMassageStatusNotification", nsmap={"ns": CLIENT_NS})
        change_status_notification(root, app)
        try:
            await self._post(url, _envelope(root))
        except (aiohttp.ClientError, TimeoutError) as exc:  # best effort: the answer itself is retried
            log.info("status notification to %s failed: %s", app.sender_id, type(exc).__name__)

    async def run(self, stop: asyncio.Event) -> None:
        """Push answers to senders' callback endpoints, retrying with backoff, until ``stop``.

        Runs under :func:`supervise`: storage trouble backs the loop off, never ends it; each push is
        guarded, and one that failed on storage is tried again soon (or when its lease expires).
        """

        async def step() -> None:
            due = await self.callbacks.lease(lease_seconds=60, count=16)
            await asyncio.gather(*(guard(self._push(app_id), self._push_failures, app_id) for app_id in due))
            if not due:
                await sleep_unless(stop, _IDLE_POLL_SECONDS)

        await supervise("callback loop", step, stop, settings=self.settings.supervision)

    async def _push(self, app_id: str) -> None:
        try:
            await self._push_answer(app_id)
        except RedisError:  # not the sender's fault, not an attempt: again after the storage backoff
            delay = backoff_delay(self._push_failures.failures + 1, self.settings.supervision)
            with contextlib.suppress(RedisError):  # still down: the lease brings it back
                await self.callbacks.schedule(app_id, delay)
            raise

    async def _push_answer(self, app_id: str) -> None:
        app = await self.store.get(app_id)
        sender = self.senders.get(app.sender_id) if app else None
        if app is None or sender is None or not sender.callback_url:
            await self.callbacks.done(app_id)
            return
        root = etree.Element(f"{{{CLIENT_NS}}}sendMessage", nsmap={"ns": CLIENT_NS})
        async_message(root, "request", app)
        body = _envelope(root)
        try:
            await self._post(sender.callback_url, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            attempt = self._attempts[app_id] = self._attempts.get(app_id, 0) + 1
            if attempt >= self.settings.attempts:
                self._attempts.pop(app_id, None)
                await self.callbacks.done(app_id)
                await self.lifecycle.note(app, f"the sender's callback did not take the answer after {attempt} "
                                               "attempts; it stays available through getMessages")
                return
            delay = backoff_seconds(attempt, base=self.settings.retry_base_seconds, cap=self.settings.retry_cap_seconds)
            await self.callbacks.schedule(app_id, delay)
            log.info("callback to %s failed (%s), attempt %d", app.sender_id, type(exc).__name__, attempt)
            return
        attempt = self._attempts.get(app_id, 0) + 1
        if self.messagelog is not None:  # RedisError: not done, so pushed again and logged then
            await self.messagelog.append(deliveries.pushed(app, body, attempt))
        self._attempts.pop(app_id, None)
        await self.callbacks.done(app_id)
        await self.inbox(app.sender_id, app.service_id).done(app_id)
        await self.lifecycle.note(app, "answer delivered to the sender's callback endpoint")

    async def _post(self, url: str, body: bytes) -> None:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""', "X-Request-Id": str(uuid.uuid4())}
        async with self.session.post(url, data=body, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=10)) as response:
            await response.read()
            if response.status != 200:
                raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)


def _envelope(payload: etree._Element) -> bytes:
    """The SOAP 1.1 envelope posted to a callback, as bytes (what the message log hashes is what is sent)."""
    envelope = etree.Element(ENVELOPE, nsmap={"soap": SOAP_ENV})
    etree.SubElement(envelope, BODY).append(payload)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
