"""SHEP AsyncChannel v10 XSD/WSDL package data: instances of every element, the namespaces of the public v10
schema, and zeep over both WSDLs."""

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
    ASYNC_CLIENT_NS,
    ASYNC_CLIENT_WSDL,
    ASYNC_CLIENT_XSD,
    ASYNC_OPERATIONS_NS,
    ASYNC_OPERATIONS_XSD,
    ASYNC_TYPES_NS,
    ASYNC_TYPES_XSD,
    ASYNC_WSDL,
    ASYNC_WSDL_NS,
    COMMON_TYPES_NS,
    COMMON_TYPES_XSD,
)
from tests.helpers import SOAP_ENV, WSDL_NS, XSD_NS, any_content

SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
NSMAP = {"w": WSDL_NS, "s": SOAP_NS, "x": XSD_NS}
SESSION_ID = "{0f8fad5b-d9cb-469f-a165-70867728950e}"
DOC = b'<app:Application xmlns:app="urn:x" Id="a1"><app:iin>900101300123</app:iin></app:Application>'
OPS = ASYNC_OPERATIONS_NS
CLIENT = ASYNC_CLIENT_NS

MESSAGE_INFO = f"""\
<messageInfo>
  <messageId>6b0f5c3e-1b3a-4c55-9d0e-2f1f4f8f0a01</messageId>
  <correlationId>c-1</correlationId>
  <serviceId>APPLICATION_INTAKE</serviceId>
  <messageType>REQUEST</messageType>
  <routeId>r-1</routeId>
  <messageDate>2024-05-01T10:00:00+05:00</messageDate>
  <sender><senderId>portal</senderId><password>secret</password></sender>
  <properties><key>channel</key><value>web</value></properties>
  <sessionId>{SESSION_ID}</sessionId>
</messageInfo>"""

VALID_SEND_MESSAGE = f"""\
<t:sendMessage xmlns:t="{OPS}"><request>
{MESSAGE_INFO}
<messageData><data>{DOC.decode()}</data></messageData>
</request></t:sendMessage>"""

VALID_GET_MESSAGES = f"""\
<t:getMessages xmlns:t="{OPS}"><request>
  <messageId>m-1</messageId>
  <correlationId>c-1</correlationId>
  <requestDate>2024-05-01T10:00:00Z</requestDate>
  <serviceId>APPLICATION_INTAKE</serviceId>
  <sender><senderId>portal</senderId></sender>
  <amount>10</amount>
  <properties><key>channel</key><value>web</value></properties>
</request></t:getMessages>"""

STATUS = ("<statusCode>SCSS001</statusCode><statusMessage>delivered</statusMessage>"
          "<statusDate>2024-05-01T10:00:01Z</statusDate>")
VALID_GET_MESSAGE_STATUS_RESPONSE = f"""\
<t:getMessageStatusResponse xmlns:t="{OPS}"><response>
  <messageState>DELIVERED</messageState>
  <status>{STATUS}</status>
  <responseDate>2024-05-01T10:00:01Z</responseDate>
  <sessionId>{SESSION_ID}</sessionId>
</response></t:getMessageStatusResponse>"""

ERROR = """<errorCode>E1</errorCode><errorMessage>outer</errorMessage><errorDate>2024-05-01T10:00:01Z</errorDate>
      <subError><errorCode>E2</errorCode><errorMessage>inner</errorMessage><errorData>d</errorData>
        <errorDate>2024-05-01T10:00:01Z</errorDate></subError>"""

VALID_DELIVERY_NOTIFICATION = f"""<t:sendDeliveryNotification xmlns:t="{OPS}"><request>
      <notification><messageId>m-1</messageId><serviceId>S</serviceId>
        <notificationDate>2024-05-01T10:00:00Z</notificationDate>
        <deliveryStatus><receiveStatus>MESSAGE_NOT_ACCTEPTED</receiveStatus>
          <statusDate>2024-05-01T10:00:00Z</statusDate><resendMessage>RESEND</resendMessage>
          <error><errorCode>E1</errorCode><errorMessage>broken</errorMessage>
            <errorDate>2024-05-01T10:00:00Z</errorDate></error>
        </deliveryStatus></notification>
      <requestDate>2024-05-01T10:00:00Z</requestDate>
      <sender><senderId>portal</senderId></sender>
    </request></t:sendDeliveryNotification>"""

