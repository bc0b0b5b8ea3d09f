"""REST twin of SendMessage: ``POST /api/v1/requests`` with a JSON envelope of the same fields.

::

    {"requestInfo": {"messageId": "...", "correlationId": "...", "serviceId": "...",
                     "messageDate": "2026-11-22T10:00:00+05:00",
                     "sender": {"senderId": "portal", "password": "..."},
                     "properties": [{"key": "...", "value": "..."}]},
     "requestData": {"data": "<signed business document as an XML string>"}}

The answer mirrors ``SendMessageResponse``; refusals are RFC 9457 problem documents.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, tzinfo
from typing import Any

from aiohttp import web

from gateway.errors import GatewayError
from gateway.intake.context import INTAKE
from gateway.intake.pipeline import SUCCESS_CODE, SUCCESS_MESSAGE, IntakeRequest, Outcome, new_session_id
from gateway.intake.reading import parse_datetime, parse_xml, service_label
from gateway.intake.soap_io import body_of
from gateway.monitor.metrics import observe_request
from gateway.web.json_body import checked_text, loads_text
from gateway.web.problems import language_of, problem
from gateway.web.reading import read_body
from signing.xmlsafe import XmlLimits

log = logging.getLogger("egov.rest")

# Same bounds as the SyncChannel XSD, so both channels accept exactly the same requests.
_ID_MAX, _PASSWORD_MAX, _KEY_MAX, _VALUE_MAX = 200, 200, 30, 500


async def handle_request(request: web.Request) -> web.Response:
    components = request.app[INTAKE]
    language = language_of(request)
    session_id = new_session_id()
    started, intake, code = time.perf_counter(), None, SUCCESS_CODE
    try:
        with components.pipeline.admit():  # the in-flight gate, before anything is read
            intake, raw = await _read_request(request, components.pipeline.logs_requests)
            outcome = await components.pipeline.process(intake, session_id, client=request.remote, raw=raw)
            response = _answer(intake, outcome)
            await components.pipeline.log_answer(intake, outcome, body_of(response))
        return response
    except GatewayError as error:
        code = error.code
        return problem(error, language, session_id)
    except Exception:  # never a stack trace to the caller
        log.exception("unexpected error in %s", session_id)
        code = "GATEWAY_INTERNAL"
        return problem(GatewayError(code), language, session_id)
    finally:
        service = service_label(components.registry, intake.service_id if intake else None)
        observe_request("rest", service, code, started)


async def _read_request(request: web.Request, keep_body: bool) -> tuple[IntakeRequest, bytes | None]:
    """The request, and its body when ``keep_body`` (for the message log). Otherwise the body goes once decoded
    and the document's text once encoded, so a big document is held at most twice at any moment here, and once,
    as its tree, when its signature is checked."""
    if request.content_type != "application/json":
        raise GatewayError("CLIENT_UNSUPPORTED_MEDIA_TYPE", "application/json is required")
    limits = request.app[INTAKE].settings.limits
    body = await read_body(request, limits.max_body_bytes)
    text = checked_text(body, max_bytes=limits.max_body_bytes)  # no RecursionError on [[[[...
    kept = body if keep_body else None
    del body  # a big one goes before its JSON is parsed
    envelope = loads_text(text)
    del text
    xml_limits = XmlLimits(limits.max_body_bytes, limits.max_xml_depth, limits.max_xml_elements)
    return _read_envelope(envelope, xml_limits, request.app[INTAKE].settings.shep.zone()), kept


def _answer(intake: IntakeRequest, outcome: Outcome) -> web.Response:
    return web.json_response({
        "responseInfo": {
            "messageId": str(uuid.uuid4()),
            "correlationId": intake.message_id,
            "responseDate": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "status": {"code": SUCCESS_CODE, "message": SUCCESS_MESSAGE},
            "sessionId": outcome.application.id,
        },
        "responseData": {"data": outcome.result.decode() if outcome.result is not None else None},
        "applicationStatus": str(outcome.application.status),
        "receipt": outcome.application.receipt,
    })


def _field(obj: Any, name: str, where: str, *, required: bool = True, limit: int = _ID_MAX) -> str | None:
    value = obj.get(name) if isinstance(obj, dict) else None
    if value is None:
        if required:
            raise GatewayError("CLIENT_ENVELOPE_INVALID", f"{where}.{name} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise GatewayError("CLIENT_ENVELOPE_INVALID", f"{where}.{name} must be a string of 1..{limit} characters")
    return value


def _read_envelope(envelope: Any, limits: XmlLimits, local_zone: tzinfo) -> IntakeRequest:
    if not isinstance(envelope, dict) or not isinstance(envelope.get("requestInfo"), dict):
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "requestInfo is required")
    info = envelope["requestInfo"]
    sender = info.get("sender")
    if not isinstance(sender, dict):
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "requestInfo.sender is required")
    properties: dict[str, str] = {}
    raw_properties = info.get("properties") or []
    if not isinstance(raw_properties, list):
        raise GatewayError("CLIENT_ENVELOPE_INVALID", "requestInfo.properties must be a list")
    for index, prop in enumerate(raw_properties):
        where = f"requestInfo.properties[{index}]"
        key = _field(prop, "key", where, limit=_KEY_MAX)
        properties[key or ""] = _field(prop, "value", where, limit=_VALUE_MAX) or ""
    # Taken out of the JSON and dropped once encoded: a big document is not held as text while it is parsed.
    data = envelope["requestData"].pop("data", None) if isinstance(envelope.get("requestData"), dict) else None
    document = None
    if data is not None:
        if not isinstance(data, str):
            raise GatewayError("CLIENT_ENVELOPE_INVALID", "requestData.data must be an XML string")
        encoded = data.encode()
        del data
        document = parse_xml(encoded, limits, "requestData.data: ")
    return IntakeRequest(
        channel="rest",
        message_id=_field(info, "messageId", "requestInfo") or "",
        correlation_id=_field(info, "correlationId", "requestInfo", required=False),
        service_id=_field(info, "serviceId", "requestInfo") or "",
        message_date=parse_datetime(_field(info, "messageDate", "requestInfo") or "", local_zone),
        sender_id=_field(sender, "senderId", "requestInfo.sender") or "",
        password=_field(sender, "password", "requestInfo.sender", required=False, limit=_PASSWORD_MAX),
        properties=properties,
        document=document,
    )
