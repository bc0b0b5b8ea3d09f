"""SHEP SyncChannel v10 XSD/WSDL package data, and how zeep handles the anyType ``data`` payload."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
import requests
import zeep
from lxml import etree
from zeep import xsd

import schemas
from schemas import SYNC_TYPES_NS, SYNC_TYPES_NS_LOWER, SYNC_TYPES_XSD, SYNC_WSDL_NS
from tests.helpers import SOAP_ENV, WSDL_NS, XSD_NS, any_content

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
SESSION_ID = "{0f8fad5b-d9cb-469f-a165-70867728950e}"

# An enveloped-signed business document as a client would put it into requestData/data. The unused
# xmlns:unused and xmlns:xsi declarations are deliberate: inclusive C14N would count them.
SIGNED_DOC = (
    b'<app:Application xmlns:app="urn:x" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
    b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:unused="urn:unused" Id="a1">'
    b"<app:iin>900101300123</app:iin>"
    b'<ds:Signature><ds:SignedInfo><ds:Reference URI=""/></ds:SignedInfo>'
    b"<ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"
    b"</app:Application>"
)

VALID_SEND_MESSAGE = f"""\
<t:SendMessage xmlns:t="{SYNC_TYPES_NS}">
  <request>
    <requestInfo>
      <messageId>6b0f5c3e-1b3a-4c55-9d0e-2f1f4f8f0a01</messageId>
      <correlationId>c-1</correlationId>
      <serviceId>APPLICATION_INTAKE</serviceId>
      <messageDate>2024-05-01T10:00:00+05:00</messageDate>
      <routeId>r-1</routeId>
      <sender><senderId>portal</senderId><password>secret</password></sender>
      <properties><key>channel</key><value>web</value></properties>
      <properties><key>lang</key><value>kk</value></properties>
      <sessionId>{SESSION_ID}</sessionId>
    </requestInfo>
    <requestData><data>{SIGNED_DOC.decode()}</data></requestData>
  </request>
