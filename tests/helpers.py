"""Helpers shared by the test modules: the test system's names and passwords, its settings, and small
functions to drive and inspect it. Fixtures live in conftest.py; no test module imports another one."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.resources
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from lxml import etree
from redis.asyncio import Redis
from zeep import xsd

from connectors.queue import QueueSettings
from gateway.access.senders import hash_password
from gateway.config import (
    LimitSettings,
    ListenSettings,
    MessageLogSettings,
    RetentionSettings,
    SenderSettings,
    ServiceSettings,
    Settings,
    SignerSettings,
    TrustSettings,
)
from gateway.messagelog.journal import LogKeys
from gateway.shell.app import create_app
from gateway.shell.ports import unused_port
from gateway.shell.serve import start_site
from mocks.library import LIBRARY_STATE
from mocks.pki import TestPki
from mocks.portal.applicant import (
    ELICENSE_SERVICE,
    FUND_SUBMISSION_SERVICE,
    READER_TICKET_SERVICE,
    signed_application,
)
from mocks.portal.shep_client import SyncChannelClient
from mocks.world.demo import elicense_service, fund_submission_service
from signing.policy import RevocationMode, VerificationPolicy
from signing.revocation import RevocationSettings
from signing.signer import DocumentSigner, SigningKey
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier

T = TypeVar("T")

# --- the test system's parties -----------------------------------------------------------------------

PORTAL, PORTAL_PASSWORD = "portal", "portal-test-password"
OFFICE, OFFICE_PASSWORD = "registry-office", "office-test-password"
DOWN_SERVICE = "kazneb.reader-ticket.down"
FLAKY_SERVICE = "kazneb.reader-ticket.flaky"
DESK, DESK_PASSWORD = "desk", "desk-test-password"
OPERATOR, OPERATOR_PASSWORD = "operator", "operator-test-password"
PULL, PULL_PASSWORD = "portal-pull", "pull-test-password"  # a portal without callbacks: it uses getMessages
PORTAL_B, PORTAL_B_PASSWORD = "portal-b", "portal-b-test-password"  # a second portal: reads its own cabinet only
NATIONAL, NATIONAL_PASSWORD = "national-portal", "national-test-password"  # granted: reads every sender's

FINAL = frozenset({"completed", "refused", "failed", "stopped"})
"Statuses an application never leaves."

# --- places and names ----------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
"The repository."
ARTIFACTS = ROOT / "test-artifacts"
"Screenshots and traces the browser tests leave behind."
CLI = [sys.executable, "-m", "gateway.shell.cli"]
"The egov-gateway command, run from this interpreter."

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SYNC_TYPES = "http://bip.bee.kz/SyncChannel/v10/Types"
ASYNC_TYPES = "http://bip.bee.kz/AsyncChannel/v10/types"
DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XML = {"Content-Type": "application/xml"}

# zeep writes an lxml element as a *child* of an anyType element only when it is wrapped in an AnyObject whose
# type is a sequence of xsd:any. It needs a qname because zeep always writes xsi:type for an AnyObject; naming
# it xsd:anyType keeps that xsi:type truthful (and schema-valid).
ANY_CONTENT = xsd.ComplexType(xsd.Sequence([xsd.Any()]), qname=etree.QName(XSD_NS, "anyType"))


class Clock:
    """Shared by the mock OCSP responder and the checkers, so a test moves time forward for both."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Responder:
    """The mock PKI's OCSP/CRL responder on a real socket, and its clock."""
    url: str
    clock: Clock


@contextlib.asynccontextmanager
async def running_responder(pki: TestPki) -> AsyncIterator[Responder]:
    from mocks.pki.revocation import run_revocation

    clock, port = Clock(), free_port()
    runner = await run_revocation(pki, port=port, clock=clock)
    try:
        yield Responder(f"http://127.0.0.1:{port}", clock)
    finally:
        await runner.cleanup()


