"""Package connector: a document with a large package behind it (the software deposit), to a REST back-end.

``submit`` POSTs the document (``application/xml``, ``Idempotency-Key`` = the application id) to the endpoint
(e.g. ``.../api/v1/deposits``), which registers it and answers JSON ``{"reference"}``; then PUTs the package to
``<endpoint>/<reference>/package``, streamed from the gateway's storage with a known Content-Length, never held
in memory. A retry repeats both: the back-end answers the repeated POST with the first registration and a
repeated PUT once it has the package. ``poll`` GETs ``<endpoint>/<reference>``: JSON ``{"steps": [...],
"final", "refused", "document"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp

from connectors.base import Answer, ConnectorError, PackageSource, Step, Submission
from connectors.rest import IDEMPOTENCY_HEADER, MAX_ANSWER_BYTES, UNREACHABLE, _problem_detail, _read_bounded

log = logging.getLogger("egov.connectors")
CHUNK = 256 * 1024
PACKAGE_TIMEOUT_PER_MIB = 2.0
"Seconds allowed per MiB of package on top of the call timeout (a slow link still finishes a large package)."


class PackageConnector:
    """One instance per gateway process, sharing the process's aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def submit(self, submission: Submission) -> Answer:
        if submission.package is None:
            raise ConnectorError("PROVIDER_BAD_RESPONSE", "the package connector needs a package", transient=False)
        headers = {"Content-Type": "application/xml; charset=utf-8", "X-Request-Id": submission.application_id,
                   IDEMPOTENCY_HEADER: submission.application_id}
        body = await self._call("POST", submission.endpoint, submission.application_id, submission.timeout,
                                data=submission.document, headers=headers)
        try:
            reference = str(json.loads(body)["reference"])
        except (ValueError, KeyError, TypeError):
            raise ConnectorError("PROVIDER_BAD_RESPONSE", "no reference in the back-end's answer",
                                 transient=False) from None
        package = submission.package
        timeout = submission.timeout + PACKAGE_TIMEOUT_PER_MIB * package.size / (1024 * 1024)
        await self._call("PUT", f"{submission.endpoint.rstrip('/')}/{quote(reference, safe='')}/package",
                         submission.application_id, timeout, data=_stream(package),
                         headers={"Content-Type": "application/octet-stream", "Content-Length": str(package.size),
                                  IDEMPOTENCY_HEADER: f"{submission.application_id}:package"})
        return Answer(reference=reference, polled=True,
                      note=f"registered by the operator as {reference}; package of {package.size} bytes delivered")

    async def poll(self, endpoint: str, reference: str, *, timeout: float) -> Answer:
        body = await self._call("GET", f"{endpoint.rstrip('/')}/{quote(reference, safe='')}", reference, timeout)
        try:
            status = json.loads(body)
            steps = tuple(_step(item) for item in status.get("steps", []))
            document = status.get("document") if status.get("final") else None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConnectorError("PROVIDER_BAD_RESPONSE", "unreadable status from the back-end",
                                 transient=False) from None
        if document is not None:
            return Answer(document=str(document).encode(), refused=bool(status.get("refused")), steps=steps)
        return Answer(reference=reference, polled=True, steps=steps)

    async def _call(self, method: str, url: str, session_id: str, timeout: float, **kwargs: Any) -> bytes:
        try:
            async with self._session.request(method, url, timeout=aiohttp.ClientTimeout(total=timeout),
                                             **kwargs) as response:
                body = await _read_bounded(response.content, MAX_ANSWER_BYTES + 1)
                status = response.status
        except TimeoutError:
            raise ConnectorError("PROVIDER_TIMEOUT", f"no answer within {timeout:.0f}s", transient=True) from None
        except aiohttp.ClientError as exc:
            log.warning("session %s: back-end %s unreachable: %s: %s", session_id, url, type(exc).__name__, exc)
            raise ConnectorError("PROVIDER_UNAVAILABLE", UNREACHABLE, transient=True) from None
        except asyncio.CancelledError:
            raise
        if len(body) > MAX_ANSWER_BYTES:
            raise ConnectorError("PROVIDER_BAD_RESPONSE", "answer larger than 4 MiB", transient=False)
        if status >= 500:
            raise ConnectorError("PROVIDER_UNAVAILABLE", f"back-end answered HTTP {status}", transient=True)
        if status >= 400:
            raise ConnectorError("PROVIDER_REJECTED", _problem_detail(body, status), transient=False)
        return body


async def _stream(package: PackageSource) -> AsyncIterator[bytes]:
    async for chunk in package.chunks(CHUNK):
        yield chunk


def _step(item: dict[str, Any]) -> Step:
    return Step(code=str(item["code"]), name=str(item.get("name") or item["code"]),
                started_at=item.get("startedAt"), due_at=item.get("dueAt"), completed_at=item.get("completedAt"))
