"""SHEP AsyncChannel v10 XSD/WSDL package data: instances, namespace alias, and zeep over both WSDLs."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
import zeep
from lxml import etree

import schemas
from schemas import (
    ASYNC_CLIENT_WSDL,
    ASYNC_TYPES_NS,
    ASYNC_TYPES_NS_UPPER,
    ASYNC_TYPES_XSD,
    ASYNC_WSDL,
    ASYNC_WSDL_NS,
)
from tests.helpers import SOAP_ENV, WSDL_NS, XSD_NS, any_content

SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
NSMAP = {"w": WSDL_NS, "s": SOAP_NS, "x": XSD_NS}
SESSION_ID = "{0f8fad5b-d9cb-469f-a165-70867728950e}"
DOC = b'<app:Application xmlns:app="urn:x" Id="a1"><app:iin>900101300123</app:iin></app:Application>'

MESSAGE_INFO = f"""\
<messageInfo>
  <messageId>6b0f5c3e-1b3a-4c55-9d0e-2f1f4f8f0a01</messageId>
  <correlationId>c-1</correlationId>
  <serviceId>APPLICATION_INTAKE</serviceId>
  <messageType>REQUEST</messageType>
  <messageDate>2024-05-01T10:00:00+05:00</messageDate>
  <routeId>r-1</routeId>
  <sender><senderId>portal</senderId><password>secret</password></sender>
  <properties><key>channel</key><value>web</value></properties>
  <sessionId>{SESSION_ID}</sessionId>
  <SenderCorrelationId>portal-42</SenderCorrelationId>
</messageInfo>"""

VALID_SEND_MESSAGE = f"""\
<t:sendMessage xmlns:t="{ASYNC_TYPES_NS}"><request>
{MESSAGE_INFO}
<messageData><data>{DOC.decode()}</data></messageData>
</request></t:sendMessage>"""

VALID_GET_MESSAGES = f"""\
<t:getMessages xmlns:t="{ASYNC_TYPES_NS}"><request>
  <serviceId>APPLICATION_INTAKE</serviceId>
  <messageId>m-1</messageId>
  <correlationId>c-1</correlationId>
  <requestDate>2024-05-01T10:00:00Z</requestDate>
  <sender><senderId>portal</senderId></sender>
  <amount>10</amount>
  <properties><key>channel</key><value>web</value></properties>
</request></t:getMessages>"""

VALID_GET_MESSAGE_STATUS_RESPONSE = f"""\
<t:getMessageStatusResponse xmlns:t="{ASYNC_TYPES_NS}"><response>
  <messageState>DELIVERED</messageState>
  <status><code>SCSS001</code><message>Message has been processed successfully</message></status>
  <responseDate>2024-05-01T10:00:01Z</responseDate>
