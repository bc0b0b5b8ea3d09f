"""Package connector: a document with a large package behind it (the software deposit), to a REST back-end.

``submit`` POSTs the document (``application/xml``, ``Idempotency-Key`` = the application id) to the endpoint
(e.g. ``.../api/v1/deposits``), which registers it and answers JSON ``{"reference"}``; then PUTs the package to
``<endpoint>/<reference>/package``, streamed from the gateway's storage with its Content-Length and Content-Digest
(:func:`connectors.streaming.send_stream`), never held in memory; the call timeout bounds each wait on the socket,
not the whole transfer. A retry repeats both: the back-end answers the repeated POST with the first registration and a
repeated PUT once it has the package. ``poll`` GETs ``<endpoint>/<reference>``: JSON ``{"steps": [...],
"final", "refused", "document"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from connectors.base import Answer, ConnectorError, Step, Submission
from connectors.rest import IDEMPOTENCY_HEADER, MAX_ANSWER_BYTES, UNREACHABLE, _read_bounded, check_answer
from connectors.streaming import StreamedBody, send_stream

log = logging.getLogger("egov.connectors")
CHUNK = 256 * 1024


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
        url = f"{submission.endpoint.rstrip('/')}/{quote(reference, safe='')}/package"
        await send_stream(self._session, url, StreamedBody(package.chunks(CHUNK), package.size, package.sha256),
                          idempotency_key=f"{submission.application_id}:package", read_timeout=submission.timeout)
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
        check_answer(body, status)
        return body


def _step(item: dict[str, Any]) -> Step:
    return Step(code=str(item["code"]), name=str(item.get("name") or item["code"]),
                started_at=item.get("startedAt"), due_at=item.get("dueAt"), completed_at=item.get("completedAt"))