VALID_CHANGE_STATUS = f"""<t:changeMassageStatusNotification xmlns:t="{CLIENT}"><request>
      <notification><notificationId>n-1</notificationId><messageId>m-1</messageId>
        <notificationDate>2024-05-01T10:00:00Z</notificationDate><messageState>DELIVERY_STOPPED</messageState>
        <status>{STATUS}</status><error>{ERROR}</error></notification>
      <requestDate>2024-05-01T10:00:00Z</requestDate><sessionId>{SESSION_ID}</sessionId>
    </request></t:changeMassageStatusNotification>"""

# Every operation element (gateway side) with a minimal or full valid instance, keyed by a readable id.
VALID_INSTANCES = {
    "sendMessage": VALID_SEND_MESSAGE,
    "sendMessage-minimal-no-messageId": f"""<t:sendMessage xmlns:t="{OPS}"><request>
      <messageInfo><serviceId>S</serviceId><messageType>UPDATE</messageType>
        <messageDate>2024-05-01T10:00:00</messageDate><sender><senderId>p</senderId></sender></messageInfo>
      <messageData><data/></messageData></request></t:sendMessage>""",
    "sendMessage-150-character-ids": VALID_SEND_MESSAGE.replace(
        "6b0f5c3e-1b3a-4c55-9d0e-2f1f4f8f0a01", "M" * 150).replace(SESSION_ID, "s" * 200),
    "sendMessageResponse": f"""<t:sendMessageResponse xmlns:t="{OPS}"><response>
      <messageId>m-1</messageId><correlationId>c-1</correlationId>
      <responseDate>2024-05-01T10:00:01Z</responseDate><sessionId>{SESSION_ID}</sessionId>
    </response></t:sendMessageResponse>""",
    "getMessages": VALID_GET_MESSAGES,
    "getMessages-minimal": f"""<t:getMessages xmlns:t="{OPS}"><request>
      <serviceId>S</serviceId></request></t:getMessages>""",
    "getMessagesResponse": f"""<t:getMessagesResponse xmlns:t="{OPS}"><response>
      <responseDate>2024-05-01T10:00:01Z</responseDate><sessionId>{SESSION_ID}</sessionId>
      <messages>{MESSAGE_INFO.replace("REQUEST", "RESPONSE")}<messageData><data>ok</data></messageData></messages>
      <messages>{MESSAGE_INFO.replace("REQUEST", "NOTIFICATION")}<messageData><data/></messageData></messages>
    </response></t:getMessagesResponse>""",
    "getMessagesResponse-empty": f"""<t:getMessagesResponse xmlns:t="{OPS}"><response>
      <responseDate>2024-05-01T10:00:01Z</responseDate><sessionId>{SESSION_ID}</sessionId>
    </response></t:getMessagesResponse>""",
    "getMessageStatus": f"""<t:getMessageStatus xmlns:t="{OPS}"><request>
      <messageId>m-1</messageId><requestDate>2024-05-01T10:00:00Z</requestDate>
      <sender><senderId>portal</senderId><password>secret</password></sender>
      <properties><key>k</key><value>v</value></properties>
    </request></t:getMessageStatus>""",
    "getMessageStatusResponse": VALID_GET_MESSAGE_STATUS_RESPONSE,
    "sendDeliveryNotification": VALID_DELIVERY_NOTIFICATION,
    "sendDeliveryNotificationResponse": f"""<t:sendDeliveryNotificationResponse xmlns:t="{OPS}">
      <response><notificationId>n-1</notificationId><responseDate>2024-05-01T10:00:01Z</responseDate>
      <sessionId>{SESSION_ID}</sessionId></response>
    </t:sendDeliveryNotificationResponse>""",
    **{f"{op}Fault": f"""<t:{op}Fault1_{op}Fault xmlns:t="{OPS}">{ERROR}<sessionId>{SESSION_ID}</sessionId>
      </t:{op}Fault1_{op}Fault>""" for op in ("sendMessage", "getMessages", "getMessageStatus",
                                               "sendDeliveryNotification")},
}

