"""Sender authentication (senderId + password) and access rights.

Passwords are stored as scrypt hashes. scrypt is slow on purpose (milliseconds), far above the
per-request budget, so a password that verified once is remembered as a keyed digest for the life
of the process; a wrong password is never remembered and always pays the full cost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from gateway.config import SenderSettings
from gateway.errors import GatewayError

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Return ``scrypt$N$r$p$salt$hash`` for storing in the configuration."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored scrypt hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected), maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


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
    """Checks senderId/password pairs against the configured senders."""

    def __init__(self, senders: dict[str, SenderSettings]) -> None:
        self._senders = senders
        self._pepper = secrets.token_bytes(32)  # per process: the memo is useless outside it
        self._verified: dict[str, bytes] = {}

    def authenticate(self, sender_id: str, password: str | None) -> AuthenticatedSender:
        settings = self._senders.get(sender_id)
        if settings is None:
            raise GatewayError("CLIENT_UNKNOWN_SENDER")
        if password is None:
            raise GatewayError("CLIENT_BAD_CREDENTIALS", "no password given")
        memo = hmac.new(self._pepper, f"{sender_id}\0{password}".encode(), hashlib.sha256).digest()
        known = self._verified.get(sender_id)
        if known is None or not hmac.compare_digest(known, memo):
            if not check_password(password, settings.password_hash):
                raise GatewayError("CLIENT_BAD_CREDENTIALS")
            self._verified[sender_id] = memo
        return AuthenticatedSender(sender_id, settings)
