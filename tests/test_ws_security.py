"""WS-Security as a sender's credential (issue 12, item 3): a SendMessage signed by the sender's system certificate
is accepted over real sockets; tampered, replayed, expired, wrapped, wrongly signed or unsigned ones are refused
with their codes; an unknown mustUnderstand header gets the SOAP MustUnderstand fault on both channels; the SOAP
connector's signed calls are verified by the E-licensing mock."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from connectors.base import ConnectorError, Submission
from connectors.soap import SoapConnector
from gateway.access.senders import hash_password
from gateway.config import ConfigError, SenderAuth, SenderSettings, check_settings, settings_from_dict
from gateway.shell.serve import start_site
from mocks.elicense import build_export_application, create_elicense_app, default_attachments, sample_items
from mocks.elicense.wss import RequiredWsSecurity
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from mocks.portal.shep_client import AsyncChannelClient, SyncChannelClient
from signing.signer import SigningKey
from signing.wssecurity import DS, SECURITY, WSU, WSU_ID, EnvelopeVerifier, WsSecurityPolicy
from signing.wssecurity_sign import sign_envelope
from tests.helpers import (
    ASYNC_TYPES,
    CLI,
    PORTAL,
    PORTAL_PASSWORD,
    PULL,
    PULL_PASSWORD,
    ROOT,
    SOAP_ENV,
    SYNC_TYPES,
    GatewayUnderTest,
    free_port,
    message_id,
    second_gateway,
    system_signer,
    trusting_verifier,
)

WSS_SENDER = "wss-portal"
"Authenticates with the portal system certificate's WS-Security signature only (no password)."
BOTH_SENDER, BOTH_PASSWORD = "wss-both", "both-test-password"
"Needs the password and the signature."
OTHER_BIN_SENDER = "wss-library"
"Expects the library's certificate: the portal's signature is the wrong BIN."
TEXT_XML = {"Content-Type": "text/xml; charset=utf-8"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def wss_url(system: GatewayUnderTest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A second gateway (same Redis) whose senders include ones that authenticate with WS-Security."""
    bins = system.pki.system_bins
    senders = {
        **system.settings.senders,
        WSS_SENDER: SenderSettings(auth=(SenderAuth.WS_SECURITY,), ws_security_bin=bins["portal"]),
        BOTH_SENDER: SenderSettings(password_hash=hash_password(BOTH_PASSWORD), ws_security_bin=bins["portal"],
                                    auth=(SenderAuth.PASSWORD, SenderAuth.WS_SECURITY)),
        OTHER_BIN_SENDER: SenderSettings(auth=(SenderAuth.WS_SECURITY,), ws_security_bin=bins["library"]),
    }
    runner, url = await second_gateway(system, tmp_path_factory.mktemp("wss"), senders=senders)
    try:
        yield url
    finally:
        await runner.cleanup()


def portal_key(gw: GatewayUnderTest) -> SigningKey:
    return system_signer(gw.pki, "portal").key


def application(gw: GatewayUnderTest) -> etree._Element:
    return signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE)


def sync_envelope(document: etree._Element, sender: str, password: str | None = None) -> etree._Element:
    secret = f"<password>{password}</password>" if password else ""
    return etree.fromstring(f"""<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:t="{SYNC_TYPES}"><soap:Body>
        <t:SendMessage><request><requestInfo><messageId>{message_id()}</messageId>
        <serviceId>{READER_TICKET_SERVICE}</serviceId><messageDate>{datetime.now(UTC).isoformat()}</messageDate>
        <sender><senderId>{sender}</senderId>{secret}</sender></requestInfo>
        <requestData><data>{etree.tostring(document, encoding="unicode")}</data></requestData></request>
        </t:SendMessage></soap:Body></soap:Envelope>""")


