"""A signed application from the portal side, through the gateway, to the library and back, signed."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

from lxml import etree

import schemas
from mocks.backoffice.worker import CommissionDesk, WorkerSettings
from mocks.library import parse_fund_decision, parse_ticket
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE, signed_application
from signing.xmlsafe import detach
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    OPERATOR,
    OPERATOR_PASSWORD,
    PORTAL,
    PORTAL_PASSWORD,
    GatewayUnderTest,
    message_id,
    send_soap,
    trusting_verifier,
)


async def test_soap_application_comes_back_signed_by_the_gateway(gw: GatewayUnderTest, shep, http) -> None:
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    result = await send_soap(shep, signed_application(aigerim, READER_TICKET_SERVICE), message_id=mid)

    assert result.ok, result
    assert result.status_code == "SCSS001"
    assert result.message == "Message has been processed successfully"
    assert result.session_id and result.session_id.startswith("{")
    verified = trusting_verifier(gw.pki).verify(result.document)
    assert verified.identity.common_name == "gateway"
    ticket = parse_ticket(verified.signed)
    assert ticket["iin"] == aigerim.iin
    assert ticket["status"] in ("issued", "already-issued")  # one single ticket per reader, whatever ran before
    assert ticket["ticket_number"].startswith(f"KAZNEB-{datetime.now(UTC).year}-")

    async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications", headers=gw.auth()) as response:
        listing = await response.json()
    assert response.status == 200
    assert [a["messageId"] for a in listing["applications"]] == [mid]
    assert listing["applications"][0]["status"] == "completed"

    async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications/{mid}", headers=gw.auth()) as response:
        item = await response.json()
    assert [event["status"] for event in item["history"]] == ["accepted", "routed", "completed"]
    assert all(event["at"] for event in item["history"])
    assert item["validationReport"]["indication"] == "TOTAL_PASSED"
    assert item["validationReport"]["signer"]["iin"] == aigerim.iin
    assert item["sessionId"] == result.session_id
    stored = etree.fromstring(item["result"].encode())
    assert parse_ticket(trusting_verifier(gw.pki).verify(stored).signed)["ticket_number"] == ticket["ticket_number"]

    async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications/{mid}/result",
                        headers=gw.auth()) as response:
        assert response.status == 200
        assert response.content_type == "application/xml"
        downloaded = await response.read()
    assert trusting_verifier(gw.pki).verify(etree.fromstring(downloaded)).report.passed


async def test_rest_application_comes_back_signed(gw: GatewayUnderTest, http) -> None:
    saule = gw.pki.person("saule")
    document = signed_application(saule, READER_TICKET_SERVICE)
    envelope = {
        "requestInfo": {
            "messageId": message_id(),
            "serviceId": READER_TICKET_SERVICE,
            "messageDate": datetime.now(UTC).isoformat(),
            "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD},
            "properties": [{"key": "channel", "value": "test"}],
        },
        "requestData": {"data": etree.tostring(document, encoding="unicode")},
    }
    async with http.post(f"{gw.url}/api/v1/requests", json=envelope) as response:
        body = await response.json()
    assert response.status == 200, body
    assert body["responseInfo"]["status"]["code"] == "SCSS001"
    assert body["responseInfo"]["correlationId"] == envelope["requestInfo"]["messageId"]
    signed = etree.fromstring(body["responseData"]["data"].encode())
    assert parse_ticket(trusting_verifier(gw.pki).verify(signed).signed)["iin"] == saule.iin


async def test_repeated_message_id_gets_the_first_answer_and_one_backend_call(gw: GatewayUnderTest, shep) -> None:
    daniyar = gw.pki.person("daniyar")
    mid = message_id()
    calls_before = gw.library_calls
    document = signed_application(daniyar, READER_TICKET_SERVICE)  # a repeat sends the same document
    first = await send_soap(shep, document, message_id=mid)
    second = await send_soap(shep, document, message_id=mid)
    assert first.ok and second.ok
    assert second.session_id == first.session_id
    assert etree.tostring(second.document) == etree.tostring(first.document)
    assert gw.library_calls == calls_before + 1


async def test_lowercase_types_namespace_and_escaped_string_data_are_accepted(gw: GatewayUnderTest, http) -> None:
    aigerim = gw.pki.person("aigerim")
    signed = etree.tostring(signed_application(aigerim, READER_TICKET_SERVICE), encoding="unicode")
    escaped = signed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    envelope = f"""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
        xmlns:t="http://bip.bee.kz/SyncChannel/v10/types"><soap:Body><t:SendMessage><request>
        <requestInfo><messageId>{message_id()}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId>
        <messageDate>{datetime.now(UTC).isoformat()}</messageDate>
        <sender><senderId>{PORTAL}</senderId><password>{PORTAL_PASSWORD}</password></sender></requestInfo>
        <requestData><data>{escaped}</data></requestData></request></t:SendMessage></soap:Body></soap:Envelope>"""
    async with http.post(f"{gw.url}/shep/sync", data=envelope.encode(),
                         headers={"Content-Type": "text/xml; charset=utf-8"}) as response:
        body = await response.read()
    assert response.status == 200, body
    answer = etree.fromstring(body)
    assert answer.find(".//{http://bip.bee.kz/SyncChannel/v10/types}SendMessageResponse") is not None
    assert answer.findtext(".//status/code") == "SCSS001"


async def test_wsdl_is_served_with_our_address(gw: GatewayUnderTest, http) -> None:
    async with http.get(f"{gw.url}/shep/sync?wsdl") as response:
        wsdl = etree.fromstring(await response.read())
    address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == f"{gw.url}/shep/sync"
    assert wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/}service").get("name") == "ISyncChannelHttpService"


async def test_public_health_is_up_or_down_only(gw: GatewayUnderTest, http) -> None:
    async with http.get(f"{gw.url}/health") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})
    for headers, status, code in [({}, 401, "CLIENT_BAD_CREDENTIALS"),
                                  (gw.auth(), 403, "CLIENT_ACCESS_DENIED")]:  # the portal is no operator
        async with http.get(f"{gw.url}/health/details", headers=headers) as response:
            body = await response.json(content_type=None)
        assert (response.status, body["code"]) == (status, code)
        assert "CN=" not in json.dumps(body) and "process" not in body


async def test_health_details_for_operators_report_storage_signer_and_trust(gw: GatewayUnderTest, http) -> None:
    async with http.get(f"{gw.url}/health/details", headers=gw.auth(OPERATOR, OPERATOR_PASSWORD)) as response:
        body = await response.json()
    assert response.status == 200
    assert body["storage"] == "ok" and body["process"] > 0
    assert "CN=gateway" in body["signer"]["subject"]
    assert body["trustAnchors"] == 2  # the RSA and the GOST test roots
    assert READER_TICKET_SERVICE in body["services"]


async def test_every_accepted_application_gets_a_signed_receipt_bound_to_the_request(gw, http) -> None:
    aigerim = gw.pki.person("aigerim")
    document = signed_application(aigerim, READER_TICKET_SERVICE)
    mid = message_id()
    envelope = {
        "requestInfo": {"messageId": mid, "serviceId": READER_TICKET_SERVICE,
                        "messageDate": datetime.now(UTC).isoformat(),
                        "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
        "requestData": {"data": etree.tostring(document, encoding="unicode")},
    }
    async with http.post(f"{gw.url}/api/v1/requests", json=envelope) as response:
        body = await response.json()
    receipt = etree.fromstring(body["receipt"].encode())
    verified = trusting_verifier(gw.pki).verify(receipt)
    assert verified.identity.common_name == "gateway"
    assert schemas.load_xml_schema("gateway/receipt.xsd").validate(receipt)
    ns = {"r": "urn:egov-gateway:receipt:v1"}
    assert receipt.findtext("r:sessionId", namespaces=ns) == body["responseInfo"]["sessionId"]
    assert receipt.findtext("r:messageId", namespaces=ns) == mid
    assert receipt.findtext("r:applicant/r:iin", namespaces=ns) == aigerim.iin
    canonical = etree.tostring(document, method="c14n", exclusive=True)
    assert receipt.findtext("r:requestDigest", namespaces=ns) == base64.b64encode(
        hashlib.sha256(canonical).digest()).decode()

    async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications/{mid}/receipt",
                        headers=gw.auth()) as response:
        assert response.status == 200
        assert etree.tostring(etree.fromstring(await response.read())) == etree.tostring(receipt)


async def test_soap_answer_carries_the_receipt_in_a_header(gw, http) -> None:
    aigerim = gw.pki.person("aigerim")
    signed = etree.tostring(signed_application(aigerim, READER_TICKET_SERVICE), encoding="unicode")
    envelope = f"""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
        xmlns:t="http://bip.bee.kz/SyncChannel/v10/Types"><soap:Body><t:SendMessage><request>
        <requestInfo><messageId>{message_id()}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId>
        <messageDate>{datetime.now(UTC).isoformat()}</messageDate>
        <sender><senderId>{PORTAL}</senderId><password>{PORTAL_PASSWORD}</password></sender></requestInfo>
        <requestData><data>{signed}</data></requestData></request></t:SendMessage></soap:Body></soap:Envelope>"""
    async with http.post(f"{gw.url}/shep/sync", data=envelope.encode(),
                         headers={"Content-Type": "text/xml"}) as response:
        answer = etree.fromstring(await response.read())
    receipt = answer.find("{http://schemas.xmlsoap.org/soap/envelope/}Header/{urn:egov-gateway:receipt:v1}Receipt")
    assert receipt is not None
    assert trusting_verifier(gw.pki).verify(detach(receipt)).report.passed


async def test_organisation_fund_submission_is_acknowledged_then_decided(gw, shep, http) -> None:
    """Long-running: the SyncChannel answer is the gateway's signed receipt; the commission's desk takes the job
    from the queue and its signed decision lands in the organisation's and the signer's cabinets."""
    head = gw.pki.person("kitap-head")
    mid = message_id()
    result = await send_soap(shep, signed_application(head, FUND_SUBMISSION_SERVICE),
                             service_id=FUND_SUBMISSION_SERVICE, message_id=mid)
    assert result.ok, result
    assert etree.QName(result.document).localname == "Receipt"
    assert trusting_verifier(gw.pki).verify(result.document).identity.common_name == "gateway"

    desk = CommissionDesk(WorkerSettings(gateway_url=gw.url, library_url=gw.library_url, sender=DESK,
                                         password=DESK_PASSWORD, poll_wait=5))
    async with desk:
        assert await desk.run_once()
    for owner in (head.bin, head.iin):
        async with http.get(f"{gw.url}/api/v1/cabinet/{owner}/applications/{mid}", headers=gw.auth()) as response:
            item = await response.json()
        assert item["status"] == "completed"
        assert item["applicantBin"] == head.bin
    steps = [event.get("step") for event in item["history"] if event.get("step")]
    assert steps[:2] == ["registered", "commission"]
    decision = etree.fromstring(item["result"].encode())
    verified = trusting_verifier(gw.pki).verify(decision)
    assert verified.identity.common_name == "library"  # the provider's own signature, checked by the gateway
    assert parse_fund_decision(verified.signed)["decision"] == "include"
