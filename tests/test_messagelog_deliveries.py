"""The message log from end to end: an exchange through each channel (SyncChannel, REST, AsyncChannel with
getMessages and with a callback) leaves every record kind `log show` should list for its messageId, results
delivered included, and the chain still verifies; a getMessages answer the log cannot take is refused, not sent;
a TSA that stops answering is a readiness warning (for operators) until it answers again."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree

from gateway.messagelog.archive import segment_files
from gateway.messagelog.records import BodyCipher
from gateway.shell.serve import start_site
from mocks.pki.tsa import create_tsa_app
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from mocks.portal.callback_server import RECEIVED
from mocks.portal.shep_client import SyncChannelClient
from tests.helpers import (
    NATIONAL,
    NATIONAL_PASSWORD,
    OPERATOR,
    OPERATOR_PASSWORD,
    PORTAL,
    PORTAL_PASSWORD,
    PULL,
    PULL_PASSWORD,
    SOAP_ENV,
    GatewayUnderTest,
    LoggedGateway,
    cli_args,
    free_port,
    logged_gateway,
    message_id,
    run_cli,
    send_soap,
    wait_for,
)

ASYNC = "http://bip.bee.kz/AsyncChannel/v10/Types"
OPERATOR_AUTH = {"Authorization": aiohttp.encode_basic_auth(OPERATOR, OPERATOR_PASSWORD)}
SYNC_KINDS = ["request", "receipt", "provider-answer", "result", "answer", "cabinet-read"]
ASYNC_KINDS = ["request", "receipt", "answer", "provider-answer", "result", "result-delivery", "cabinet-read"]


def _async_call(operation: str, body: str) -> bytes:
    return (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:a="{ASYNC}"><soap:Body><a:{operation}><request>{body}'
            f"</request></a:{operation}></soap:Body></soap:Envelope>").encode()


def _sender(sender: str, password: str) -> str:
    return f"<sender><senderId>{sender}</senderId><password>{password}</password></sender>"


async def _post_async(http: aiohttp.ClientSession, url: str, body: bytes) -> tuple[etree._Element, bytes]:
    async with http.post(f"{url}/shep/async", data=body, headers={"Content-Type": "text/xml"}) as response:
        raw = await response.read()
    assert response.status == 200, raw
    return etree.fromstring(raw).find(f"{{{SOAP_ENV}}}Body")[0], raw


async def _send_async(http: aiohttp.ClientSession, logged: LoggedGateway, gw: GatewayUnderTest, person: str,
                      mid: str, sender: str) -> str:
    document = etree.tostring(signed_application(gw.pki.person(person), READER_TICKET_SERVICE), encoding="unicode")
    answer, _ = await _post_async(http, logged.url, _async_call("sendMessage", f"""<messageInfo>
        <messageId>{mid}</messageId><serviceId>{READER_TICKET_SERVICE}</serviceId><messageType>REQUEST</messageType>
        <messageDate>{datetime.now(UTC).isoformat()}</messageDate>{sender}</messageInfo>
        <messageData><data>{document}</data></messageData>"""))
    return str(answer.findtext("response/sessionId"))


async def _read_cabinet(http: aiohttp.ClientSession, logged: LoggedGateway, owner: str, session: str) -> None:
    """The national portal (it reads every sender's applications) opens one application by its session id."""
    async with http.get(f"{logged.url}/api/v1/cabinet/{owner}/applications/{session}",
                        headers={"Authorization": aiohttp.encode_basic_auth(NATIONAL, NATIONAL_PASSWORD)}) as answer:
        assert answer.status == 200, await answer.text()


def _shown(out: str) -> list[tuple[str, str]]:
    """(kind, note) of each record `log show` printed."""
    return [(kind, note or "") for kind, note in
            re.findall(r"^record \S+  \S+  (\S+)  sender=.*?session=.*?(?: \((.*)\))?$", out, re.MULTILINE)]


async def test_each_channel_logs_its_exchange_through_to_the_result_delivered(
        gw: GatewayUnderTest, tmp_path: Path, prefix: str, tsa: str, http: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    monkeypatch.setenv("EGOV_MESSAGELOG_KEY", base64.b64encode(key).decode())
    runner, logged = await logged_gateway(gw, tmp_path, prefix, tsa, segment_records=1000, store_bodies=True,
                                          max_seal_failure_seconds=600)
    received = gw.callbacks[RECEIVED]
    received.fail_answers = 1  # the portal's callback refuses the first answer pushed: attempt 2 takes it
    people = {name: gw.pki.person(name) for name in ("aigerim", "saule", "daniyar")}
    try:
        shep = await asyncio.to_thread(SyncChannelClient, f"{logged.url}/shep/sync?wsdl")
        sync_mid, rest_mid, pushed_mid = message_id(), message_id(), message_id()
        pulled = [message_id(), message_id()]
        sent = await send_soap(shep, signed_application(people["aigerim"], READER_TICKET_SERVICE),
                               message_id=sync_mid)
        assert sent.ok, sent.message
        status, body, _ = await logged.post(http, "saule", rest_mid, gw.pki)
        assert status == 200, body
        sessions = {sync_mid: (people["aigerim"].iin, str(sent.session_id)),
                    rest_mid: (people["saule"].iin, body["responseInfo"]["sessionId"])}
        for mid, person in zip(pulled, ("daniyar", "aigerim"), strict=True):
            sessions[mid] = (people[person].iin, await _send_async(http, logged, gw, person, mid,
                                                                     _sender(PULL, PULL_PASSWORD)))
        sessions[pushed_mid] = (people["saule"].iin, await _send_async(http, logged, gw, "saule", pushed_mid,
                                                                       _sender(PORTAL, PORTAL_PASSWORD)))

        inbox = f"{prefix}:inbox:{PULL}:{READER_TICKET_SERVICE}"
        await wait_for(lambda: _at_least(gw.redis.zcard(inbox), 2))  # both answers in one getMessages answer
        answer, got = await _post_async(http, logged.url, _async_call(
            "getMessages", f"<serviceId>{READER_TICKET_SERVICE}</serviceId>{_sender(PULL, PULL_PASSWORD)}"
                           "<amount>10</amount>"))
        assert len(answer.findall("response/messages")) == 2
        pushes = await wait_for(lambda: _pushed(received.answers, pushed_mid))
        for owner, session in sessions.values():
            await _read_cabinet(http, logged, owner, session)
        await wait_for(lambda: _none_left(logged))  # everything sealed
    finally:
        received.fail_answers = 0
        await runner.cleanup()

    shown: dict[str, list[tuple[str, str]]] = {}
    for mid in sessions:
        code, out = await run_cli(capsys, "log", "show", "--message-id", mid, *cli_args(gw, logged))
        assert code == 0, out
        shown[mid] = _shown(out)
    for mid, expected in ((sync_mid, SYNC_KINDS), (rest_mid, SYNC_KINDS), (pulled[0], ASYNC_KINDS),
                          (pulled[1], ASYNC_KINDS), (pushed_mid, ASYNC_KINDS)):
        kinds = [kind for kind, _ in shown[mid]]
        assert Counter(kinds) == Counter(expected), (mid, shown[mid])
        assert kinds[:2] == ["request", "receipt"] and kinds.index("result") < kinds.index(expected[-2])
    assert ("request", "soap") in shown[sync_mid] and ("request", "rest") in shown[rest_mid]
    assert ("result-delivery", "getMessages, 1 of 2") in shown[pulled[0]]
    assert ("result-delivery", "getMessages, 2 of 2") in shown[pulled[1]]
    assert ("result-delivery", "callback, attempt 2") in shown[pushed_mid], "only the push the portal took"

    records = [json.loads(line) for path in segment_files(logged.archive)
               for line in path.read_bytes().splitlines()[:-1]]
    delivered = {r["messageId"]: r for r in records if r["kind"] == "result-delivery"}
    first, second = delivered[pulled[0]], delivered[pulled[1]]
    assert first["parts"]["answer"] == second["parts"]["answer"] == hashlib.sha256(got).hexdigest()
    assert BodyCipher(key).open(first["bodies"]["answer"], first["parts"]["answer"]) == got
    assert second["bodies"] == {}, "the answer's body is kept once, in its first record"
    assert first["session"] == sessions[pulled[0]][1] and first["sender"] == PULL
    assert delivered[pushed_mid]["parts"]["callback"] == pushes[-1]["sha256"]  # the bytes the portal took

    code, out = await run_cli(capsys, "log", "verify", *cli_args(gw, logged))
    assert code == 0, out


async def _at_least(count: Any, least: int) -> bool:
    return int(await count) >= least


async def _pushed(answers: list[dict[str, Any]], mid: str) -> list[dict[str, Any]]:
    return [a for a in answers if a["requestMessageId"] == mid]


async def _none_left(logged: LoggedGateway) -> bool:
    return await logged.unsealed() == 0


async def _ready(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with http.get(f"{url}/health/ready", headers=headers) as response:
        assert response.status == 200, await response.text()  # the TSA warns, never fails readiness
        return dict(await response.json())


async def _tsa_requests(http: aiohttp.ClientSession, url: str, result: str) -> float:
    async with http.get(f"{url}/metrics", headers=OPERATOR_AUTH) as response:
        text = await response.text()
    found = re.search(rf'^egov_tsa_requests_total{{result="{result}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_tsa_that_stops_answering_is_a_readiness_warning_until_it_answers_again(
        gw: GatewayUnderTest, tmp_path: Path, prefix: str, http: aiohttp.ClientSession) -> None:
    port = free_port()
    tsa_url = f"http://127.0.0.1:{port}"
    tsa = await start_site(create_tsa_app(gw.pki), "127.0.0.1", port)
    runner, logged = await logged_gateway(gw, tmp_path, prefix, tsa_url, segment_records=1000,
                                          max_seal_failure_seconds=600)
    name = f"TSA {tsa_url}/tsa"
    try:
        status, body, _ = await logged.post(http, "aigerim", None, gw.pki)
        assert status == 200, body
        await wait_for(lambda: _none_left(logged))
        ready = await _ready(http, logged.url, OPERATOR_AUTH)
        assert ready["checks"]["tsa"] == {"ok": True, "warnings": [],
                                          "detail": f"{name}: no failing time-stamp request since its last answer"}
        unavailable, answered = (await _tsa_requests(http, logged.url, "unavailable"),
                                 await _tsa_requests(http, logged.url, "ok"))

        await tsa.cleanup()  # the TSA stops: its port refuses connections
        status, body, _ = await logged.post(http, "saule", None, gw.pki)
        assert status == 200, body  # logged, waiting for its seal

        async def warned() -> dict[str, Any] | None:
            ready = await _ready(http, logged.url, OPERATOR_AUTH)
            warnings = ready["checks"]["tsa"]["warnings"]
            return ready if warnings and warnings[0].startswith(f"{name}: cannot be reached (ClientConnectorError)"
                                                                " (failing since ") else None

        ready = await wait_for(warned)
        assert ready["failing"] == [] and ready["checks"]["tsa"]["ok"]
        assert ready["checks"]["tsa"]["detail"].startswith(f"{name} fails since ")
        public = await _ready(http, logged.url)
        assert public == {"status": "ok", "failing": []}, "no address, no warning for anyone but operators"
        assert await _tsa_requests(http, logged.url, "unavailable") > unavailable

        tsa = await start_site(create_tsa_app(gw.pki), "127.0.0.1", port)  # back, on the same address

        async def cleared() -> bool:
            ready = await _ready(http, logged.url, OPERATOR_AUTH)
            return ready["checks"]["tsa"]["warnings"] == []

        await wait_for(cleared)
        await wait_for(lambda: _none_left(logged))
        assert await _tsa_requests(http, logged.url, "ok") > answered
    finally:
        await runner.cleanup()
        await tsa.cleanup()


async def test_a_get_messages_answer_the_log_cannot_take_is_refused_not_sent(
        gw: GatewayUnderTest, tmp_path: Path, prefix: str, tsa: str, http: aiohttp.ClientSession) -> None:
    runner, logged = await logged_gateway(gw, tmp_path, prefix, tsa, segment_records=1000)
    pull = _sender(PULL, PULL_PASSWORD)
    ask = _async_call("getMessages", f"<serviceId>{READER_TICKET_SERVICE}</serviceId>{pull}<amount>10</amount>")
    try:
        await _send_async(http, logged, gw, "daniyar", message_id(), pull)
        await wait_for(lambda: _at_least(gw.redis.zcard(f"{prefix}:inbox:{PULL}:{READER_TICKET_SERVICE}"), 1))
        await wait_for(lambda: _none_left(logged))  # sealed: the records hash is gone
        await gw.redis.set(logged.keys.records, "not a hash")  # every append now fails (WRONGTYPE)
        async with http.post(f"{logged.url}/shep/async", data=ask, headers={"Content-Type": "text/xml"}) as response:
            answer = etree.fromstring(await response.read())
        assert response.status == 500
        assert answer.findtext(".//errorCode") == "GATEWAY_STORAGE_UNAVAILABLE"
        assert answer.find(".//messages") is None, "the result was not handed over unlogged"
    finally:
        await runner.cleanup()
        await gw.redis.delete(logged.keys.records)