def async_envelope(document: etree._Element, sender: str, password: str | None = None) -> etree._Element:
    secret = f"<password>{password}</password>" if password else ""
    return etree.fromstring(f"""<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:a="{ASYNC_TYPES}"><soap:Body>
        <a:sendMessage><request><messageInfo><messageId>{message_id()}</messageId>
        <serviceId>{READER_TICKET_SERVICE}</serviceId><messageType>REQUEST</messageType>
        <messageDate>{datetime.now(UTC).isoformat()}</messageDate>
        <sender><senderId>{sender}</senderId>{secret}</sender></messageInfo>
        <messageData><data>{etree.tostring(document, encoding="unicode")}</data></messageData></request>
        </a:sendMessage></soap:Body></soap:Envelope>""")


def signed_bytes(gw: GatewayUnderTest, sender: str = WSS_SENDER, **options: object) -> bytes:
    envelope = sign_envelope(sync_envelope(application(gw), sender), portal_key(gw), **options)  # type: ignore[arg-type]
    return etree.tostring(envelope)


async def post(http: aiohttp.ClientSession, url: str, body: bytes,
               path: str = "/shep/sync") -> tuple[int, etree._Element]:
    async with http.post(f"{url}{path}", data=body, headers=TEXT_XML) as response:
        return response.status, etree.fromstring(await response.read())


def code_of(answer: etree._Element) -> str | None:
    """errorCode of a Fault (whatever its detail element is named), or the success status code."""
    return answer.findtext(".//errorCode") or answer.findtext(".//status/code")


def security_of(envelope: etree._Element) -> etree._Element:
    found = envelope.find(f"{{{SOAP_ENV}}}Header/{SECURITY}")
    assert found is not None
    return found


async def test_signed_send_message_is_accepted(gw: GatewayUnderTest, wss_url: str, http: aiohttp.ClientSession) -> None:
    status, answer = await post(http, wss_url, signed_bytes(gw))
    assert (status, code_of(answer)) == (200, "SCSS001"), etree.tostring(answer)
    assert answer.find(".//responseData/data") is not None  # the library's signed result came back
    # Both credentials where the sender asks for both: the signature alone is not enough.
    body = sign_envelope(sync_envelope(application(gw), BOTH_SENDER, BOTH_PASSWORD), portal_key(gw))
    assert code_of((await post(http, wss_url, etree.tostring(body)))[1]) == "SCSS001"
    body = sign_envelope(sync_envelope(application(gw), BOTH_SENDER), portal_key(gw))
    assert code_of((await post(http, wss_url, etree.tostring(body)))[1]) == "CLIENT_BAD_CREDENTIALS"


async def test_the_portal_clients_sign_with_ws_security(gw: GatewayUnderTest, wss_url: str) -> None:
    """The mock portal's zeep clients sign their envelopes when given the portal's system key."""
    sync = await asyncio.to_thread(SyncChannelClient, f"{wss_url}/shep/sync?wsdl", ws_security_key=portal_key(gw))
    result = await asyncio.to_thread(lambda: sync.send(service_id=READER_TICKET_SERVICE, sender_id=WSS_SENDER,
                                                       password=None, document=application(gw)))
    assert (result.ok, result.status_code) == (True, "SCSS001"), result
    plain = await asyncio.to_thread(SyncChannelClient, f"{wss_url}/shep/sync?wsdl")
    result = await asyncio.to_thread(lambda: plain.send(service_id=READER_TICKET_SERVICE, sender_id=WSS_SENDER,
                                                        password=None, document=application(gw)))
    assert result.status_code == "CLIENT_WSS_REQUIRED"
    client = await asyncio.to_thread(AsyncChannelClient, f"{wss_url}/shep/async?wsdl", ws_security_key=portal_key(gw))
    result = await asyncio.to_thread(lambda: client.send(service_id=READER_TICKET_SERVICE, sender_id=WSS_SENDER,
                                                         password=None, document=application(gw)))
    assert (result.ok, result.status_code) == (True, "ACCEPTED"), result


async def test_no_header_where_required(gw: GatewayUnderTest, wss_url: str, http: aiohttp.ClientSession) -> None:
    status, answer = await post(http, wss_url, etree.tostring(sync_envelope(application(gw), WSS_SENDER)))
    assert (status, code_of(answer)) == (500, "CLIENT_WSS_REQUIRED")
    unsigned = etree.tostring(async_envelope(application(gw), WSS_SENDER))
    assert code_of((await post(http, wss_url, unsigned, "/shep/async"))[1]) == "CLIENT_WSS_REQUIRED"