CLIENT_INSTANCES = {
    "sendMessage": VALID_SEND_MESSAGE.replace(OPS, CLIENT).replace("REQUEST", "RESPONSE"),
    "sendMessageResponse": VALID_INSTANCES["sendMessageResponse"].replace(OPS, CLIENT),
    "changeMassageStatusNotification": VALID_CHANGE_STATUS,
    "changeMassageStatusNotificationResponse": f"""<t:changeMassageStatusNotificationResponse xmlns:t="{CLIENT}">
      <response><responseDate>2024-05-01T10:00:01Z</responseDate><sessionId>{SESSION_ID}</sessionId></response>
    </t:changeMassageStatusNotificationResponse>""",
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
    }


@pytest.fixture(scope="module")
def types_schema() -> etree.XMLSchema:
    """The gateway-side operations schema (it imports the types and the common types)."""
    return schemas.load_xml_schema(ASYNC_OPERATIONS_XSD)


@pytest.fixture(scope="module")
def client_schema() -> etree.XMLSchema:
    return schemas.load_xml_schema(ASYNC_CLIENT_XSD)


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


def test_schemas_are_in_the_public_namespaces() -> None:
    expected = {ASYNC_OPERATIONS_XSD: (OPS, {ASYNC_TYPES_NS, COMMON_TYPES_NS}),
                ASYNC_CLIENT_XSD: (CLIENT, {ASYNC_TYPES_NS, COMMON_TYPES_NS}),
                ASYNC_TYPES_XSD: (ASYNC_TYPES_NS, {COMMON_TYPES_NS}), COMMON_TYPES_XSD: (COMMON_TYPES_NS, set())}
    for path, (namespace, imports) in expected.items():
        root = etree.fromstring(schemas.read_schema_bytes(path))
        assert root.get("targetNamespace") == namespace
        assert root.get("elementFormDefault") is None  # local elements stay unqualified
        assert set(root.xpath("x:import/@namespace", namespaces=NSMAP)) == imports
        assert not root.xpath("x:include", namespaces=NSMAP)
    types = etree.fromstring(schemas.read_schema_bytes(ASYNC_TYPES_XSD))
    assert not types.xpath("x:element", namespaces=NSMAP), "global elements live in the operation schemas"


@pytest.mark.parametrize("name", list(VALID_INSTANCES))
def test_valid_instances(types_schema: etree.XMLSchema, name: str) -> None:
    types_schema.assertValid(_parse(VALID_INSTANCES[name]))


@pytest.mark.parametrize("name", list(CLIENT_INSTANCES))
def test_valid_client_instances(client_schema: etree.XMLSchema, name: str) -> None:
    client_schema.assertValid(_parse(CLIENT_INSTANCES[name]))


