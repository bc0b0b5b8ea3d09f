"""Every refusal of the intake, with the exact code it must give; none of them reaches the back-end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from mocks.library import LIBRARY_STATE
from mocks.library.forms import READER_REGISTRATION_NS
from mocks.portal.applicant import (
    FUND_SUBMISSION_SERVICE,
    READER_TICKET_SERVICE,
    reader_registration,
    signed_application,
    signer_for,
)
from tests.helpers import (
    DOWN_SERVICE,
    OFFICE,
    OFFICE_PASSWORD,
    PORTAL,
    PORTAL_PASSWORD,
    SOAP_ENV,
    message_id,
    send_soap,
)

TYPES = "http://bip.bee.kz/SyncChannel/v10/Types"
FAULT = "SendMessageFault1_SendMessageFault"


def envelope(data: str = "", *, service: str = READER_TICKET_SERVICE, date: str | None = None,
             info_extra: str = "") -> bytes:
    return f"""<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:t="{TYPES}"><soap:Body><t:SendMessage><request>
        <requestInfo><messageId>{message_id()}</messageId><serviceId>{service}</serviceId>
        <messageDate>{date or datetime.now(UTC).isoformat()}</messageDate>{info_extra}
        <sender><senderId>{PORTAL}</senderId><password>{PORTAL_PASSWORD}</password></sender></requestInfo>
        <requestData><data>{data}</data></requestData></request></t:SendMessage></soap:Body></soap:Envelope>""".encode()


async def post_soap(gw, http, body: bytes, content_type: str = "text/xml; charset=utf-8",
                    language: str | None = None) -> tuple[int, etree._Element]:
    headers = {"Content-Type": content_type}
    if language:
        headers["Accept-Language"] = language
    async with http.post(f"{gw.url}/shep/sync", data=body, headers=headers) as response:
        raw = await response.read()
    assert b"Traceback" not in raw
    return response.status, etree.fromstring(raw)


def fault_code(answer: etree._Element) -> str:
    fault = answer.find(f".//{{{SOAP_ENV}}}Fault")
    assert fault is not None, etree.tostring(answer)
    info = fault.find(f"detail/{{{TYPES}}}{FAULT}")
    assert info.findtext("sessionId", "").startswith("{")
    return info.findtext("errorCode")


def signed(gw, handle: str, *, key: str = "sign", **overrides: str) -> etree._Element:
    return signed_application(gw.pki.person(handle), READER_TICKET_SERVICE, key=key, **overrides)


def tampered(gw) -> etree._Element:
    document = signed(gw, "aigerim")
    document.find(f"{{{READER_REGISTRATION_NS}}}email").text = "attacker@example.kz"
    return document


def bad_checksum_iin(gw) -> etree._Element:
    iin = gw.pki.person("aigerim").iin
    wrong = iin[:11] + str((int(iin[11]) + 1) % 10)
    return signed(gw, "aigerim", iin=wrong)


def schema_invalid(gw) -> etree._Element:
    aigerim = gw.pki.person("aigerim")
    document = reader_registration(aigerim)
    document.find(f"{{{READER_REGISTRATION_NS}}}email").text = "not an email"
    return signer_for(aigerim).sign(document)


@pytest.mark.parametrize(("case", "make", "code"), [
    ("tampered document", tampered, "SIG_HASH_FAILURE"),
    ("IIN of someone else", lambda gw: signed(gw, "daniyar", iin=gw.pki.person("aigerim").iin), "ID_IIN_MISMATCH"),
    ("IIN with a bad check digit", bad_checksum_iin, "ID_IIN_INVALID"),
    ("certificate from an unknown CA", lambda gw: signed(gw, "stranger"), "SIG_NO_CERTIFICATE_CHAIN_FOUND"),
    ("expired certificate", lambda gw: signed(gw, "expired"), "SIG_EXPIRED"),
    ("certificate not yet valid", lambda gw: signed(gw, "future"), "SIG_NOT_YET_VALID"),
    ("authentication key used to sign", lambda gw: signed(gw, "aigerim", key="auth"), "SIG_NOT_SIGNING_KEY"),
    ("document not matching the service schema", schema_invalid, "CLIENT_DOCUMENT_INVALID"),
])
async def test_refused_applications(gw, shep, case: str, make, code: str) -> None:
    calls = gw.library_calls
    result = await send_soap(shep, make(gw))
    assert not result.ok, case
    assert result.status_code == code, (case, result)
    assert set(result.error_data["messages"]) == {"kk", "ru", "en"}
    assert gw.library_calls == calls, f"{case} reached the back-end"
    assert await stored_keys(gw) == [], f"{case} left state behind"


@pytest.mark.parametrize(("case", "signer", "bin_of", "code"), [
    ("employee without signing rights", "kitap-clerk", "kitap", "ID_ROLE_MISSING"),
    ("head of another organisation", "murager-head", "kitap", "ID_BIN_MISMATCH"),
    ("a citizen's personal certificate", "aigerim", "kitap", "ID_NOT_ORGANISATION_CERTIFICATE"),
])
async def test_refused_organisation_applications(gw, shep, case: str, signer: str, bin_of: str, code: str) -> None:
    person = gw.pki.person(signer)
    document = signed_application(person, FUND_SUBMISSION_SERVICE, bin=gw.pki.organisations[bin_of]["bin"])
    calls = gw.library[LIBRARY_STATE].submissions_received
    result = await send_soap(shep, document, service_id=FUND_SUBMISSION_SERVICE)
    assert result.status_code == code, (case, result)
    assert gw.library[LIBRARY_STATE].submissions_received == calls
    assert await stored_keys(gw) == []


async def test_organisation_employee_cannot_sign_a_personal_application(gw, shep) -> None:
    result = await send_soap(shep, signed(gw, "kitap-signer"))
    assert result.status_code == "ID_NOT_INDIVIDUAL_CERTIFICATE"


async def test_signature_refusal_carries_report_and_sub_indication(gw, shep) -> None:
    result = await send_soap(shep, signed(gw, "expired"))
    assert result.error_data["subIndication"] == "OUT_OF_BOUNDS_NO_POE"
    report = result.error_data["validationReport"]
    assert report["indication"] == "INDETERMINATE"
    assert report["error_code"] == "SIG_EXPIRED"
    assert report["signer"]["iin"] == gw.pki.person("expired").iin


@pytest.mark.parametrize(("sender", "password", "code"), [
    ("nobody", "whatever", "CLIENT_BAD_CREDENTIALS"),  # an unknown id looks like a wrong password
    (PORTAL, "wrong-password", "CLIENT_BAD_CREDENTIALS"),
    (PORTAL, None, "CLIENT_BAD_CREDENTIALS"),
    (OFFICE, OFFICE_PASSWORD, "CLIENT_ACCESS_DENIED"),
])
async def test_sender_authentication_and_access(gw, shep, sender, password, code) -> None:
    calls = gw.library_calls
    result = await send_soap(shep, signed(gw, "aigerim"), sender_id=sender, password=password)
    assert result.status_code == code
    assert gw.library_calls == calls


async def test_unknown_service(gw, shep) -> None:
    result = await send_soap(shep, signed(gw, "aigerim"), service_id="no.such.service")
    assert result.status_code == "CLIENT_UNKNOWN_SERVICE"


@pytest.mark.parametrize("offset", [timedelta(hours=-2), timedelta(hours=2)])
async def test_stale_or_future_message_date(gw, shep, offset: timedelta) -> None:
    result = await send_soap(shep, signed(gw, "aigerim"), message_date=datetime.now(UTC) + offset)
    assert result.status_code == "CLIENT_STALE_MESSAGE"


@pytest.mark.parametrize(("case", "body", "content_type", "code", "status"), [
    ("malformed XML", b"<soap:Envelope xmlns:soap='x'><unclosed>", "text/xml", "CLIENT_MALFORMED_XML", 500),
    ("XXE", b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
     "text/xml", "CLIENT_FORBIDDEN_XML", 500),
    ("oversize body", b"<a>" + b"x" * (300 * 1024) + b"</a>", "text/xml", "CLIENT_BODY_TOO_LARGE", 500),
    ("not a SOAP envelope", b"<hello/>", "text/xml", "CLIENT_NOT_SOAP", 500),
    ("wrong content type", b"{}", "application/json", "CLIENT_UNSUPPORTED_MEDIA_TYPE", 500),
    ("unknown operation", f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><t:GetMessages xmlns:t="{TYPES}"/></s:Body>'
     "</s:Envelope>".encode(), "text/xml", "CLIENT_UNKNOWN_OPERATION", 500),
    ("envelope not matching the XSD", envelope(info_extra="<bogus/>"), "text/xml", "CLIENT_ENVELOPE_INVALID", 500),
    ("no business document", envelope(""), "text/xml", "CLIENT_DOCUMENT_MISSING", 500),
    ("escaped document that is not XML", envelope("&lt;broken"), "text/xml", "CLIENT_MALFORMED_XML", 500),
])
async def test_malformed_requests(gw, http, case, body, content_type, code, status) -> None:
    calls = gw.library_calls
    http_status, answer = await post_soap(gw, http, body, content_type)
    assert http_status == status, case
    assert fault_code(answer) == code, case
    assert gw.library_calls == calls


async def test_fault_message_follows_accept_language(gw, http) -> None:
    _, answer = await post_soap(gw, http, b"<hello/>", language="kk, ru;q=0.5")
    assert answer.findtext(f".//{{{TYPES}}}{FAULT}/errorMessage") == "SOAP 1.1 конверті күтілген."
    _, answer = await post_soap(gw, http, b"<hello/>", language="ru")
    assert answer.findtext(".//faultstring") == "Ожидался конверт SOAP 1.1."


async def test_backend_down_is_a_clear_failure_recorded_in_the_cabinet(gw, shep, http) -> None:
    aigerim = gw.pki.person("aigerim")
    mid = message_id()
    document = signed(gw, "aigerim")  # the repeat below sends the same document
    result = await send_soap(shep, document, service_id=DOWN_SERVICE, message_id=mid)
    assert result.status_code == "PROVIDER_UNAVAILABLE"
    async with http.get(f"{gw.url}/api/v1/cabinet/{aigerim.iin}/applications/{mid}", headers=gw.auth()) as resp:
        item = await resp.json()
    assert item["status"] == "failed"
    assert item["errorCode"] == "PROVIDER_UNAVAILABLE"
    assert [e["status"] for e in item["history"]] == ["accepted", "routed", "failed"]
    again = await send_soap(shep, document, service_id=DOWN_SERVICE, message_id=mid)
    assert again.status_code == "PROVIDER_UNAVAILABLE", "a repeated messageId gets the first answer"


@pytest.mark.parametrize(("status", "count", "code"), [
    (503, 3, "PROVIDER_UNAVAILABLE"),   # transient, every one of the 3 attempts fails
    (422, 1, "PROVIDER_REJECTED"),      # permanent: not retried
])
async def test_backend_errors_map_to_provider_codes(gw, shep, http, status: int, count: int, code: str) -> None:
    library_url = gw.settings.services[READER_TICKET_SERVICE].endpoint.rsplit("/api/", 1)[0]
    async with http.post(f"{library_url}/_control/fail", json={"status": status, "count": count}) as response:
        assert response.status == 200
    result = await send_soap(shep, signed(gw, "saule"))
    assert result.status_code == code
    async with http.post(f"{library_url}/_control/reset"):
        pass


async def test_a_transient_backend_failure_is_retried(gw, shep, http) -> None:
    library_url = gw.settings.services[READER_TICKET_SERVICE].endpoint.rsplit("/api/", 1)[0]
    async with http.post(f"{library_url}/_control/fail", json={"status": 503, "count": 2}) as response:
        assert response.status == 200
    result = await send_soap(shep, signed(gw, "saule"))
    assert result.ok, result


async def test_rest_refusals_are_problem_documents(gw, http) -> None:
    async with http.post(f"{gw.url}/api/v1/requests", data=b"{not json",
                         headers={"Content-Type": "application/json"}) as response:
        body = await response.json(content_type=None)
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    assert body["code"] == "CLIENT_MALFORMED_JSON"
    assert body["sessionId"].startswith("{")

    document = etree.tostring(signed(gw, "expired"), encoding="unicode")
    request = {"requestInfo": {"messageId": message_id(), "serviceId": READER_TICKET_SERVICE,
                               "messageDate": datetime.now(UTC).isoformat(),
                               "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
               "requestData": {"data": document}}
    async with http.post(f"{gw.url}/api/v1/requests", json=request,
                         headers={"Accept-Language": "ru"}) as response:
        body = await response.json(content_type=None)
    assert response.status == 422
    assert body["code"] == "SIG_EXPIRED"
    assert body["title"] == "Срок действия сертификата истёк."
    assert body["validationReport"]["sub_indication"] == "OUT_OF_BOUNDS_NO_POE"

    del request["requestInfo"]["serviceId"]
    async with http.post(f"{gw.url}/api/v1/requests", data=json.dumps(request),
                         headers={"Content-Type": "application/json"}) as response:
        body = await response.json(content_type=None)
    assert body["code"] == "CLIENT_ENVELOPE_INVALID"
    assert "serviceId" in body["detail"]


async def test_cabinet_is_only_for_the_portal_and_only_under_the_applicants_iin(gw, shep, http) -> None:
    aigerim, daniyar = gw.pki.person("aigerim"), gw.pki.person("daniyar")
    mid = message_id()
    assert (await send_soap(shep, signed(gw, "aigerim"), message_id=mid)).ok
    base = f"{gw.url}/api/v1/cabinet"

    async with http.get(f"{base}/{aigerim.iin}/applications") as response:
        assert response.status == 401
        assert (await response.json(content_type=None))["code"] == "CLIENT_BAD_CREDENTIALS"
    async with http.get(f"{base}/{aigerim.iin}/applications", headers=gw.auth(OFFICE, OFFICE_PASSWORD)) as response:
        assert response.status == 403
        assert (await response.json(content_type=None))["code"] == "CLIENT_ACCESS_DENIED"
    async with http.get(f"{base}/{daniyar.iin}/applications/{mid}", headers=gw.auth()) as response:
        assert response.status == 404
        assert (await response.json(content_type=None))["code"] == "CLIENT_NOT_FOUND"
    async with http.get(f"{base}/{daniyar.iin}/applications", headers=gw.auth()) as response:
        assert (await response.json())["applications"] == []
    async with http.get(f"{base}/123456789012/applications", headers=gw.auth()) as response:
        assert (await response.json(content_type=None))["code"] == "ID_IIN_INVALID"


async def stored_keys(gw) -> list[bytes]:
    """What Redis holds, but for the sign-in bookkeeping (failure counts, addresses known to senders)."""
    return [key for key in await gw.redis.keys("*") if not key.startswith(b"egov:auth:")]