async def test_tampered_body_and_timestamp(gw: GatewayUnderTest, wss_url: str, http: aiohttp.ClientSession) -> None:
    raw = signed_bytes(gw)
    body_changed = raw.replace(f"<serviceId>{READER_TICKET_SERVICE}".encode(),
                               f"<serviceId>{READER_TICKET_SERVICE}.flaky".encode())
    assert body_changed != raw
    assert code_of((await post(http, wss_url, body_changed))[1]) == "SIG_HASH_FAILURE"
    envelope = etree.fromstring(signed_bytes(gw))
    created = security_of(envelope).find(f"{{{WSU}}}Timestamp/{{{WSU}}}Created")
    assert created is not None and created.text
    created.text = (datetime.fromisoformat(created.text.replace("Z", "+00:00")) + timedelta(seconds=1)).isoformat()
    assert code_of((await post(http, wss_url, etree.tostring(envelope)))[1]) == "SIG_HASH_FAILURE"


async def test_gost_signature_method_is_not_allowed_for_ws_security(gw: GatewayUnderTest, wss_url: str,
                                                                    http: aiohttp.ClientSession) -> None:
    """GOST is verified for documents only: in an envelope its method is refused before any certificate work."""
    envelope = etree.fromstring(signed_bytes(gw))
    method = security_of(envelope).find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod")
    method.set("Algorithm", "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:gostr34102015-gostr34112015-512")
    assert code_of((await post(http, wss_url, etree.tostring(envelope)))[1]) == "SIG_CRYPTO_CONSTRAINTS_FAILURE"


async def test_replay_is_refused(gw: GatewayUnderTest, wss_url: str, http: aiohttp.ClientSession) -> None:
    raw = signed_bytes(gw)
    assert code_of((await post(http, wss_url, raw))[1]) == "SCSS001"
    assert code_of((await post(http, wss_url, raw))[1]) == "CLIENT_WSS_REPLAY"


async def test_replay_after_expiry_and_timestamps_out_of_bounds(gw: GatewayUnderTest, wss_url: str,
                                                                http: aiohttp.ClientSession) -> None:
    raw = signed_bytes(gw, lifetime=timedelta(seconds=2))
    assert code_of((await post(http, wss_url, raw))[1]) == "SCSS001"
    expires = datetime.now(UTC) + timedelta(seconds=2)
    while datetime.now(UTC) <= expires:  # waiting for the clock itself: the Timestamp's own deadline
        await asyncio.sleep(0.1)
    assert code_of((await post(http, wss_url, raw))[1]) == "CLIENT_WSS_TIMESTAMP_EXPIRED"
    future = signed_bytes(gw, now=datetime.now(UTC) + timedelta(minutes=10))
    assert code_of((await post(http, wss_url, future))[1]) == "CLIENT_WSS_TIMESTAMP_INVALID"
    too_long = signed_bytes(gw, lifetime=timedelta(hours=1))
    assert code_of((await post(http, wss_url, too_long))[1]) == "CLIENT_WSS_TIMESTAMP_INVALID"


async def test_wrapped_body_is_refused(gw: GatewayUnderTest, wss_url: str, http: aiohttp.ClientSession) -> None:
    """The signed Body moved into a header and another Body processed: the reference no longer names the Body."""
    for keep_id in (False, True):
        envelope = etree.fromstring(signed_bytes(gw))
        signed_body = envelope.find(f"{{{SOAP_ENV}}}Body")
        assert signed_body is not None
        wrapper = etree.SubElement(envelope.find(f"{{{SOAP_ENV}}}Header"), "{urn:attacker}Wrapper")
        other = copy.deepcopy(signed_body)
        other.find(".//messageId").text = message_id()  # type: ignore[union-attr]
        if not keep_id:
            del other.attrib[WSU_ID]
        envelope.replace(signed_body, other)
        wrapper.append(signed_body)
        status, answer = await post(http, wss_url, etree.tostring(envelope))
        assert (status, code_of(answer)) == (500, "CLIENT_WSS_INVALID"), keep_id


