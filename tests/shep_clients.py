"""SHEP v10 clients as real integrators build them, shared by the conformance tests: zeep clients and a callback
receiver made from the test tree's WSDL/XSD (tests/conformance/shep_v10, written from the public v10 names,
orders and namespaces; not our served files), and strict lxml validators of every answer, fault and callback.
Not a test module."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import zeep
from aiohttp import web
from lxml import etree
from zeep import xsd
from zeep.exceptions import Fault
from zeep.plugins import HistoryPlugin

from signing.signer import SigningKey
from signing.wssecurity_sign import sign_envelope
from tests.helpers import SOAP_ENV

TREE = Path(__file__).resolve().parent / "conformance" / "shep_v10"
OPS = "http://bip.bee.kz/AsyncChannel/v10/Types"
CLIENT = "http://bip.bee.kz/AsyncChannel/v10/Types/Client"
SYNC = "http://bip.bee.kz/SyncChannel/v10/Types"
ALMATY = ZoneInfo("Asia/Almaty")
# A client's own generated type for the document: zeep names it in xsi:type on data, as real clients do.
CLIENT_DOCUMENT = xsd.ComplexType(xsd.Sequence([xsd.Any()]), qname=etree.QName("urn:client:types", "Application"))
STRICT = zeep.Settings(strict=True, xml_huge_tree=False)


def tree_schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(TREE / name), parser))


SCHEMAS = {SYNC: tree_schema("SyncChannel_v10_Types.xsd"), OPS: tree_schema("IAsyncChannel_Types.xsd"),
           CLIENT: tree_schema("IAsyncChannelClient_Types.xsd")}


def strictly_valid(element: etree._Element) -> etree._Element:
    """``element`` (a Body child or a fault detail) validated against the test tree's schema of its namespace."""
    schema = SCHEMAS[etree.QName(element).namespace or ""]
    copied = etree.fromstring(etree.tostring(element))
    assert schema.validate(copied), f"{etree.QName(element).localname}: {schema.error_log.last_error}"
    return element


class WsSecurity:
    """zeep's ``wsse`` hook signing each outgoing envelope as a SmartBridge client does (its own ``lifetime``)."""

    def __init__(self, key: SigningKey, lifetime: timedelta = timedelta(minutes=5)) -> None:
        self.key, self.lifetime = key, lifetime

    def apply(self, envelope: etree._Element, headers: dict[str, str]) -> tuple[etree._Element, dict[str, str]]:
        return sign_envelope(envelope, self.key, lifetime=self.lifetime), headers

    def verify(self, envelope: etree._Element) -> None:
        """Our answers are not WS-Security-signed."""


class RealClient:
    """A blocking zeep client of one test-tree WSDL, pointed at ``address``, keeping what came back; with
    ``wsse`` every request is signed with WS-Security."""

    def __init__(self, wsdl: str, address: str, *, wsse: WsSecurity | None = None) -> None:
        self.history = HistoryPlugin()
        client = zeep.Client(str(TREE / wsdl), settings=STRICT, plugins=[self.history], wsse=wsse)
        self.service = client.create_service(next(iter(client.wsdl.bindings)), address)

    def call(self, operation: str, **request: Any) -> Any:
        """Call ``operation``; the answer's Body child must be valid against the test tree's schema."""
        answer = getattr(self.service, operation)(request=request)
        (body,) = self.history.last_received["envelope"].find(f"{{{SOAP_ENV}}}Body")
        strictly_valid(body)
        return answer

    def refused(self, operation: str, **request: Any) -> etree._Element:
        """Call ``operation`` expecting a Fault; its detail element, validated."""
        with pytest.raises(Fault) as caught:
            getattr(self.service, operation)(request=request)
        (detail,) = caught.value.detail
        return strictly_valid(detail)

    def last_sent(self) -> etree._Element:
        """A copy of the envelope last sent, as it went (signed, with a ``wsse``)."""
        sent = self.history.last_sent
        assert sent is not None, "nothing sent yet"
        envelope: etree._Element = copy.deepcopy(sent["envelope"])
        return envelope