def test_message_info_order_is_the_public_one(types_schema: etree.XMLSchema) -> None:
    """routeId comes before messageDate in v10; the old order (messageDate, routeId) is refused."""
    swapped = VALID_SEND_MESSAGE.replace("<routeId>r-1</routeId>", "").replace(
        "</messageDate>", "</messageDate><routeId>r-1</routeId>")
    assert not types_schema.validate(_parse(swapped))


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
        pytest.param(_replace(VALID_SEND_MESSAGE, "<messageId>", f"<messageId>{'x' * 165}"), id="messageId-201"),
        pytest.param(_replace(VALID_SEND_MESSAGE, SESSION_ID, "s" * 201), id="sessionId-201"),
        pytest.param(_replace(VALID_SEND_MESSAGE, "<serviceId>APPLICATION_INTAKE", f"<serviceId>{'s' * 201}"),
                     id="serviceId-201"),
        pytest.param(_replace(VALID_SEND_MESSAGE, f"<data>{DOC.decode()}</data>", ""), id="no-data"),
        pytest.param(_replace(VALID_SEND_MESSAGE, "</messageInfo>", "<SenderCorrelationId>x</SenderCorrelationId>"
                                                                     "</messageInfo>"), id="old-SenderCorrelationId"),
        pytest.param(
            _replace(VALID_SEND_MESSAGE, "<request>", f'<request xmlns="{OPS}">'), id="qualified-children"
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
            _replace(VALID_DELIVERY_NOTIFICATION, "<requestDate>2024-05-01T10:00:00Z</requestDate>", ""),
            id="deliveryNotification-no-requestDate",
        ),
        pytest.param(
            _replace(VALID_GET_MESSAGE_STATUS_RESPONSE, STATUS, "<code>SCSS001</code><message>ok</message>"),
            id="old-status-code-message",
        ),
        pytest.param(
            VALID_INSTANCES["sendMessageFault"].replace("sendMessageFault1_sendMessageFault", "AsyncChannelFault"),
            id="old-AsyncChannelFault",
        ),
        pytest.param(
            _replace(VALID_INSTANCES["sendDeliveryNotification"], ">RESEND<", ">MAYBE<"), id="bad-resendMessage"
        ),
        pytest.param(
            _replace(VALID_INSTANCES["getMessagesResponse-empty"], f"<sessionId>{SESSION_ID}</sessionId>", ""),
            id="getMessagesResponse-no-sessionId",
        ),
    ],
)
def test_invalid_instances(types_schema: etree.XMLSchema, instance: str) -> None:
    assert not types_schema.validate(_parse(instance))


@pytest.mark.parametrize(
    "instance",
    [
        pytest.param(VALID_CHANGE_STATUS.replace("Massage", "Message"), id="corrected-spelling"),
        pytest.param(VALID_CHANGE_STATUS.replace(CLIENT, ASYNC_TYPES_NS), id="old-namespace"),
        pytest.param(_replace(VALID_CHANGE_STATUS, "<notificationId>n-1</notificationId>", ""), id="no-notificationId"),
        pytest.param(_replace(VALID_CHANGE_STATUS, "<requestDate>2024-05-01T10:00:00Z</requestDate>", ""),
                     id="no-requestDate"),
    ],
)
def test_invalid_client_instances(client_schema: etree.XMLSchema, instance: str) -> None:
    assert not client_schema.validate(_parse(instance))


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
    inlined = wsdl.xpath("w:types/x:schema", namespaces=NSMAP)
    operations = OPS if package_wsdl == ASYNC_WSDL else CLIENT
    assert [schema.get("targetNamespace") for schema in inlined] == [operations, ASYNC_TYPES_NS, COMMON_TYPES_NS]
    assert not wsdl.xpath("//x:import/@schemaLocation", namespaces=NSMAP)  # nothing left to fetch
    # The inlined schemas still compile together and keep their prefixes in scope.
    assert _compile_inlined(inlined).validate(_parse(VALID_SEND_MESSAGE.replace(OPS, operations)))
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


def _compile_inlined(inlined: list[etree._Element]) -> etree.XMLSchema:
    """One schema importing the inlined ones, each given back a location, as a WSDL reader combines them."""
    with_locations = {}
    for schema in inlined:
        copied = copy.deepcopy(schema)
        for item in copied.xpath("x:import", namespaces=NSMAP):
            item.set("schemaLocation", f"{item.get('namespace')}.xsd".replace("/", "_").replace(":", ""))
        with_locations[f"{schema.get('targetNamespace')}.xsd".replace("/", "_").replace(":", "")] = copied

    class Resolver(etree.Resolver):
        def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
            name = url.rsplit("/", 1)[-1]
            return self.resolve_string(etree.tostring(with_locations[name]), context)

    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(Resolver())
    first = etree.tostring(with_locations[next(iter(with_locations))])
    return etree.XMLSchema(etree.fromstring(first, parser, base_url="mem:/first.xsd"))


def test_sync_wsdl_still_built_separately() -> None:
    """The shared template cache keeps the Sync and Async templates apart."""
    sync = etree.fromstring(schemas.sync_channel_wsdl("http://s/"))
    async_ = etree.fromstring(schemas.async_channel_wsdl("http://a/"))
    assert sync.get("targetNamespace") == schemas.SYNC_WSDL_NS
    assert async_.get("targetNamespace") == ASYNC_WSDL_NS


