"""REST connector: POST the business document as application/xml over one shared client session."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from connectors.base import Answer, ConnectorError, Submission

MAX_ANSWER_BYTES = 4 * 1024 * 1024
UNREACHABLE = "the back-end could not be reached"
"The outward detail of every connection failure (the address and the library's text go to the log only)."
log = logging.getLogger("egov.connectors")
IDEMPOTENCY_HEADER = "Idempotency-Key"
"Carries the application id on every POST: every attempt at one application is one request to the back-end."


class RestConnector:
    """One instance per gateway process; the aiohttp session keeps connections to back-ends alive.

    Every POST carries the application id as ``Idempotency-Key`` (and ``X-Request-Id``). The answer comes within
    the call: at most 4 MiB, ``application/xml`` or ``text/xml``, HTTP 2xx.
    5xx, timeouts and connection failures are transient; 4xx, oversize and other content types are not.
    A :class:`ConnectorError`'s detail reaches callers, so it never names the back-end's address or the
    client library's exception text: those are logged here under the session id (``application_id``).
    """

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def submit(self, submission: Submission) -> Answer:
        return Answer(document=await self._post(submission))

    async def poll(self, endpoint: str, reference: str, *, timeout: float) -> Answer:
        """REST back-ends answer within ``submit``; there is nothing to poll."""
        raise ConnectorError("PROVIDER_BAD_RESPONSE", "a REST back-end is not polled", transient=False)

    async def _post(self, submission: Submission) -> bytes:
        timeout = submission.timeout
        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            "Accept": "application/xml",
            "X-Request-Id": submission.application_id,
            # A redelivery after a crash or a retry is the same request: the back-end answers it once.
            IDEMPOTENCY_HEADER: submission.application_id,
        }
        try:
            async with self._session.post(
                submission.endpoint, data=submission.document, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                body = await _read_bounded(response.content, MAX_ANSWER_BYTES + 1)
                status = response.status
                content_type = response.content_type
        except TimeoutError:
            raise ConnectorError("PROVIDER_TIMEOUT", f"no answer within {timeout}s", transient=True) from None
        except aiohttp.ClientError as exc:
            log.warning("session %s: back-end %s unreachable: %s: %s", submission.application_id,
                        submission.endpoint, type(exc).__name__, exc)
            raise ConnectorError("PROVIDER_UNAVAILABLE", UNREACHABLE, transient=True) from None
        except asyncio.CancelledError:
            raise
        check_answer(body, status)
        if content_type not in ("application/xml", "text/xml"):
            raise ConnectorError("PROVIDER_BAD_RESPONSE", f"unexpected content type {content_type}",
                                 transient=False)
        return body


def check_answer(body: bytes, status: int) -> None:
    """Refuse an answer read with :func:`_read_bounded` (up to ``MAX_ANSWER_BYTES + 1``) that is too large,
    a 5xx (transient: retried) or a 4xx (the back-end's refusal, final)."""
    if len(body) > MAX_ANSWER_BYTES:
        raise ConnectorError("PROVIDER_BAD_RESPONSE", "answer larger than 4 MiB", transient=False)
    if status >= 500:
        raise ConnectorError("PROVIDER_UNAVAILABLE", f"back-end answered HTTP {status}", transient=True)
    if status >= 400:
        raise ConnectorError("PROVIDER_REJECTED", _problem_detail(body, status), transient=False)


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body (``StreamReader.read(n)`` returns only what is buffered so far)."""
    body = bytearray()
    while len(body) < limit:
        chunk = await stream.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _problem_detail(body: bytes, status: int) -> str:
    """The back-end's own reason from an RFC 9457 problem document, when it sent one."""
    try:
        problem = json.loads(body)
        return f"HTTP {status} {problem.get('code', '')}: {problem.get('detail') or problem.get('title')}"[:500]
    except (ValueError, AttributeError):
        return f"back-end answered HTTP {status}"
