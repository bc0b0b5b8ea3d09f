"""Bodies as real networks deliver them: in several TCP writes with pauses between, and chunked without a
Content-Length. Every reader (SyncChannel, AsyncChannel, REST, the job API's result, the REST connector's answer
reader, the mocks' body reader) reads to the end or the limit; over the limit it refuses while streaming, and an
over-limit Content-Length before reading anything (issue 9, bug 1)."""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from connectors.base import ConnectorError, Submission
from connectors.rest import MAX_ANSWER_BYTES, RestConnector
from gateway.shell.serve import start_site
from mocks.library.exchange import MAX_BODY_BYTES as LIBRARY_MAX_BODY_BYTES
from mocks.portal.applicant import (
    FUND_SUBMISSION_SERVICE,
    READER_TICKET_SERVICE,
    reader_registration,
    signed_application,
)
from tests.helpers import (
    DESK,
    DESK_PASSWORD,
    SOAP_ENV,
    async_envelope_bytes,
    free_port,
    rest_request_bytes,
    second_gateway,
    send_soap,
    sync_envelope_bytes,
    system_signer,
    to_bytes,
)

PAUSE = 0.05
"Between two writes of one body: long enough that the earlier pieces are read before the next one is sent."


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    "Lower-cased names."
    body: bytes

    def json(self) -> dict:  # type: ignore[type-arg]
        return dict(json.loads(self.body))

    def soap_body(self) -> etree._Element:
        return etree.fromstring(self.body).find(f"{{{SOAP_ENV}}}Body")[0]


async def raw_post(url: str, path: str, pieces: list[bytes], *, content_type: str, chunked: bool = False,
                   finish: bool = True, content_length: int | None = None,
                   extra: dict[str, str] | None = None) -> RawAnswer:
    """POST over a bare socket: the head, then each piece in its own write with a pause before it.

    ``chunked`` frames every piece as one chunk (no Content-Length); ``finish=False`` never ends the body,
    so an answer can only come from a server that refused while streaming.
    """
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        head = [f"POST {path} HTTP/1.1", f"Host: {address.netloc}", f"Content-Type: {content_type}",
                "Connection: close", *(f"{name}: {value}" for name, value in (extra or {}).items())]
        if chunked:
            head.append("Transfer-Encoding: chunked")
        else:
            head.append(f"Content-Length: {sum(map(len, pieces)) if content_length is None else content_length}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        for piece in pieces:
            await asyncio.sleep(PAUSE)
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            await writer.drain()
        if chunked and finish:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        return await asyncio.wait_for(_read_answer(reader), timeout=20)
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in head[1:]
                                                                           if line)}
    length = headers.get("content-length")
    body = await reader.readexactly(int(length)) if length is not None else await reader.read()
    return RawAnswer(status, headers, body)


def split(body: bytes, parts: int = 4) -> list[bytes]:
    size = -(-len(body) // parts)
    return [body[i:i + size] for i in range(0, len(body), size)]


CHANNELS = {
    "SyncChannel": ("/shep/sync", "text/xml; charset=utf-8", sync_envelope_bytes),
    "AsyncChannel": ("/shep/async", "text/xml; charset=utf-8", async_envelope_bytes),
    "REST": ("/api/v1/requests", "application/json", rest_request_bytes),
}


def assert_accepted(channel: str, answer: RawAnswer) -> None:
    assert answer.status == 200, answer.body[:2000]
    if channel == "REST":
        assert answer.json()["responseInfo"]["status"]["code"] == "SCSS001"
        assert answer.json()["applicationStatus"] == "completed"
    elif channel == "SyncChannel":
        assert answer.soap_body().findtext("response/responseInfo/status/code") == "SCSS001"
    else:
        assert answer.soap_body().findtext("response/correlationId")


def soap_error_code(answer: RawAnswer) -> str | None:
    return etree.fromstring(answer.body).findtext(f".//{{{SOAP_ENV}}}Fault/detail/*/errorCode")


def refusal_code(channel: str, answer: RawAnswer) -> str | None:
    return answer.json()["code"] if channel == "REST" else soap_error_code(answer)


# --- the intakes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("channel", list(CHANNELS))
async def test_a_body_in_pieces_with_pauses_is_read_whole(gw, channel: str, chunked: bool) -> None:
    path, content_type, envelope = CHANNELS[channel]
    body = envelope(signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE))
    assert len(body) > 3000, "a normal request, several TCP segments when split"
    answer = await raw_post(gw.url, path, split(body), content_type=content_type, chunked=chunked)
    assert_accepted(channel, answer)


