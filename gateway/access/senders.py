"""Sender authentication (senderId + password) and access rights.

Passwords are stored as scrypt hashes, checked off the event loop a bounded number at once
(:class:`~gateway.access.passwords.PasswordChecks`), with failed attempts throttled in Redis
(:class:`~gateway.access.throttle.FailureThrottle`). A password that verified once is remembered for the
life of the process as a keyed digest, one per configured sender, so a correct repeat costs no scrypt; a
wrong one is never remembered and always pays the full cost. An unknown sender id pays the same cost
(scrypt against a dummy hash) and gets the same code as a wrong password, so ids cannot be told apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from gateway.access.passwords import PasswordChecks, check_password, hash_password
from gateway.access.throttle import FailureThrottle
from gateway.config import AuthSettings, SenderAuth, SenderSettings
from gateway.errors import GatewayError

__all__ = ["AuthenticatedSender", "SenderDirectory", "check_password", "hash_password"]

log = logging.getLogger("egov.senders")


@dataclass(frozen=True)
class AuthenticatedSender:
    """A sender whose password checked out."""

    sender_id: str
    "The senderId from the request."
    settings: SenderSettings
    "Its configuration (rights)."

    def may_call(self, service_id: str) -> bool:
        return "*" in self.settings.services or service_id in self.settings.services


class SenderDirectory:
    """Checks senderId/password pairs against the configured senders; call :meth:`close` when done."""

    def __init__(self, senders: dict[str, SenderSettings], *, redis: Redis, prefix: str,
                 settings: AuthSettings | None = None) -> None:
        self.settings = settings or AuthSettings()
        self._senders = senders
        self.checks = PasswordChecks(self.settings.max_concurrent_checks, self.settings.queue_seconds)
        self.throttle = FailureThrottle(redis, prefix, self.settings)
        self._dummy_hash = hash_password(secrets.token_urlsafe(16))  # what an unknown id is checked against
        self._pepper = secrets.token_bytes(32)  # per process: the memo is useless outside it
        self._verified: dict[str, bytes] = {}  # sender id -> keyed digest; only configured ids, so bounded
        self._in_flight: dict[bytes, asyncio.Future[bool]] = {}  # keyed digest -> its one running check

    def get(self, sender_id: str) -> SenderSettings | None:
        """A configured sender's settings (no authentication)."""
        return self._senders.get(sender_id)

    async def authenticate(self, sender_id: str, password: str | None, *, client: str | None,
                           signed_by: str | None = None) -> AuthenticatedSender:
        """The sender, or a refusal: CLIENT_BAD_CREDENTIALS (unknown id, wrong or missing password alike),
        429 CLIENT_TOO_MANY_ATTEMPTS / CLIENT_LOCKED_OUT (throttled, before any check), 503 when the
        password checks are at capacity. ``client`` is the caller's network address. ``signed_by`` is the BIN
        of the system certificate whose WS-Security signature over this request verified (None: no such
        signature): a sender with auth 'ws-security' needs it to be its ``ws_security_bin``
        (CLIENT_WSS_REQUIRED, CLIENT_WSS_BIN_MISMATCH); one without 'password' needs no password."""
        admission = await self.throttle.admit(sender_id, client or "")
        settings = self._senders.get(sender_id)
        if settings is not None and SenderAuth.WS_SECURITY in settings.auth:
            if signed_by is None or signed_by != settings.ws_security_bin:
                await self.throttle.failed(admission)
                log.info("WS-Security authentication failed for %r from %s", sender_id[:64], client)
                raise GatewayError("CLIENT_WSS_REQUIRED" if signed_by is None else "CLIENT_WSS_BIN_MISMATCH")
            if SenderAuth.PASSWORD not in settings.auth:
                await self.throttle.succeeded(admission)
                return AuthenticatedSender(sender_id, settings)
        if not password:
            await self.throttle.failed(admission)
            raise GatewayError("CLIENT_BAD_CREDENTIALS", "no password given")
        stored = settings.password_hash if settings is not None else self._dummy_hash
        memo = hmac.new(self._pepper, f"{sender_id}\0{stored}\0{password}".encode(), hashlib.sha256).digest()
        known = self._verified.get(sender_id)
        if settings is None or known is None or not hmac.compare_digest(known, memo):
            matches = await self._check_once(memo, password, stored)
            if settings is None or not matches:
                await self.throttle.failed(admission)
                log.info("sender authentication failed for %r from %s", sender_id[:64], client)
                raise GatewayError("CLIENT_BAD_CREDENTIALS", "no sender with this senderId and password")
            self._verified[sender_id] = memo
        await self.throttle.succeeded(admission)
        return AuthenticatedSender(sender_id, settings)

    async def _check_once(self, memo: bytes, password: str, stored: str) -> bool:
        """Identical checks at the same time share one scrypt run: a portal's first burst of requests, before
        the memo knows its password, costs one check, not one each (which would fill the bounded pool)."""
        running = self._in_flight.get(memo)
        if running is None:
            running = asyncio.ensure_future(self.checks.check(password, stored))
            self._in_flight[memo] = running
            running.add_done_callback(lambda done: self._forget(memo, done))
        return await asyncio.shield(running)

    def _forget(self, memo: bytes, done: asyncio.Future[bool]) -> None:
        self._in_flight.pop(memo, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have gone away

    def close(self) -> None:
        self.checks.close()
