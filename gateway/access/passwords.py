"""Password hashes (scrypt) and checking them off the event loop, a bounded number at once.

scrypt costs tens of milliseconds of CPU on purpose. Run on the event loop, every wrong password would
stall every other request of the process, so checks run in a small pool of worker threads (hashlib's
scrypt releases the GIL) and a caller that finds every slot busy waits briefly, then is refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

from gateway.errors import GatewayError

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Return ``scrypt$N$r$p$salt$hash`` for storing in the configuration."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored scrypt hash (blocking: see :class:`PasswordChecks`)."""
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


class PasswordChecks:
    """Runs :func:`check_password` in worker threads, at most ``limit`` at once per process.

    A check waits up to ``queue_seconds`` for a slot, then is refused with 503 GATEWAY_OVERLOADED. A slot
    is given back only when its thread has finished, so callers that give up (a closed connection) cannot
    pile up hidden work behind the bound.
    """

    def __init__(self, limit: int, queue_seconds: float) -> None:
        self.limit = limit
        self.queue_seconds = queue_seconds
        self.running = 0
        "Checks in worker threads right now (for tests and metrics)."
        self.started = 0
        "Checks started since the process began."
        self._executor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="egov-scrypt")
        self._slots = asyncio.Semaphore(limit)

    async def check(self, password: str, stored: str) -> bool:
        if self._slots.locked():  # wait_for with a timeout of 0 would refuse even a free slot
            if self.queue_seconds <= 0:
                raise GatewayError("GATEWAY_OVERLOADED", "password checks are at capacity", retry_after=1)
            try:
                await asyncio.wait_for(self._slots.acquire(), self.queue_seconds)
            except TimeoutError:
                raise GatewayError("GATEWAY_OVERLOADED", "password checks are at capacity", retry_after=1) from None
        else:
            await self._slots.acquire()
        self.running += 1
        self.started += 1
        future = asyncio.get_running_loop().run_in_executor(self._executor, check_password, password, stored)
        future.add_done_callback(self._release)
        return await asyncio.shield(future)

    def _release(self, _: object) -> None:
        self.running -= 1
        self._slots.release()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