</t:SendMessage>"""


def _parse(text: str) -> etree._Element:
    return etree.fromstring(text.encode("utf-8"))


def _request(data: object) -> dict[str, object]:
    return {
        "requestInfo": {
            "messageId": "m-1",
            "serviceId": "APPLICATION_INTAKE",
            "messageDate": dt.datetime(2024, 5, 1, 5, 0, tzinfo=dt.UTC),
            "sender": {"senderId": "portal", "password": "secret"},
            "properties": [{"key": "channel", "value": "web"}],
            "sessionId": SESSION_ID,
        },
        "requestData": {"data": data},
    }


@pytest.fixture(scope="module")
def types_schema() -> etree.XMLSchema:
    return schemas.load_xml_schema(SYNC_TYPES_XSD)


@pytest.fixture(scope="module")
def wsdl_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wsdl") / "SyncChannel_v10.wsdl"
    path.write_bytes(schemas.sync_channel_wsdl("http://127.0.0.1:1/shep/sync"))
    return path


class _CannedTransport(zeep.Transport):
    """Transport that records the request envelope and answers with a canned SOAP reply."""

    def __init__(self, reply: bytes) -> None:
        super().__init__()
        self.reply = reply
        self.sent: etree._Element | None = None

    def post_xml(self, address: str, envelope: etree._Element, headers: dict[str, str]) -> requests.Response:
        self.sent = envelope
        response = requests.Response()
        response.status_code = 200
        response._content = self.reply
        response.headers["Content-Type"] = "text/xml; charset=utf-8"
        response.encoding = "utf-8"
        return response


# ---------------------------------------------------------------- package data helpers


def test_schema_path_and_bytes() -> None:
    path = schemas.schema_path(SYNC_TYPES_XSD)
    assert path.is_file()
    assert path.read_bytes() == schemas.read_schema_bytes(SYNC_TYPES_XSD)


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../pyproject.toml", "shep/../../x.xsd", "shep\\x.xsd"])
def test_schema_path_rejects_escapes(bad: str) -> None:
    with pytest.raises(ValueError):
        schemas.schema_path(bad)
    with pytest.raises(ValueError):
        schemas.read_schema_bytes(bad)


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_resolver_refuses_imports_outside_package(tmp_path: Path, as_url: bool) -> None:
    outside = tmp_path / "outside.xsd"
    outside.write_text(f'<xsd:schema xmlns:xsd="{XSD_NS}" targetNamespace="urn:b"/>')
    location = outside.as_uri() if as_url else str(outside)
    text = (
        f'<xsd:schema xmlns:xsd="{XSD_NS}" targetNamespace="urn:a">'
        f'<xsd:import namespace="urn:b" schemaLocation="{location}"/></xsd:schema>'
    ).encode()
    # Control: libxml2 on its own happily reads the file outside the package.
    etree.XMLSchema(etree.fromstring(text))

    parser = schemas._safe_parser()
    parser.resolvers.add(schemas._PackageResolver(None))
    doc = etree.fromstring(text, parser, base_url="egov-schemas:///shep/probe.xsd")
    with pytest.raises(etree.XMLSchemaParseError):
        etree.XMLSchema(doc)


# ---------------------------------------------------------------- types XSD


def test_valid_send_message(types_schema: etree.XMLSchema) -> None:
    types_schema.assertValid(_parse(VALID_SEND_MESSAGE))


def test_valid_response_and_fault(types_schema: etree.XMLSchema) -> None:
    response = f"""<t:SendMessageResponse xmlns:t="{SYNC_TYPES_NS}"><response>
      <responseInfo><messageId>m-1</messageId><responseDate>2024-05-01T10:00:01Z</responseDate>
        <status><code>SCSS001</code><message>Message has been processed successfully</message></status>
        <sessionId>{SESSION_ID}</sessionId></responseInfo>
      <responseData><data><r:Result xmlns:r="urn:r">ok</r:Result></data></responseData>
    </response></t:SendMessageResponse>"""
    fault = f"""<t:SendMessageFault1_SendMessageFault xmlns:t="{SYNC_TYPES_NS}">
      <errorCode>E1</errorCode><errorMessage>outer</errorMessage><errorDate>2024-05-01T10:00:01Z</errorDate>
      <subError><errorCode>E2</errorCode><errorMessage>inner</errorMessage><errorData>d</errorData>
        <errorDate>2024-05-01T10:00:01Z</errorDate></subError>
      <sessionId>{SESSION_ID}</sessionId></t:SendMessageFault1_SendMessageFault>"""
    types_schema.assertValid(_parse(response))
    types_schema.assertValid(_parse(fault))


def _replace(old: str, new: str) -> str:
    assert old in VALID_SEND_MESSAGE
    return VALID_SEND_MESSAGE.replace(old, new, 1)


@pytest.mark.parametrize("session_id", [SESSION_ID.strip("{}"), "MSG-1733068800123456789", "s" * 200])
def test_a_senders_session_id_is_any_id_up_to_200(types_schema: etree.XMLSchema, session_id: str) -> None:
    types_schema.assertValid(_parse(_replace(SESSION_ID, session_id)))


@pytest.mark.parametrize(
    "instance",
    [
        pytest.param(_replace("<serviceId>APPLICATION_INTAKE</serviceId>", ""), id="missing-serviceId"),
        pytest.param(_replace("<key>channel</key>", f"<key>{'k' * 31}</key>"), id="property-key-31"),
        pytest.param(_replace("<value>web</value>", f"<value>{'v' * 501}</value>"), id="property-value-501"),
        pytest.param(_replace(SESSION_ID, "s" * 201), id="sessionId-201"),
        pytest.param(_replace("<messageId>", f"<messageId>{'x' * 165}"), id="messageId-201"),
        pytest.param(
            _replace("<messageDate>2024-05-01T10:00:00+05:00", "<messageDate>yesterday"), id="bad-date"
        ),
        pytest.param(_replace("<request>", f'<request xmlns="{SYNC_TYPES_NS}">'), id="qualified-children"),
    ],
)
def test_invalid_send_message(types_schema: etree.XMLSchema, instance: str) -> None:
    assert not types_schema.validate(_parse(instance))


def test_lowercase_namespace_alias(types_schema: etree.XMLSchema) -> None:
    lower = VALID_SEND_MESSAGE.replace(SYNC_TYPES_NS, SYNC_TYPES_NS_LOWER)
    alias = schemas.load_xml_schema(SYNC_TYPES_XSD, namespace_alias=(SYNC_TYPES_NS, SYNC_TYPES_NS_LOWER))
    assert alias.validate(_parse(lower))
    assert not types_schema.validate(_parse(lower))
    assert not alias.validate(_parse(VALID_SEND_MESSAGE))
    with pytest.raises(ValueError):
        schemas.load_xml_schema(SYNC_TYPES_XSD, namespace_alias=("urn:typo", SYNC_TYPES_NS_LOWER))


# ---------------------------------------------------------------- WSDL


def test_self_contained_wsdl_structure(types_schema: etree.XMLSchema) -> None:
    address = "https://gw.example.kz/shep/sync?a=1&b=2"
    wsdl = etree.fromstring(schemas.sync_channel_wsdl(address))
    assert wsdl.get("targetNamespace") == SYNC_WSDL_NS
    ns = {"w": WSDL_NS, "s": "http://schemas.xmlsoap.org/wsdl/soap/", "x": XSD_NS}
    assert wsdl.xpath("//s:address/@location", namespaces=ns) == [address]
    assert not wsdl.xpath("//x:import", namespaces=ns)  # nothing left to fetch
    (inlined,) = wsdl.xpath("w:types/x:schema", namespaces=ns)
    # The inlined schema must still compile and behave like the package file (tns kept in scope).
    compiled = etree.XMLSchema(etree.ElementTree(copy.deepcopy(inlined)))
    assert compiled.validate(_parse(VALID_SEND_MESSAGE))
    # Per-call copies: the cached template is not mutated.
    again = etree.fromstring(schemas.sync_channel_wsdl("http://other/"))
    assert again.xpath("//s:address/@location", namespaces=ns) == ["http://other/"]
    with pytest.raises(ValueError):
        schemas.sync_channel_wsdl("")


def test_zeep_loads_package_wsdl_with_import() -> None:
    client = zeep.Client(str(schemas.schema_path(schemas.SYNC_WSDL)))
    assert client.service._binding_options["address"] == "http://127.0.0.1:8080/shep/sync"
    assert client.get_element(f"{{{SYNC_TYPES_NS}}}SendMessage") is not None


def test_zeep_loads_self_contained_wsdl(wsdl_file: Path) -> None:
    client = zeep.Client(str(wsdl_file))
    service = client.wsdl.services["ISyncChannelHttpService"]
    port = service.ports["SyncChannelHttpPort"]
    assert port.binding.name == etree.QName(SYNC_WSDL_NS, "SyncChannelHttpBinding")
    operation = port.binding.get("SendMessage")
    assert operation.soapaction == ""
    assert "sendMessageFault" in operation.faults
    assert client.service._binding_options["address"] == "http://127.0.0.1:1/shep/sync"


def test_zeep_envelope_shape(wsdl_file: Path, types_schema: etree.XMLSchema) -> None:
    client = zeep.Client(str(wsdl_file))
    envelope = client.create_message(client.service, "SendMessage", request=_request(None))
    (body_child,) = envelope.find(f"{{{SOAP_ENV}}}Body")
    assert body_child.tag == f"{{{SYNC_TYPES_NS}}}SendMessage"
    # Unqualified local elements, as on the SHEP wire.
    assert body_child.find("request/requestInfo/messageId").text == "m-1"
    assert body_child.find("request/requestInfo/sessionId").text == SESSION_ID
    # data=None drops the optional <data/> element entirely.
    assert body_child.find("request/requestData") is not None
    assert body_child.find("request/requestData/data") is None
    types_schema.assertValid(body_child)


# ---------------------------------------------------------------- zeep and the anyType payload


def test_zeep_plain_lxml_element_is_stringified(wsdl_file: Path) -> None:
    """Pitfall: a bare lxml element as anyType value becomes its repr() as text, silently."""
    client = zeep.Client(str(wsdl_file))
    envelope = client.create_message(
        client.service, "SendMessage", request=_request(etree.fromstring(SIGNED_DOC))
    )
    data = envelope.find(".//requestData/data")
    assert len(data) == 0
    assert data.text.startswith("<Element {urn:x}Application")


def test_zeep_anyobject_of_anytype_fails(wsdl_file: Path) -> None:
    """``AnyObject(AnyType(), element)`` fails: the unnamed type gives xsi:type=None."""
    client = zeep.Client(str(wsdl_file))
    with pytest.raises(TypeError):
        client.create_message(
            client.service,
            "SendMessage",
            request=_request(xsd.AnyObject(xsd.AnyType(), etree.fromstring(SIGNED_DOC))),
        )


def test_zeep_signed_document_as_data_child(wsdl_file: Path, types_schema: etree.XMLSchema) -> None:
    client = zeep.Client(str(wsdl_file))
    original = etree.fromstring(SIGNED_DOC)
    envelope = client.create_message(client.service, "SendMessage", request=_request(any_content(original)))
    wire = etree.fromstring(etree.tostring(envelope))  # what the peer actually parses

    data = wire.find(".//requestData/data")
    assert data.get(XSI_TYPE) == "xs:anyType"  # zeep always adds xsi:type for an AnyObject
    assert data.nsmap["xs"] == XSD_NS
    (doc,) = data
    assert doc.tag == "{urn:x}Application"
    assert original.getparent() is None  # our copy was moved, not the caller's element

    # The element keeps every namespace declaration it had, including the unused ones ...
    raw = etree.tostring(envelope)
    assert b'xmlns:unused="urn:unused"' in raw and b'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"' in raw
    # ... and exclusive C14N (what the signature must use) is unchanged by the embedding,
    exc = {"method": "c14n", "exclusive": True}
    assert etree.tostring(doc, **exc) == etree.tostring(original, **exc)
    # while inclusive C14N picks up the envelope's in-scope namespaces and would break the digest.
    assert etree.tostring(doc, method="c14n") != etree.tostring(original, method="c14n")
    assert b"soap-env" in etree.tostring(doc, method="c14n")

    types_schema.assertValid(wire.find(f".//{{{SYNC_TYPES_NS}}}SendMessage"))


RESPONSE_TEMPLATE = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>
<t:SendMessageResponse xmlns:t="{SYNC_TYPES_NS}"><response>
  <responseInfo><messageId>m-1</messageId><responseDate>2024-05-01T10:00:01Z</responseDate>
    <status><code>SCSS001</code><message>Message has been processed successfully</message></status>
    <sessionId>{SESSION_ID}</sessionId></responseInfo>
  <responseData><data@ATTRS@><r:Result xmlns:r="urn:r" Id="r1"><r:v>1</r:v></r:Result></data></responseData>
</response></t:SendMessageResponse></s:Body></s:Envelope>"""


