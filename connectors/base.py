"""What every connector promises: send one verified business document, return the back-end's answer."""

from __future__ import annotations

from typing import Protocol


class ConnectorError(Exception):
    """The back-end call failed. ``code`` is a gateway error code (PROVIDER_*), ``transient`` says
    whether trying again later can help."""

    def __init__(self, code: str, detail: str, *, transient: bool) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.transient = transient


class Connector(Protocol):
    async def call(self, endpoint: str, document: bytes, *, timeout: float, request_id: str) -> bytes:
        """Deliver ``document`` to ``endpoint``; return the answer document, or raise ConnectorError."""
        ...