@pytest.mark.parametrize("package_wsdl", [ASYNC_WSDL, ASYNC_CLIENT_WSDL])
def test_zeep_loads_package_wsdl_with_import(package_wsdl: str) -> None:
    client = zeep.Client(str(schemas.schema_path(package_wsdl)))
    operations = OPS if package_wsdl == ASYNC_WSDL else CLIENT
    assert client.get_element(f"{{{operations}}}sendMessage") is not None


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
        assert set(operation.faults) == {f"{name}Fault"}
        detail = operation.faults[f"{name}Fault"].abstract.parts["detail"].element
        assert detail.qname == etree.QName(OPS, f"{name}Fault1_{name}Fault")
    assert client.service._binding_options["address"] == "http://127.0.0.1:1/shep/async"


def test_zeep_loads_client_wsdl(client_wsdl_file: Path) -> None:
    client = zeep.Client(str(client_wsdl_file))
    port = client.wsdl.services["IAsyncChannelClientHttpService"].ports["AsyncChannelClientHttpPort"]
    assert port.binding.name == etree.QName(ASYNC_WSDL_NS, "AsyncChannelClientHttpBinding")
    assert port.binding.port_type.name == etree.QName(ASYNC_WSDL_NS, "IAsyncChannelClient")
    assert set(port.binding._operations) == {"sendMessage", "changeMassageStatusNotification"}
    operation = port.binding.get("changeMassageStatusNotification")
    assert operation.soapaction == ""
    assert operation.input.body.qname == etree.QName(CLIENT, "changeMassageStatusNotification")
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
    assert body_child.tag == f"{{{OPS}}}sendMessage"
    # Unqualified local elements under the qualified wrapper, as on the SHEP wire.
    assert body_child.find("request/messageInfo/messageId").text == "m-1"
    assert body_child.find("request/messageInfo/messageType").text == "REQUEST"
    assert [child.tag for child in body_child.find("request/messageInfo")] == [
        "messageId", "serviceId", "messageType", "messageDate", "sender", "properties"]
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
    assert body_child.tag == f"{{{OPS}}}getMessages"
    assert body_child.find("request/serviceId").text == "APPLICATION_INTAKE"
    assert body_child.find("request/sender/senderId").text == "portal"
    assert body_child.find("request/amount").text == "10"
    assert body_child.find("request/messageId") is None  # optional fields left out
    assert all(el.tag == etree.QName(el).localname for el in body_child.iterdescendants())
    types_schema.assertValid(body_child)


def test_zeep_client_callbacks_envelope(client_wsdl_file: Path, client_schema: etree.XMLSchema) -> None:
    client = zeep.Client(str(client_wsdl_file))
    delivered = client.create_message(
        client.service,
        "sendMessage",
        request={"messageInfo": _message_info("RESPONSE"), "messageData": {"data": any_content(etree.fromstring(DOC))}},
    )
    when = dt.datetime(2024, 5, 1, 5, 0, tzinfo=dt.UTC)
    notified = client.create_message(
        client.service,
        "changeMassageStatusNotification",
        request={
            "notification": {
                "notificationId": "n-1", "messageId": "m-1", "notificationDate": when, "messageState": "NOT_DELIVERED",
                "status": {"statusCode": "E1", "statusMessage": "portal unreachable", "statusDate": when},
            },
            "requestDate": when,
        },
    )
    (result,) = delivered.find(f"{{{SOAP_ENV}}}Body")
    (notification,) = notified.find(f"{{{SOAP_ENV}}}Body")
    assert result.tag == f"{{{CLIENT}}}sendMessage"
    assert result.find("request/messageInfo/messageType").text == "RESPONSE"
    assert notification.tag == f"{{{CLIENT}}}changeMassageStatusNotification"
    assert notification.find("request/notification/messageState").text == "NOT_DELIVERED"
    client_schema.assertValid(result)
    client_schema.assertValid(notification)