async def test_wrong_bin_untrusted_and_extra_signature(gw: GatewayUnderTest, wss_url: str,
                                                       http: aiohttp.ClientSession) -> None:
    assert code_of((await post(http, wss_url, signed_bytes(gw, OTHER_BIN_SENDER)))[1]) == "CLIENT_WSS_BIN_MISMATCH"
    envelope = etree.fromstring(signed_bytes(gw))
    security = security_of(envelope)
    security.append(copy.deepcopy(security.find(f"{{{DS}}}Signature")))
    assert code_of((await post(http, wss_url, etree.tostring(envelope)))[1]) == "CLIENT_WSS_INVALID"
    envelope = etree.fromstring(signed_bytes(gw))  # a second one tucked inside the first's token reference
    signature = security_of(envelope).find(f"{{{DS}}}Signature")
    assert signature is not None
    reference = signature.find(f"{{{DS}}}KeyInfo/{{http://docs.oasis-open.org/wss/2004/01/"
                               "oasis-200401-wss-wssecurity-secext-1.0.xsd}SecurityTokenReference")
    assert reference is not None
    reference.append(copy.deepcopy(signature))
    assert code_of((await post(http, wss_url, etree.tostring(envelope)))[1]) == "CLIENT_WSS_INVALID"
    stranger = sign_envelope(sync_envelope(application(gw), WSS_SENDER), self_signed(gw.pki.system_bins["portal"]))
    assert code_of((await post(http, wss_url, etree.tostring(stranger)))[1]) == "SIG_NO_CERTIFICATE_CHAIN_FOUND"
    # A citizen's own certificate is trusted, but it is not a system certificate of an organisation.
    files = gw.pki.person("aigerim").sign
    citizen = sign_envelope(sync_envelope(application(gw), WSS_SENDER), SigningKey.from_pem(files.cert, files.key))
    assert code_of((await post(http, wss_url, etree.tostring(citizen)))[1]) == "CLIENT_WSS_NOT_SYSTEM_CERTIFICATE"


def self_signed(bin_: str) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"BIN{bin_}")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return SigningKey(key, certificate)