def test_zeep_round_trip_reads_data_children(wsdl_file: Path) -> None:
    transport = _CannedTransport(RESPONSE_TEMPLATE.replace("@ATTRS@", "").encode())
    client = zeep.Client(str(wsdl_file), transport=transport)
    result = client.service.SendMessage(request=_request(any_content(etree.fromstring(SIGNED_DOC))))

    assert transport.sent is not None
    assert transport.sent.find(".//requestData/data")[0].tag == "{urn:x}Application"
    assert result.responseInfo.status.code == "SCSS001"
    assert result.responseInfo.sessionId == SESSION_ID
    # anyType with element content and no xsi:type: zeep hands back the list of child elements,
    # still attached to the parsed reply envelope.
    (child,) = result.responseData.data
    assert isinstance(child, etree._Element)
    assert child.tag == "{urn:r}Result"
    assert child.getparent().tag == "data"
    exc = {"method": "c14n", "exclusive": True}
    assert etree.tostring(child, **exc) == b'<r:Result xmlns:r="urn:r" Id="r1"><r:v>1</r:v></r:Result>'


def test_zeep_drops_data_children_when_xsi_type_anytype(wsdl_file: Path) -> None:
    """Pitfall: with xsi:type="xs:anyType" on data zeep returns None and loses the element.

    So the gateway must not emit xsi:type on responseData/data (zeep clients would lose the payload),
    even though zeep itself writes it on requests.
    """
    attrs = (
        f' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="{XSD_NS}" xsi:type="xs:anyType"'
    )
    transport = _CannedTransport(RESPONSE_TEMPLATE.replace("@ATTRS@", attrs).encode())
    client = zeep.Client(str(wsdl_file), transport=transport)
    result = client.service.SendMessage(request=_request(None))
    assert result.responseData.data is None