</response></t:getMessageStatusResponse>"""

# Every global element with a minimal (or full) valid instance, keyed by a readable id.
VALID_INSTANCES = {
    "sendMessage": VALID_SEND_MESSAGE,
    "sendMessage-minimal": f"""<t:sendMessage xmlns:t="{ASYNC_TYPES_NS}"><request>
      <messageInfo><messageId>m-1</messageId><serviceId>S</serviceId><messageType>UPDATE</messageType>
        <messageDate>2024-05-01T10:00:00Z</messageDate><sender><senderId>p</senderId></sender></messageInfo>
      <messageData/></request></t:sendMessage>""",
    "sendMessageResponse": f"""<t:sendMessageResponse xmlns:t="{ASYNC_TYPES_NS}"><response>
      <messageId>m-1</messageId><correlationId>c-1</correlationId>
      <responseDate>2024-05-01T10:00:01Z</responseDate><sessionId>{SESSION_ID}</sessionId>
    </response></t:sendMessageResponse>""",
    "getMessages": VALID_GET_MESSAGES,
    "getMessages-minimal": f"""<t:getMessages xmlns:t="{ASYNC_TYPES_NS}"><request>
      <serviceId>S</serviceId></request></t:getMessages>""",
    "getMessagesResponse": f"""<t:getMessagesResponse xmlns:t="{ASYNC_TYPES_NS}"><response>
      <responseDate>2024-05-01T10:00:01Z</responseDate><sessionId>{SESSION_ID}</sessionId>
      <messages>{MESSAGE_INFO.replace("REQUEST", "RESPONSE")}<messageData><data>ok</data></messageData></messages>
      <messages>{MESSAGE_INFO.replace("REQUEST", "NOTIFICATION")}<messageData/></messages>
    </response></t:getMessagesResponse>""",
    "getMessagesResponse-empty": f"""<t:getMessagesResponse xmlns:t="{ASYNC_TYPES_NS}"><response>
      <responseDate>2024-05-01T10:00:01Z</responseDate><sessionId>{SESSION_ID}</sessionId>
    </response></t:getMessagesResponse>""",
    "getMessageStatus": f"""<t:getMessageStatus xmlns:t="{ASYNC_TYPES_NS}"><request>
      <messageId>m-1</messageId><requestDate>2024-05-01T10:00:00Z</requestDate>
      <sender><senderId>portal</senderId><password>secret</password></sender>
    </request></t:getMessageStatus>""",
    "getMessageStatusResponse": VALID_GET_MESSAGE_STATUS_RESPONSE,
    "sendDeliveryNotification": f"""<t:sendDeliveryNotification xmlns:t="{ASYNC_TYPES_NS}"><request>
      <sender><senderId>portal</senderId></sender>
      <notification><messageId>m-1</messageId><serviceId>S</serviceId>
        <notificationDate>2024-05-01T10:00:00Z</notificationDate>
        <deliveryStatus><receiveStatus>MESSAGE_NOT_ACCTEPTED</receiveStatus>
          <statusDate>2024-05-01T10:00:00Z</statusDate><resendMessage>RESEND</resendMessage>
          <error><errorCode>E1</errorCode><errorMessage>broken</errorMessage>
            <errorDate>2024-05-01T10:00:00Z</errorDate></error>
        </deliveryStatus></notification>
    </request></t:sendDeliveryNotification>""",
    "sendDeliveryNotificationResponse": f"""<t:sendDeliveryNotificationResponse xmlns:t="{ASYNC_TYPES_NS}">
      <response><responseDate>2024-05-01T10:00:01Z</responseDate></response>
    </t:sendDeliveryNotificationResponse>""",
    "changeMassageStatusNotification": f"""<t:changeMassageStatusNotification xmlns:t="{ASYNC_TYPES_NS}"><request>
      <messageId>m-1</messageId><correlationId>c-1</correlationId><messageState>DELIVERY_STOPPED</messageState>
      <status><code>E42</code><message>stopped</message></status><statusDate>2024-05-01T10:00:00Z</statusDate>
    </request></t:changeMassageStatusNotification>""",
    "changeMassageStatusNotificationResponse": f"""
      <t:changeMassageStatusNotificationResponse xmlns:t="{ASYNC_TYPES_NS}">
      <response><responseDate>2024-05-01T10:00:01Z</responseDate></response>
    </t:changeMassageStatusNotificationResponse>""",
    "AsyncChannelFault": f"""<t:AsyncChannelFault xmlns:t="{ASYNC_TYPES_NS}">
      <errorCode>E1</errorCode><errorMessage>outer</errorMessage><errorDate>2024-05-01T10:00:01Z</errorDate>
      <subError><errorCode>E2</errorCode><errorMessage>inner</errorMessage><errorData>d</errorData>
        <errorDate>2024-05-01T10:00:01Z</errorDate></subError>
      <sessionId>{SESSION_ID}</sessionId></t:AsyncChannelFault>""",
}


def _parse(text: str) -> etree._Element:
    return etree.fromstring(text.strip().encode("utf-8"))


def _replace(base: str, old: str, new: str) -> str:
    assert old in base
    return base.replace(old, new, 1)


def _message_info(message_type: str = "REQUEST") -> dict[str, object]:
    return {
        "messageId": "m-1",
        "serviceId": "APPLICATION_INTAKE",
        "messageType": message_type,
        "messageDate": dt.datetime(2024, 5, 1, 5, 0, tzinfo=dt.UTC),
        "sender": {"senderId": "portal", "password": "secret"},
        "properties": [{"key": "channel", "value": "web"}],
        "SenderCorrelationId": "portal-42",
    }


@pytest.fixture(scope="module")
def types_schema() -> etree.XMLSchema:
    return schemas.load_xml_schema(ASYNC_TYPES_XSD)


@pytest.fixture(scope="module")
def wsdl_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wsdl") / "AsyncChannel_v10.wsdl"
    path.write_bytes(schemas.async_channel_wsdl("http://127.0.0.1:1/shep/async"))
    return path


@pytest.fixture(scope="module")
def client_wsdl_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wsdl") / "AsyncChannelClient_v10.wsdl"
    path.write_bytes(schemas.async_client_wsdl("http://127.0.0.1:2/portal/async"))
    return path


# ---------------------------------------------------------------- types XSD


def test_types_schema_is_self_contained() -> None:
    root = etree.fromstring(schemas.read_schema_bytes(ASYNC_TYPES_XSD))
    assert root.get("targetNamespace") == ASYNC_TYPES_NS
    assert root.get("elementFormDefault") is None  # local elements stay unqualified
    assert not root.xpath("x:import | x:include", namespaces=NSMAP)


@pytest.mark.parametrize("name", list(VALID_INSTANCES))
def test_valid_instances(types_schema: etree.XMLSchema, name: str) -> None:
    types_schema.assertValid(_parse(VALID_INSTANCES[name]))


@pytest.mark.parametrize(
    "instance",
    [
        pytest.param(
            _replace(VALID_SEND_MESSAGE, "<messageType>REQUEST<", "<messageType>QUERY<"), id="bad-messageType"
        ),
        pytest.param(_replace(VALID_SEND_MESSAGE, "<messageType>REQUEST</messageType>", ""), id="no-messageType"),
        pytest.param(
            _replace(VALID_SEND_MESSAGE, "<key>channel</key>", f"<key>{'k' * 31}</key>"), id="property-key-31"
        ),
        pytest.param(
            _replace(VALID_SEND_MESSAGE, "<value>web</value>", f"<value>{'v' * 501}</value>"), id="property-value-501"
        ),
        pytest.param(_replace(VALID_SEND_MESSAGE, SESSION_ID, SESSION_ID.strip("{}")), id="sessionId-no-braces"),
        pytest.param(_replace(VALID_SEND_MESSAGE, "<messageId>", f"<messageId>{'x' * 100}"), id="messageId-101"),
        pytest.param(
            _replace(VALID_SEND_MESSAGE, "SenderCorrelationId>", "senderCorrelationId>").replace(
                "</SenderCorrelationId>", "</senderCorrelationId>"
            ),
            id="senderCorrelationId-lowercase",
        ),
        pytest.param(
            _replace(VALID_SEND_MESSAGE, "<request>", f'<request xmlns="{ASYNC_TYPES_NS}">'), id="qualified-children"
        ),
        pytest.param(_replace(VALID_GET_MESSAGES, "<amount>10<", "<amount>0<"), id="amount-0"),
        pytest.param(_replace(VALID_GET_MESSAGES, "<amount>10<", "<amount>-1<"), id="amount-negative"),
        pytest.param(_replace(VALID_GET_MESSAGES, "<amount>10<", "<amount>2147483648<"), id="amount-too-big"),
        pytest.param(
            _replace(VALID_GET_MESSAGES, "<key>channel</key>", f"<key>{'k' * 31}</key>"),
            id="getMessages-property-key-31",
        ),
        pytest.param(
            _replace(VALID_GET_MESSAGES, "<serviceId>APPLICATION_INTAKE</serviceId>", ""), id="getMessages-no-service"
        ),
        pytest.param(
            _replace(VALID_GET_MESSAGE_STATUS_RESPONSE, ">DELIVERED<", ">LOST<"), id="bad-messageState"
        ),
        pytest.param(
            _replace(
                VALID_INSTANCES["sendDeliveryNotification"], "MESSAGE_NOT_ACCTEPTED", "MESSAGE_NOT_ACCEPTED"
            ),
            id="receiveStatus-corrected-spelling",
        ),
        pytest.param(
            _replace(VALID_INSTANCES["sendDeliveryNotification"], ">RESEND<", ">MAYBE<"), id="bad-resendMessage"
        ),
        pytest.param(
            _replace(VALID_INSTANCES["getMessagesResponse-empty"], f"<sessionId>{SESSION_ID}</sessionId>", ""),
            id="getMessagesResponse-no-sessionId",
        ),
        pytest.param(
            VALID_INSTANCES["changeMassageStatusNotification"].replace("Massage", "Message"),
            id="changeMessageStatusNotification-corrected-spelling",
        ),
    ],
)
def test_invalid_instances(types_schema: etree.XMLSchema, instance: str) -> None:
    assert not types_schema.validate(_parse(instance))


def test_upper_types_namespace_alias(types_schema: etree.XMLSchema) -> None:
    upper = VALID_SEND_MESSAGE.replace(ASYNC_TYPES_NS, ASYNC_TYPES_NS_UPPER)
    alias = schemas.load_xml_schema(ASYNC_TYPES_XSD, namespace_alias=(ASYNC_TYPES_NS, ASYNC_TYPES_NS_UPPER))
    assert alias.validate(_parse(upper))
    assert not types_schema.validate(_parse(upper))
    assert not alias.validate(_parse(VALID_SEND_MESSAGE))
    with pytest.raises(ValueError):
        schemas.load_xml_schema(ASYNC_TYPES_XSD, namespace_alias=(ASYNC_TYPES_NS_UPPER, ASYNC_TYPES_NS))


# ---------------------------------------------------------------- WSDLs


@pytest.mark.parametrize(
    ("build", "package_wsdl"),
    [(schemas.async_channel_wsdl, ASYNC_WSDL), (schemas.async_client_wsdl, ASYNC_CLIENT_WSDL)],
    ids=["channel", "client"],
)
def test_self_contained_wsdl_structure(build: Callable[[str], bytes], package_wsdl: str) -> None:
    address = "https://gw.example.kz/shep/async?a=1&b=2"
    wsdl = etree.fromstring(build(address))
    assert wsdl.get("targetNamespace") == ASYNC_WSDL_NS
    assert wsdl.xpath("//s:address/@location", namespaces=NSMAP) == [address]
    assert not wsdl.xpath("//x:import", namespaces=NSMAP)  # nothing left to fetch
    (inlined,) = wsdl.xpath("w:types/x:schema", namespaces=NSMAP)
    assert inlined.get("targetNamespace") == ASYNC_TYPES_NS
    # The inlined schema still compiles and keeps tns in scope.
    compiled = etree.XMLSchema(etree.ElementTree(copy.deepcopy(inlined)))
    assert compiled.validate(_parse(VALID_SEND_MESSAGE))
    # Every operation is document/literal with soapAction "".
    assert set(wsdl.xpath("//s:operation/@soapAction", namespaces=NSMAP)) == {""}
    assert set(wsdl.xpath("//s:operation/@style | //s:binding/@style", namespaces=NSMAP)) == {"document"}
    assert set(wsdl.xpath("//s:body/@use | //s:fault/@use", namespaces=NSMAP)) == {"literal"}
    # Per-call copies: the cached template is not mutated; the package file keeps its placeholder.
    again = etree.fromstring(build("http://other/"))
    assert again.xpath("//s:address/@location", namespaces=NSMAP) == ["http://other/"]
    assert b"127.0.0.1:8080" in schemas.read_schema_bytes(package_wsdl)
    with pytest.raises(ValueError):
        build("")


def test_sync_wsdl_still_built_separately() -> None:
    """The shared template cache keeps the Sync and Async templates apart."""
    sync = etree.fromstring(schemas.sync_channel_wsdl("http://s/"))
    async_ = etree.fromstring(schemas.async_channel_wsdl("http://a/"))
    assert sync.get("targetNamespace") == schemas.SYNC_WSDL_NS
    assert async_.get("targetNamespace") == ASYNC_WSDL_NS


@pytest.mark.parametrize("package_wsdl", [ASYNC_WSDL, ASYNC_CLIENT_WSDL])
def test_zeep_loads_package_wsdl_with_import(package_wsdl: str) -> None:
    client = zeep.Client(str(schemas.schema_path(package_wsdl)))
    assert client.get_element(f"{{{ASYNC_TYPES_NS}}}sendMessage") is not None


def test_zeep_loads_channel_wsdl(wsdl_file: Path) -> None:
    client = zeep.Client(str(wsdl_file))
    port = client.wsdl.services["IAsyncChannelHttpService"].ports["AsyncChannelHttpPort"]
    assert port.binding.name == etree.QName(ASYNC_WSDL_NS, "AsyncChannelHttpBinding")
    assert port.binding.port_type.name == etree.QName(ASYNC_WSDL_NS, "IAsyncChannel")
    assert set(port.binding._operations) == {
        "sendMessage",
        "getMessages",
        "getMessageStatus",
        "sendDeliveryNotification",
    }
    for name in port.binding._operations:
        operation = port.binding.get(name)
        assert operation.soapaction == ""
        assert "AsyncChannelFault" in operation.faults
    assert client.service._binding_options["address"] == "http://127.0.0.1:1/shep/async"


def test_zeep_loads_client_wsdl(client_wsdl_file: Path) -> None:
    client = zeep.Client(str(client_wsdl_file))
    port = client.wsdl.services["IAsyncChannelClientHttpService"].ports["AsyncChannelClientHttpPort"]
    assert port.binding.name == etree.QName(ASYNC_WSDL_NS, "AsyncChannelClientHttpBinding")
    assert port.binding.port_type.name == etree.QName(ASYNC_WSDL_NS, "IAsyncChannelClient")
    assert set(port.binding._operations) == {"sendMessage", "changeMassageStatusNotification"}
    operation = port.binding.get("changeMassageStatusNotification")
    assert operation.soapaction == ""
    assert operation.input.body.qname == etree.QName(ASYNC_TYPES_NS, "changeMassageStatusNotification")
    assert client.service._binding_options["address"] == "http://127.0.0.1:2/portal/async"


def test_zeep_send_message_envelope(wsdl_file: Path, types_schema: etree.XMLSchema) -> None:
    client = zeep.Client(str(wsdl_file))
    original = etree.fromstring(DOC)
    envelope = client.create_message(
        client.service,
        "sendMessage",
        request={"messageInfo": _message_info(), "messageData": {"data": any_content(original)}},
    )
    wire = etree.fromstring(etree.tostring(envelope))
    (body_child,) = wire.find(f"{{{SOAP_ENV}}}Body")
    assert body_child.tag == f"{{{ASYNC_TYPES_NS}}}sendMessage"
    # Unqualified local elements under the qualified wrapper, as on the SHEP wire.
    assert body_child.find("request/messageInfo/messageId").text == "m-1"
    assert body_child.find("request/messageInfo/messageType").text == "REQUEST"
    assert body_child.find("request/messageInfo/SenderCorrelationId").text == "portal-42"
    (doc,) = body_child.find("request/messageData/data")
    assert doc.tag == "{urn:x}Application"
    exc = {"method": "c14n", "exclusive": True}
    assert etree.tostring(doc, **exc) == etree.tostring(original, **exc)
    types_schema.assertValid(body_child)


def test_zeep_get_messages_envelope(wsdl_file: Path, types_schema: etree.XMLSchema) -> None:
    client = zeep.Client(str(wsdl_file))
    envelope = client.create_message(
        client.service,
        "getMessages",
        request={"serviceId": "APPLICATION_INTAKE", "sender": {"senderId": "portal"}, "amount": 10},
    )
    (body_child,) = envelope.find(f"{{{SOAP_ENV}}}Body")
    assert body_child.tag == f"{{{ASYNC_TYPES_NS}}}getMessages"
    assert body_child.find("request/serviceId").text == "APPLICATION_INTAKE"
    assert body_child.find("request/sender/senderId").text == "portal"
    assert body_child.find("request/amount").text == "10"
    assert body_child.find("request/messageId") is None  # optional fields left out
    assert all(el.tag == etree.QName(el).localname for el in body_child.iterdescendants())
    types_schema.assertValid(body_child)


def test_zeep_client_callbacks_envelope(client_wsdl_file: Path, types_schema: etree.XMLSchema) -> None:
    client = zeep.Client(str(client_wsdl_file))
    delivered = client.create_message(
        client.service,
        "sendMessage",
        request={"messageInfo": _message_info("RESPONSE"), "messageData": {"data": None}},
    )
    notified = client.create_message(
        client.service,
        "changeMassageStatusNotification",
        request={
            "messageId": "m-1",
            "messageState": "NOT_DELIVERED",
            "status": {"code": "E1", "message": "portal unreachable"},
            "statusDate": dt.datetime(2024, 5, 1, 5, 0, tzinfo=dt.UTC),
        },
    )
    (result,) = delivered.find(f"{{{SOAP_ENV}}}Body")
    (notification,) = notified.find(f"{{{SOAP_ENV}}}Body")
    assert result.find("request/messageInfo/messageType").text == "RESPONSE"
    assert notification.tag == f"{{{ASYNC_TYPES_NS}}}changeMassageStatusNotification"
    assert notification.find("request/messageState").text == "NOT_DELIVERED"
    types_schema.assertValid(result)
    types_schema.assertValid(notification)
