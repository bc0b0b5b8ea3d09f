"""Refusals over HTTP: RFC 9457 problem documents in the caller's language, and the one error wrapper that
turns anything a handler raises into one (never a stack trace)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from aiohttp import web
from redis.exceptions import RedisError

from gateway.errors import GatewayError, pick_language, storage_refusal
from signing.idnumbers import mask_url

RETRY_AFTER_SECONDS = 5
"What a 503 refusal (GATEWAY_OVERLOADED, GATEWAY_STORAGE_UNAVAILABLE) asks the caller to wait, in Retry-After."


def language_of(request: web.Request) -> str:
    return pick_language(request.headers.get("Accept-Language"), request.query.get("lang"))


def problem(error: GatewayError, language: str, session_id: str | None = None) -> web.Response:
    """An RFC 9457 problem document for a refusal, with the message in all three languages."""
    body: dict[str, Any] = {
        "type": f"urn:egov-gateway:error:{error.code}",
        "title": error.message(language),
        "status": error.spec.http_status,
        "code": error.code,
        "party": str(error.spec.party),
        "messages": dict(error.spec.messages),
    }
    if error.detail:
        body["detail"] = error.detail
    if error.sub_indication:
        body["subIndication"] = error.sub_indication
    if error.report:
        body["validationReport"] = error.report
    if session_id:
        body["sessionId"] = session_id
    headers = {"Content-Language": language}
    if error.spec.http_status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="egov-gateway"'
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    elif error.spec.http_status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return web.json_response(
        body, status=error.spec.http_status, content_type="application/problem+json", headers=headers,
        dumps=lambda o: json.dumps(o, ensure_ascii=False),
    )


P = ParamSpec("P")
R = TypeVar("R", bound=web.StreamResponse)


def guarded(
    handler: Callable[Concatenate[web.Request, P], Awaitable[R]],
) -> Callable[Concatenate[web.Request, P], Awaitable[R | web.Response]]:
    """Refusals become problem documents; storage trouble is a 503; nothing leaks a stack trace."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request, /, *args: P.args, **kwargs: P.kwargs) -> R | web.Response:
        try:
            return await handler(request, *args, **kwargs)
        except GatewayError as error:
            return problem(error, language_of(request))
        except RedisError as exc:
            return problem(storage_refusal(exc), language_of(request))
        except Exception:
            logging.getLogger("egov.http").exception("unexpected error in %s", mask_url(request.raw_path))
            return problem(GatewayError("GATEWAY_INTERNAL"), language_of(request))

    return wrapper
