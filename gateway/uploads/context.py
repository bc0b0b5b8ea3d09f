"""What the upload handlers read from ``request.app[UPLOADS]``: built once at start-up by the shell."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import web

from gateway.access.senders import SenderDirectory
from gateway.config import UploadSettings
from gateway.errors import GatewayError
from gateway.packages.packages import Packages


class PatchSlots:
    """A per-process bound on PATCH requests streaming at once (each holds two write buffers), and the threads
    they write and flush in: two per PATCH (a write and a flush may run at once), apart from the default
    executor, so a slow disk's fsync never holds up the rest of the gateway's thread work."""

    def __init__(self, limit: int) -> None:
        self.limit, self.running = limit, 0
        self.threads = ThreadPoolExecutor(max_workers=2 * limit, thread_name_prefix="egov-upload")

    def take(self) -> None:
        if self.running >= self.limit:
            raise GatewayError("GATEWAY_OVERLOADED", f"{self.limit} uploads are streaming in this process")
        self.running += 1

    def give(self) -> None:
        self.running -= 1


@dataclass(frozen=True)
class UploadContext:
    """The parts the tus handlers use."""

    settings: UploadSettings
    "Size limit, buffers, expiry, lock wait."
    senders: SenderDirectory
    "HTTP Basic authentication of the sender."
    packages: Packages
    "Records in Redis, bytes in the storage, running digests."
    slots: PatchSlots = field(compare=False)
    "PATCH requests streaming now in this process."


UPLOADS = web.AppKey("uploads", UploadContext)