async def test_must_understand_on_both_channels(gw: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    for path, build, sender, password in (("/shep/sync", sync_envelope, PORTAL, PORTAL_PASSWORD),
                                          ("/shep/async", async_envelope, PULL, PULL_PASSWORD)):
        for flag, expected in (("1", "CLIENT_MUST_UNDERSTAND"), ("true", "CLIENT_MUST_UNDERSTAND"), ("0", None)):
            envelope = build(application(gw), sender, password)
            header = etree.Element(f"{{{SOAP_ENV}}}Header")
            etree.SubElement(header, "{urn:unknown}Routing", {f"{{{SOAP_ENV}}}mustUnderstand": flag})
            envelope.insert(0, header)
            status, answer = await post(http, gw.url, etree.tostring(envelope), path)
            if expected is None:  # not marked: ignored, the request goes through
                assert status == 200, etree.tostring(answer)
                continue
            assert (status, code_of(answer)) == (500, expected), (path, flag)
            assert answer.findtext(f".//{{{SOAP_ENV}}}Fault/faultcode") == "soap:MustUnderstand"
            # SOAP 1.1 §4.4: no detail for a header error; the ErrorInfo is a header entry
            assert answer.find(f".//{{{SOAP_ENV}}}Fault/detail") is None
            assert answer.findtext(f"{{{SOAP_ENV}}}Header//errorCode") == expected


async def test_security_header_is_not_understood_where_disabled(gw: GatewayUnderTest, tmp_path: Path,
                                                                http: aiohttp.ClientSession) -> None:
    runner, url = await second_gateway(gw, tmp_path, ws_security=replace(gw.settings.ws_security, endpoints=("async",)))
    try:
        body = etree.tostring(sign_envelope(sync_envelope(application(gw), PORTAL, PORTAL_PASSWORD), portal_key(gw)))
        status, answer = await post(http, url, body)
        assert (status, code_of(answer)) == (500, "CLIENT_MUST_UNDERSTAND")
        assert answer.findtext(f".//{{{SOAP_ENV}}}Fault/faultcode") == "soap:MustUnderstand"
        body = etree.tostring(sign_envelope(async_envelope(application(gw), PULL, PULL_PASSWORD), portal_key(gw)))
        assert (await post(http, url, body, "/shep/async"))[0] == 200
    finally:
        await runner.cleanup()


async def test_connector_signs_calls_the_elicense_mock_verifies(gw: GatewayUnderTest) -> None:
    verifier = EnvelopeVerifier(trusting_verifier(gw.pki), WsSecurityPolicy())
    app = create_elicense_app(signer=system_signer(gw.pki, "elicense"),
                              ws_security=RequiredWsSecurity(verifier, gw.pki.system_bins["gateway"]))
    port = free_port()
    runner = await start_site(app, "127.0.0.1", port)
    wsdl = f"http://127.0.0.1:{port}/soap?wsdl"
    try:
        gateway_key = system_signer(gw.pki, "gateway").key
        for connector, expected in ((SoapConnector(ws_security_key=gateway_key, signed_endpoints=frozenset({wsdl})),
                                     None),
                                    (SoapConnector(), "EL_WS_SECURITY"),
                                    (SoapConnector(ws_security_key=portal_key(gw), signed_endpoints=frozenset({wsdl})),
                                     "EL_WS_SECURITY")):
            session = "{" + message_id() + "}"
            items = sample_items()
            document = build_export_application(
                iin=gw.pki.person("aigerim").iin, name="AIGERIM", items=items, attachments=default_attachments(items),
                export_from=date.today() + timedelta(days=30), return_by=date.today() + timedelta(days=90),
                application_id=session)
            submission = Submission(endpoint=wsdl, service_id="elicense", application_id=session,
                                    document=etree.tostring(document), timeout=10)
            if expected is None:
                answer = await connector.submit(submission)
                assert answer.reference
                continue
            with pytest.raises(ConnectorError) as refused:
                await connector.submit(submission)
            assert refused.value.code == "PROVIDER_REJECTED"
            assert "WS-Security" in refused.value.detail, refused.value.detail
    finally:
        await runner.cleanup()


def test_sender_settings_for_ws_security() -> None:
    """`auth = ["ws-security"]` needs no password but a BIN; a REST service cannot sign its calls."""
    def check(raw: dict[str, object]) -> None:
        check_settings(settings_from_dict(raw))

    check({"senders": {"s": {"auth": ["ws-security"], "ws_security_bin": "061240063048"}}})
    with pytest.raises(ConfigError, match=r"senders\.s\.ws_security_bin"):
        check({"senders": {"s": {"auth": ["ws-security"]}}})
    with pytest.raises(ConfigError, match=r"senders\.s\.password_hash"):
        check({"senders": {"s": {"auth": ["password", "ws-security"], "ws_security_bin": "061240063048"}}})
    with pytest.raises(ConfigError, match=r"senders\.s\.auth\[0\]"):
        check({"senders": {"s": {"auth": ["certificate"]}}})
    with pytest.raises(ConfigError, match=r"services\.x\.ws_security"):
        check({"services": {"x": {"endpoint": "http://127.0.0.1:1/", "ws_security": True}}})
    with pytest.raises(ConfigError, match=r"ws_security\.endpoints"):
        check({"ws_security": {"endpoints": ["rest"]}})


async def test_submit_command_signs_with_ws_security(gw: GatewayUnderTest, wss_url: str) -> None:
    """`egov-gateway submit --ws-security portal` (the demo's portal-wss sender works the same way)."""
    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, "submit", "--as", "aigerim", "--sender", WSS_SENDER, "--json", *extra,
                               "--gateway", wss_url, "--state-dir", str(gw.pki.root.parent)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)

    signed = await asyncio.to_thread(run, "--ws-security", "portal")
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert json.loads(signed.stdout)["status"] == "SCSS001"
    unsigned = await asyncio.to_thread(run, "--password", "unused")
    assert unsigned.returncode != 0
    assert json.loads(unsigned.stdout)["status"] == "CLIENT_WSS_REQUIRED"