def document_data(document: etree._Element) -> xsd.AnyObject:
    return xsd.AnyObject(CLIENT_DOCUMENT, {"_value_1": copy.deepcopy(document)})


def local_now() -> datetime:
    """Kazakhstan wall-clock time without an offset, as Kazakh clients send messageDate."""
    return datetime.now(ALMATY).replace(tzinfo=None)


def async_message(document: etree._Element, sender: dict[str, str], *, service_id: str,
                  **info: Any) -> dict[str, Any]:
    """An AsyncChannel ``sendMessage`` request (zeep's keywords); ``info`` adds to or replaces messageInfo fields."""
    return {"messageInfo": {"serviceId": service_id, "messageType": "REQUEST", "messageDate": local_now(),
                            "sender": sender, **info},
            "messageData": {"data": document_data(document)}}


async def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(lambda: function(*args, **kwargs))


async def post(http: aiohttp.ClientSession, url: str, body: bytes, **headers: str) -> etree._Element:
    """POST ``body`` with only ``headers`` (no Content-Type unless given); the Body child (a Fault's detail
    element), strictly valid."""
    async with http.post(url, data=body, headers=headers, skip_auto_headers=["Content-Type"]) as response:
        envelope = etree.fromstring(await response.read())
    (child,) = envelope.find(f"{{{SOAP_ENV}}}Body")
    if child.tag == f"{{{SOAP_ENV}}}Fault":
        (child,) = child.find("detail")
    return strictly_valid(child)


# ---------------------------------------------------------------- the client side: IAsyncChannelClient


@dataclass
class Receiver:
    """What a client-side endpoint built from the test tree's IAsyncChannelClient WSDL took, parsed strictly."""

    answers: list[Any] = field(default_factory=list)
    "sendMessage callbacks, as zeep parsed them."
    statuses: list[Any] = field(default_factory=list)
    "changeMassageStatusNotification callbacks, as zeep parsed them."
    refused: list[str] = field(default_factory=list)
    "Why callbacks that were not in the client namespace or not valid were refused (400)."


RECEIVER = web.AppKey("receiver", Receiver)


def receiver_app() -> web.Application:
    """``POST /client``: an IAsyncChannelClient endpoint that takes only callbacks valid in its own namespace."""
    client = zeep.Client(str(TREE / "AsyncChannelClient_v10.wsdl"), settings=STRICT)
    binding = client.wsdl.bindings[next(iter(client.wsdl.bindings))]

    async def take(request: web.Request) -> web.Response:
        envelope = etree.fromstring(await request.read())
        (operation,) = envelope.find(f"{{{SOAP_ENV}}}Body")
        name = etree.QName(operation).localname
        schema = SCHEMAS[CLIENT]
        if etree.QName(operation).namespace != CLIENT or not schema.validate(operation):
            request.app[RECEIVER].refused.append(f"{operation.tag}: {schema.error_log.last_error}")
            return web.Response(status=400)
        parsed = binding.get(name).input.deserialize(envelope)  # zeep, strict: an unknown element raises
        now = datetime.now(UTC)
        if name == "sendMessage":
            request.app[RECEIVER].answers.append(parsed)
            info = parsed.messageInfo
            response: dict[str, Any] = {"messageId": info.messageId, "correlationId": info.correlationId,
                                        "responseDate": now}
        else:
            request.app[RECEIVER].statuses.append(parsed)
            response = {"responseDate": now, "sessionId": "client-session"}
        answer = binding.get(name).output.serialize(response=response)
        return web.Response(body=etree.tostring(answer.content), content_type="text/xml")

    app = web.Application()
    app[RECEIVER] = Receiver()
    app.router.add_post("/client", take)
    return app