def any_content(element: etree._Element) -> xsd.AnyObject:
    """``element`` as the content of an anyType value (a copy: zeep *moves* the element into the envelope)."""
    return xsd.AnyObject(ANY_CONTENT, {"_value_1": copy.deepcopy(element)})


def free_port() -> int:
    """A port for a server the test starts, out of the way of client sockets (see :mod:`gateway.shell.ports`)."""
    return unused_port()


def message_id() -> str:
    return str(uuid.uuid4())


def to_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


def kazneb_schema(name: str) -> etree.XMLSchema:
    """One of the library's schemas from the ``schemas`` package."""
    source = (importlib.resources.files("schemas") / "kazneb" / name).read_bytes()
    return etree.XMLSchema(etree.fromstring(source))


# --- keys and signatures -------------------------------------------------------------------------------


def rest_request(document: etree._Element) -> dict:
    """A REST submission of ``document`` by the portal, with a fresh messageId."""
    return {"requestInfo": {"messageId": message_id(), "serviceId": READER_TICKET_SERVICE,
                            "messageDate": datetime.now(UTC).isoformat(),
                            "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
            "requestData": {"data": etree.tostring(document, encoding="unicode")}}


def system_signer(pki: TestPki, name: str) -> DocumentSigner:
    """The signer of one of the test PKI's organisations (``gateway``, ``library``, ``elicense``)."""
    files = pki.systems[name]
    return DocumentSigner(SigningKey.from_pem(files.cert, files.key))


def trusting_verifier(pki: TestPki) -> DocumentVerifier:
    """A verifier that trusts the test PKI, with the default policy (revocation off)."""
    trust = TrustStore.from_files(pki.trust_anchors, pki.intermediates)
    return DocumentVerifier(VerificationPolicy(), trust, gost_paths=trust)


# --- the system under test -----------------------------------------------------------------------------


@dataclass
class GatewayUnderTest:
    """Handles on the running system for tests to drive and inspect."""

    url: str
    settings: Settings
    pki: TestPki
    library: web.Application
    redis: Redis
    redis_url: str
    revocation_url: str
    library_url: str
    elicense_url: str
    elicense: web.Application
    callbacks: web.Application

    @property
    def library_calls(self) -> int:
        return self.library[LIBRARY_STATE].registrations_received

    def auth(self, sender: str = PORTAL, password: str = PORTAL_PASSWORD) -> dict[str, str]:
        """HTTP Basic headers for the cabinet API."""
        return {"Authorization": aiohttp.encode_basic_auth(sender, password)}


def make_settings(state_dir: Path, pki: TestPki, *, port: int, library_url: str, revocation_url: str | None = None,
                  elicense_url: str | None = None, callback_url: str | None = None) -> Settings:
    """The test system's configuration; revocation is hard-fail (the default) against ``revocation_url``."""
    gateway_keys = pki.systems["gateway"]
    revocation = (RevocationSettings(ocsp_url=f"{revocation_url}/ocsp", crl_urls=(
        f"{revocation_url}/crl/nca.crl", f"{revocation_url}/crl/root.crl", f"{revocation_url}/crl/gost-nca.crl",
        f"{revocation_url}/crl/gost-root.crl"))
                  if revocation_url else RevocationSettings(mode=RevocationMode.OFF))
    return Settings(
        revocation=revocation,
        state_dir=state_dir,
        listen=ListenSettings(port=port),
        limits=LimitSettings(max_body_bytes=256 * 1024),
        trust=TrustSettings(anchors=pki.trust_anchors, intermediates=pki.intermediates),
        signer=SignerSettings(cert=gateway_keys.cert, key=gateway_keys.key),
        senders={
            PORTAL: SenderSettings(password_hash=hash_password(PORTAL_PASSWORD), cabinet=True,
                                   callback_url=callback_url),
            OFFICE: SenderSettings(password_hash=hash_password(OFFICE_PASSWORD), services=("other.service",)),
            PULL: SenderSettings(password_hash=hash_password(PULL_PASSWORD)),
            PORTAL_B: SenderSettings(password_hash=hash_password(PORTAL_B_PASSWORD), cabinet=True),
            NATIONAL: SenderSettings(password_hash=hash_password(NATIONAL_PASSWORD), cabinet=True,
                                     cabinet_reads_all=True),
            DESK: SenderSettings(password_hash=hash_password(DESK_PASSWORD), services=(),
                                 jobs=(FUND_SUBMISSION_SERVICE,)),
            OPERATOR: SenderSettings(password_hash=hash_password(OPERATOR_PASSWORD), services=(), operator=True),
        },
        queue=QueueSettings(visibility_timeout_ms=400, max_attempts=3),
        # No sweeper in the session's gateway: its lease and reconciliation marker would turn up in the tests that
        # count what Redis holds. tests/test_retention.py starts nodes that sweep.
        retention=RetentionSettings(enabled=False),
        services={
            READER_TICKET_SERVICE: ServiceSettings(
                endpoint=f"{library_url}/api/v1/readers",
                document_schema="kazneb/reader-registration.xsd",
                result_schema="kazneb/reader-ticket.xsd",
                timeout_seconds=5,
                retry_attempts=3,
                retry_base_seconds=0.05,
                breaker_failures=20,  # tests inject failures into this shared back-end; the breaker has its own test
            ),
            FUND_SUBMISSION_SERVICE: fund_submission_service(pki.system_bins["library"]),
            ELICENSE_SERVICE: elicense_service(elicense_url or f"http://127.0.0.1:{free_port()}", poll_seconds=0.2,
                                               provider_bin=pki.system_bins["elicense"]),
            FLAKY_SERVICE: ServiceSettings(
                endpoint=f"{library_url}/api/v1/readers?breaker-test",  # its own breaker (keyed by endpoint)
                document_schema="kazneb/reader-registration.xsd",
                retry_attempts=1, breaker_failures=2, breaker_reset_seconds=0.3,
            ),
            DOWN_SERVICE: ServiceSettings(
                endpoint=f"http://127.0.0.1:{free_port()}/api/v1/readers",
                document_schema="kazneb/reader-registration.xsd",
                timeout_seconds=2,
            ),
        },
    )


async def second_gateway(system: GatewayUnderTest, state_dir: Path, **changes: Any) -> tuple[web.AppRunner, str]:
    """Another gateway process on its own port and state directory, sharing the system's Redis; ``changes``
    replace fields of its settings. The caller cleans the runner up."""
    port = free_port()
    settings = replace(system.settings, listen=replace(system.settings.listen, port=port), state_dir=state_dir,
                       **changes)
    runner = await start_site(create_app(settings, redis_url=system.redis_url), "127.0.0.1", port)
    return runner, f"http://127.0.0.1:{port}"


# --- driving it ----------------------------------------------------------------------------------------


async def send_soap(shep: SyncChannelClient, document: etree._Element, **overrides: Any) -> Any:
    """SyncChannel SendMessage as the portal, to the reader-ticket service unless ``overrides`` say otherwise."""
    arguments = {"service_id": READER_TICKET_SERVICE, "sender_id": PORTAL, "password": PORTAL_PASSWORD,
                 "document": document, "message_id": message_id(), **overrides}
    return await asyncio.to_thread(lambda: shep.send(**arguments))


async def cabinet(system: GatewayUnderTest, http: aiohttp.ClientSession, owner: str, mid: str) -> dict[str, Any]:
    """The cabinet's view of one application, as the portal reads it."""
    url = f"{system.url}/api/v1/cabinet/{owner}/applications/{mid}"
    async with http.get(url, headers=system.auth()) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def cabinet_item(system: GatewayUnderTest, http: aiohttp.ClientSession, owner: str, mid: str, *,
                       final: bool = True, seconds: float = 20) -> dict[str, Any]:
    """The cabinet's view of one application, once it is final (or at once with ``final=False``)."""
    deadline = time.monotonic() + seconds
    while True:
        item = await cabinet(system, http, owner, mid)
        if not final or item["status"] in FINAL:
            return item
        assert time.monotonic() < deadline, f"still {item['status']}: {item['history']}"
        await asyncio.sleep(0.1)


async def portal_login(portal: Any, handle: str) -> None:
    """Sign in to the mock portal (an aiohttp test client, which keeps the session cookie) as a test person."""
    response = await portal.post("/login", data={"as": handle, "next": "/"}, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert "portal_session" in response.cookies


async def wait_for(check: Callable[[], Awaitable[T]], seconds: float = 15.0) -> T:
    """Poll ``check`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("timed out waiting")


async def mock_control(http: aiohttp.ClientSession, url: str, action: str, body: Any = None, *,
                       status: int = 200) -> Any:
    """A mock's ``/_control/{action}`` (GET for ``state``, else POST with a JSON body); its JSON answer."""
    method = "GET" if action == "state" else "POST"
    async with http.request(method, f"{url}/_control/{action}", json=body) as answer:
        assert answer.status == status, await answer.text()
        return await answer.json()


async def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem answer with this status and code, and its body."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    problem: dict[str, Any] = await response.json(content_type=None)
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["type"] and problem["title"] and problem["detail"]
    return problem


# --- raw request bodies, for tests that write bytes on a socket or post them themselves --------------


def sync_envelope_bytes(document: etree._Element) -> bytes:
    return f"""<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:t="{SYNC_TYPES}"><soap:Body><t:SendMessage><request>
        <requestInfo><messageId>{message_id()}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId>
        <messageDate>{datetime.now(UTC).isoformat()}</messageDate>
        <sender><senderId>{PORTAL}</senderId><password>{PORTAL_PASSWORD}</password></sender></requestInfo>
        <requestData><data>{etree.tostring(document, encoding="unicode")}</data></requestData></request>
        </t:SendMessage></soap:Body></soap:Envelope>""".encode()


def async_envelope_bytes(document: etree._Element) -> bytes:
    return f"""<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:a="{ASYNC_TYPES}"><soap:Body><a:sendMessage><request>
        <messageInfo><messageId>{message_id()}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId>
        <messageType>REQUEST</messageType><messageDate>{datetime.now(UTC).isoformat()}</messageDate>
        <sender><senderId>{PULL}</senderId><password>{PULL_PASSWORD}</password></sender></messageInfo>
        <messageData><data>{etree.tostring(document, encoding="unicode")}</data></messageData></request>
        </a:sendMessage></soap:Body></soap:Envelope>""".encode()


def rest_request_bytes(document: etree._Element) -> bytes:
    return json.dumps(rest_request(document)).encode()


def serve_config(tmp_path: Path, pki: TestPki, port: int, *, signer: str, portal_hash: str, ops_hash: str) -> Path:
    """A minimal real configuration file for `egov-gateway serve`: the test root, the ``signer`` table's
    lines, a portal and an operator sender, and the reader-ticket service on an unused port."""
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[listen]
port = {port}
[trust]
anchors = ["{pki.trust_anchors[0]}"]
intermediates = ["{pki.intermediates[0]}"]
[signer]
{signer}
[senders.portal]
password_hash = "{portal_hash}"
[senders.ops]
password_hash = "{ops_hash}"
operator = true
[services."{READER_TICKET_SERVICE}"]
endpoint = "http://127.0.0.1:{free_port()}/api/v1/readers"
""")
    return config


# --- the mock portal's pages, as the HTTP-level portal tests read and post them -------------------------


def by_testid(doc: Any, value: str) -> list[Any]:
    return list(doc.xpath(f'//*[@data-testid="{value}"]'))


def text_of(element: Any) -> str:
    return " ".join(element.text_content().split())


def form_data(values: dict[str, Any], **changes: Any) -> dict[str, str]:
    """The fields a browser would post for ``values`` (the form's defaults), with changes."""
    data: dict[str, str] = {}
    for key, value in {**values, **changes}.items():
        if key in ("objects", "items"):
            for index, row in enumerate(value):
                data.update({f"{key}-{index}-{name}": str(text) for name, text in row.items()})
        elif isinstance(value, bool):
            if value:
                data[key] = "on"
        else:
            data[key] = str(value)
    return data


async def post_form(portal: Any, service: str, handle: str, lang: str = "kk", **changes: Any) -> Any:
    """Sign in as ``handle`` and post ``service``'s form with its defaults for that person (and ``changes``)."""
    from mocks.portal.web import forms as portal_forms
    from mocks.portal.web.state import STATE

    person = portal.server.app[STATE].pki.person(handle)
    if service == READER_TICKET_SERVICE:
        changes.setdefault("consent", True)
    values = portal_forms.defaults(service, person, lang)
    await portal_login(portal, handle)
    return await portal.post(f"/apply/{service}?lang={lang}", data=form_data(values, **changes))


# --- the message log ----------------------------------------------------------------------------------


class LoggedGateway:
    """A gateway with the message log on, its own key prefix and archive."""

    def __init__(self, url: str, prefix: str, archive: Path, redis: Redis) -> None:
        self.url, self.prefix, self.archive, self.redis = url, prefix, archive, redis
        self.keys = LogKeys.under(prefix)

    async def post(self, http: aiohttp.ClientSession, person: str = "aigerim", mid: str | None = None,
                   pki: Any = None) -> tuple[int, dict[str, Any], str]:
        mid = mid or message_id()
        envelope = {"requestInfo": {"messageId": mid, "serviceId": READER_TICKET_SERVICE,
                                    "messageDate": datetime.now(UTC).isoformat(),
                                    "sender": {"senderId": PORTAL, "password": PORTAL_PASSWORD}},
                    "requestData": {"data": etree.tostring(signed_application(pki.person(person),
                                                                              READER_TICKET_SERVICE),
                                                           encoding="unicode")}}
        async with http.post(f"{self.url}/api/v1/requests", json=envelope) as response:
            return response.status, await response.json(content_type=None), response.headers.get("Retry-After", "")

    async def unsealed(self) -> int:
        return int(await self.redis.hlen(self.keys.records))

    async def health(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        auth = {"Authorization": aiohttp.encode_basic_auth(OPERATOR, OPERATOR_PASSWORD)}
        async with http.get(f"{self.url}/health/details", headers=auth) as response:
            return (await response.json())["messagelog"]  # type: ignore[no-any-return]


async def logged_gateway(gw: GatewayUnderTest, tmp_path: Path, prefix: str, tsa_url: str,
                         **changes: Any) -> tuple[web.AppRunner, LoggedGateway]:
    """A second gateway with the message log on (sealing quickly, to ``tsa_url``'s TSA); ``changes`` replace
    fields of its ``[messagelog]`` settings."""
    settings = MessageLogSettings(**{
        "enabled": True, "tsa_url": f"{tsa_url}/tsa", "segment_records": 4, "segment_seconds": 0.5,
        "max_seal_failure_seconds": 1.0, "check_seconds": 0.1, "tsa_timeout_seconds": 2.0, **changes})
    runner, url = await second_gateway(gw, tmp_path, messagelog=settings,
                                       redis=replace(gw.settings.redis, key_prefix=prefix))
    return runner, LoggedGateway(url, prefix, tmp_path / "messagelog", gw.redis)


async def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The real command line, in a thread (it runs its own event loop for the Redis tail)."""
    from gateway.shell.cli import main

    code = await asyncio.to_thread(main, list(args))
    return code, capsys.readouterr().out


def cli_args(gw: GatewayUnderTest, logged: LoggedGateway, archive: Path | None = None) -> list[str]:
    """`log verify`/`log show` arguments for ``logged``'s archive (or ``archive``, then without Redis)."""
    tail = ["--no-redis"] if archive else ["--redis-url", gw.redis_url, "--key-prefix", logged.prefix]
    return [str(archive or logged.archive), "--state-dir", str(gw.settings.state_dir), *tail]
