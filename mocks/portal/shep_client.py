"""The portal's side of SHEP SyncChannel: a zeep client built from the gateway's own WSDL.

zeep writes an lxml element into ``data`` (xsd:anyType) only when it is wrapped in an AnyObject of a
named complex type with an ``xsd:any`` sequence (``connectors.soap.any_type``); a bare element would be sent as
its repr() text.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import zeep
from lxml import etree
from zeep.exceptions import Fault

from connectors.soap import WsSecuritySigning, any_type
from signing.signer import SigningKey


@dataclass(frozen=True)
class SendResult:
    """What came back for one SendMessage: a result document or a fault."""

    ok: bool
    "True for SCSS001."
    status_code: str
    "status/code on success, errorCode on a fault."
    message: str
    "status/message or errorMessage."
    session_id: str | None
    "The gateway's session id."
    document: etree._Element | None = None
    "The signed result document (own tree), on success."
    error_data: dict[str, Any] = field(default_factory=dict)
    "Parsed errorData of a fault (messages, subIndication, validationReport)."


def _wsse(key: SigningKey | None) -> WsSecuritySigning | None:
    """With a key (a system certificate's, e.g. the test PKI's ``portal``), every request is WS-Security-signed."""
    return WsSecuritySigning(key) if key is not None else None


class SyncChannelClient:
    """Blocking client (zeep); call it from a thread in async code. ``ws_security_key`` signs every envelope
    with WS-Security (for a sender whose entry has ``auth = ["ws-security"]``)."""

    def __init__(self, wsdl_url: str, *, timeout: float = 30.0, ws_security_key: SigningKey | None = None) -> None:
        transport = zeep.Transport(timeout=timeout, operation_timeout=timeout)
        self._client = zeep.Client(wsdl_url, transport=transport, wsse=_wsse(ws_security_key))
        self._service = self._client.service

    def send(
        self,
        *,
        service_id: str,
        sender_id: str,
        password: str | None,
        document: etree._Element,
        message_id: str | None = None,
        message_date: datetime | None = None,
        properties: dict[str, str] | None = None,
    ) -> SendResult:
        request = {
            "requestInfo": {
                "messageId": message_id or str(uuid.uuid4()),
                "serviceId": service_id,
                "messageDate": message_date or datetime.now(UTC),
                "sender": {"senderId": sender_id, "password": password},
                "properties": [{"key": k, "value": v} for k, v in (properties or {}).items()],
            },
            "requestData": {"data": any_type(document)},
        }
        try:
            response = self._service.SendMessage(request=request)
        except Fault as fault:
            return _from_fault(fault)
        info = response.responseInfo
        children = response.responseData.data if response.responseData is not None else None
        document_out = copy.deepcopy(children[0]) if children else None
        return SendResult(
            ok=info.status.code == "SCSS001", status_code=info.status.code, message=info.status.message,
            session_id=info.sessionId, document=document_out,
        )


def _from_fault(fault: Fault) -> SendResult:
    detail = fault.detail
    info = detail[0] if detail is not None and len(detail) else None
    if info is None:
        return SendResult(ok=False, status_code="SOAP_FAULT", message=str(fault.message), session_id=None)
    error_data: dict[str, Any] = {}
    raw = info.findtext("errorData")
    if raw:
        try:
            error_data = json.loads(raw)
        except ValueError:
            error_data = {"raw": raw}
    return SendResult(
        ok=False,
        status_code=info.findtext("errorCode") or "",
        message=info.findtext("errorMessage") or "",
        session_id=info.findtext("sessionId"),
        error_data=error_data,
    )


class AsyncChannelClient:
    """The portal's AsyncChannel sendMessage (zeep, blocking; call it from a thread in async code)."""

    def __init__(self, wsdl_url: str, *, timeout: float = 30.0, ws_security_key: SigningKey | None = None) -> None:
        transport = zeep.Transport(timeout=timeout, operation_timeout=timeout)
        self._service = zeep.Client(wsdl_url, transport=transport, wsse=_wsse(ws_security_key)).service

    def send(self, *, service_id: str, sender_id: str, password: str | None, document: etree._Element,
             message_id: str | None = None) -> SendResult:
        request = {
            "messageInfo": {
                "messageId": message_id or str(uuid.uuid4()), "serviceId": service_id, "messageType": "REQUEST",
                "messageDate": datetime.now(UTC), "sender": {"senderId": sender_id, "password": password},
            },
            "messageData": {"data": any_type(document)},
        }
        try:
            response = self._service.sendMessage(request=request)
        except Fault as fault:
            return _from_fault(fault)
        return SendResult(ok=True, status_code="ACCEPTED", message=f"correlationId {response.correlationId}",
                          session_id=response.sessionId)