@pytest.mark.parametrize("channel", list(CHANNELS))
async def test_an_over_limit_chunked_body_is_refused_while_it_streams(gw, channel: str) -> None:
    path, content_type, _ = CHANNELS[channel]
    limit = gw.settings.limits.max_body_bytes
    pieces = [b" " * (64 * 1024)] * (limit // (64 * 1024) + 1)  # one piece past the limit, and no end
    answer = await raw_post(gw.url, path, pieces, content_type=content_type, chunked=True, finish=False)
    assert refusal_code(channel, answer) == "CLIENT_BODY_TOO_LARGE"
    assert answer.status == (413 if channel == "REST" else 500)


@pytest.mark.parametrize("channel", list(CHANNELS))
async def test_an_over_limit_content_length_is_refused_before_the_body_is_read(gw, channel: str) -> None:
    path, content_type, _ = CHANNELS[channel]
    answer = await raw_post(gw.url, path, [], content_type=content_type,
                            content_length=gw.settings.limits.max_body_bytes + 1)  # not one byte of it is sent
    assert refusal_code(channel, answer) == "CLIENT_BODY_TOO_LARGE"


@pytest.mark.parametrize("channel", ["SyncChannel", "REST"])
async def test_a_one_megabyte_document_goes_through_with_the_limit_raised(system, tmp_path, channel: str) -> None:
    path, content_type, envelope = CHANNELS[channel]
    runner, url = await second_gateway(system, tmp_path,
                                       limits=replace(system.settings.limits, max_body_bytes=2 * 1024 * 1024))
    try:
        document = signed_application(system.pki.person("daniyar"), READER_TICKET_SERVICE)
        document.append(etree.Comment(" padding " + "x" * 1024 * 1024))  # outside what the signature covers
        body = envelope(document)
        assert 1024 * 1024 < len(body) < 2 * 1024 * 1024
        answer = await raw_post(url, path, split(body, 8), content_type=content_type)
    finally:
        await runner.cleanup()
    assert_accepted(channel, answer)


# --- the job API's result -------------------------------------------------------------------------------


DESK_AUTH = {"Authorization": aiohttp.encode_basic_auth(DESK, DESK_PASSWORD)}


async def claimed_job(gw, shep, http) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A fund submission's job claimed as worker ``w``: its entry id and lease token."""
    head = gw.pki.person("kitap-signer")
    assert (await send_soap(shep, signed_application(head, FUND_SUBMISSION_SERVICE),
                            service_id=FUND_SUBMISSION_SERVICE)).ok
    async with http.post(f"{gw.url}/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/claim",
                         params={"worker": "w", "wait": "5"}, headers=DESK_AUTH) as response:
        assert response.status == 200, await response.text()
        job = await response.json()
        return str(job["entryId"]), str(job["leaseToken"])


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_job_result_in_pieces_is_read_whole(gw, shep, http, chunked: bool) -> None:
    entry, lease = await claimed_job(gw, shep, http)
    # Signed by a trusted key of the wrong organisation: the gateway can only say so once it has read it all.
    forged = etree.fromstring(b'<d:FundDecision xmlns:d="urn:egov:kazneb:fund-decision:v1"/>')
    document = system_signer(gw.pki, "elicense").sign_bytes(forged).decode()
    body = json.dumps({"outcome": "completed", "document": document, "note": "n" * 400}).encode()
    assert len(body) > 3000, "several TCP segments' worth"
    answer = await raw_post(gw.url, f"/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/{entry}/result?worker=w", split(body),
                            content_type="application/json", chunked=chunked,
                            extra={**DESK_AUTH, "X-Lease-Token": lease})
    assert answer.json()["code"] == "PROVIDER_SIGNATURE_INVALID", answer.body


async def test_an_over_limit_job_result_is_refused_without_reading_it(gw) -> None:
    path = f"/api/v1/jobs/{FUND_SUBMISSION_SERVICE}/1-0/result"
    answer = await raw_post(gw.url, path, [], content_type="application/json", content_length=64 * 1024 * 1024,
                            extra=DESK_AUTH)
    assert (answer.status, answer.json()["code"]) == (413, "CLIENT_BODY_TOO_LARGE")
    pieces = [b" " * (1024 * 1024)] * 5  # past the job API's 4 MiB, chunked and never finished
    answer = await raw_post(gw.url, path, pieces, content_type="application/json", chunked=True, finish=False,
                            extra=DESK_AUTH)
    assert (answer.status, answer.json()["code"]) == (413, "CLIENT_BODY_TOO_LARGE")


# --- the REST connector's answer reader and the mocks' body reader --------------------------------------


async def piecewise_backend(total: int):  # type: ignore[no-untyped-def]
    """A back-end that answers ``total`` bytes of XML in several writes with pauses between them."""

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        body = b"<answer>" + b"x" * (total - len(b"<answer></answer>")) + b"</answer>"
        for piece in split(body, 4):
            await response.write(piece)
            await asyncio.sleep(PAUSE)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/answer", answer)
    port = free_port()
    return await start_site(app, "127.0.0.1", port), f"http://127.0.0.1:{port}/answer"


def submission(endpoint: str) -> Submission:
    return Submission(endpoint=endpoint, service_id="s", application_id="{a}", document=b"<doc/>", timeout=10)


async def test_the_rest_connector_reads_an_answer_sent_in_pieces(http) -> None:
    runner, endpoint = await piecewise_backend(400 * 1024)
    try:
        answer = await RestConnector(http).submit(submission(endpoint))
    finally:
        await runner.cleanup()
    assert len(answer.document) == 400 * 1024 and answer.document.endswith(b"</answer>")


async def test_the_rest_connector_refuses_an_oversize_answer_sent_in_pieces(http) -> None:
    runner, endpoint = await piecewise_backend(MAX_ANSWER_BYTES + 1024)
    try:
        with pytest.raises(ConnectorError) as refused:
            await RestConnector(http).submit(submission(endpoint))
    finally:
        await runner.cleanup()
    assert (refused.value.code, refused.value.transient) == ("PROVIDER_BAD_RESPONSE", False)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_the_library_mock_reads_a_registration_in_pieces(gw, chunked: bool) -> None:
    body = to_bytes(reader_registration(gw.pki.person("saule")))
    answer = await raw_post(gw.library_url, "/api/v1/readers", split(body), content_type="application/xml",
                            chunked=chunked)
    assert answer.status == 200, answer.body
    assert b"issued" in answer.body


async def test_the_library_mock_refuses_an_over_limit_body_while_it_streams(gw) -> None:
    pieces = [b" " * (64 * 1024)] * (LIBRARY_MAX_BODY_BYTES // (64 * 1024) + 1)
    answer = await raw_post(gw.library_url, "/api/v1/readers", pieces, content_type="application/xml",
                            chunked=True, finish=False)
    assert (answer.status, answer.json()["code"]) == (413, "LIB_PAYLOAD_TOO_LARGE")
