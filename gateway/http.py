"""Shared HTTP plumbing of the intakes: the component bundle, body limits, sender auth, problem documents."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from lxml import etree
from redis.exceptions import RedisError

from gateway.config import Settings
from gateway.errors import GatewayError, pick_language
from gateway.senders import AuthenticatedSender, SenderDirectory
from signing.idnumbers import mask_ids
from signing.xmlsafe import UnsafeXmlError, XmlLimits, parse_untrusted

if TYPE_CHECKING:  # annotations only: the components import this module for its helpers
    from connectors.queue import JobQueue
    from gateway.delivery import Delivery
    from gateway.notifications import Notifier
    from gateway.pipeline import Pipeline
    from gateway.store import ApplicationStore
    from gateway.workcalendar import WorkingCalendar


@dataclass(frozen=True)
class Components:
    """Everything the handlers need, built once at start-up."""

    settings: Settings
    "The configuration in force."
    pipeline: Pipeline
    "The request pipeline."
    store: ApplicationStore
    "Application storage."
    senders: SenderDirectory
    "Sender authentication."
    sync_wsdl: bytes
    "The served SyncChannel WSDL (address filled in)."
    delivery: Delivery
    "Background delivery, retries and breakers."
    jobs: JobQueue
    "The back-office job queue."
    session: aiohttp.ClientSession
    "The one outgoing HTTP session (back-ends, callbacks)."
    notifier: Notifier
    "AsyncChannel inbox and callbacks."
    calendar: WorkingCalendar
    "Kazakhstan working days, for deadlines."


COMPONENTS = web.AppKey("components", Components)


def language_of(request: web.Request) -> str:
    return pick_language(request.headers.get("Accept-Language"), request.query.get("lang"))


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a larger body is refused before it is buffered whole."""
    if request.content_length is not None and request.content_length > limit:
        raise GatewayError("CLIENT_BODY_TOO_LARGE", f"limit is {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise GatewayError("CLIENT_BODY_TOO_LARGE", f"limit is {limit} bytes")
    return body


def basic_auth_sender(request: web.Request, senders: SenderDirectory) -> AuthenticatedSender:
    """Authenticate a sender from HTTP Basic credentials (senderId:password)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        raise GatewayError("CLIENT_BAD_CREDENTIALS", "HTTP Basic credentials (senderId:password) are required")
    try:
        sender_id, _, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise GatewayError("CLIENT_BAD_CREDENTIALS", "unreadable Basic credentials") from None
    return senders.authenticate(sender_id, password)


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
    if error.spec.http_status == 503:
        headers["Retry-After"] = "5"
    return web.json_response(
        body, status=error.spec.http_status, content_type="application/problem+json", headers=headers,
        dumps=lambda o: json.dumps(o, ensure_ascii=False),
    )


_XML_ERROR_CODES = {"too_large": "CLIENT_BODY_TOO_LARGE", "forbidden": "CLIENT_FORBIDDEN_XML"}


def parse_xml(data: bytes, limits: XmlLimits, where: str = "") -> etree._Element:
    """Parse untrusted XML, turning a refusal into the matching CLIENT_* error."""
    try:
        return parse_untrusted(data, limits)
    except UnsafeXmlError as exc:
        code = _XML_ERROR_CODES.get(exc.reason, "CLIENT_MALFORMED_XML")
        raise GatewayError(code, f"{where}{exc.detail}") from None


def parse_datetime(value: str) -> datetime:
    """xsd:dateTime to an aware datetime; a value without offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", f"messageDate {value!r} is not an ISO dateTime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def guarded(handler):  # type: ignore[no-untyped-def]
    """Refusals become problem documents; storage trouble is a 503; nothing leaks a stack trace."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request, *args: Any) -> web.StreamResponse:
        try:
            return await handler(request, *args)
        except GatewayError as error:
            return problem(error, language_of(request))
        except RedisError:
            return problem(GatewayError("GATEWAY_STORAGE_UNAVAILABLE"), language_of(request))
        except Exception:
            logging.getLogger("egov.http").exception("unexpected error in %s", mask_ids(request.path))
            return problem(GatewayError("GATEWAY_INTERNAL"), language_of(request))

    return wrapper
