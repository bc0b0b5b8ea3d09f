"""gateway/shell/door.py: while requests are shed, a REST submission is refused from its request line.

End to end through the gateway's real listener (``gateway_site``: the header timeout, the connection cap and
the door) on real sockets; the gate is made to shed by holding its only slot (``max_in_flight = 1``) with a
request whose body never ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from gateway.access.admission import Admission, AdmissionPolicy
from gateway.intake.context import INTAKE
from gateway.shell.app import create_app
from gateway.shell.door import Door, whole_request
from gateway.shell.serve import gateway_site
from tests.helpers import free_port, wait_for

REST_HEAD = b"POST /api/v1/requests HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"


def rest_request(body: bytes = b"{}", *, close: bool = False) -> bytes:
    return REST_HEAD + (b"Connection: close\r\n" if close else b"") + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def exchange(port: int, data: bytes, *, then: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a new connection (then ``then``, once the answer began), read to EOF (it must come)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        first = await asyncio.wait_for(reader.read(1), 5)
        if then:
            writer.write(then)
            await writer.drain()
        raw = first + await asyncio.wait_for(reader.read(), 5)  # to EOF: the gateway closes after a door refusal
    finally:
        writer.close()
    return parse(raw)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest_asyncio.fixture
async def shedding(system, tmp_path) -> AsyncIterator[tuple[int, Admission]]:  # type: ignore[no-untyped-def]
    """A gateway whose only slot is held: every intake request is refused; (its port, its gate)."""
    port = free_port()
    settings = replace(system.settings, listen=replace(system.settings.listen, port=port), state_dir=tmp_path,
                       limits=replace(system.settings.limits, max_in_flight=1))
    app = create_app(settings, redis_url=system.redis_url)
    async with gateway_site(app, settings):
        gate = app[INTAKE].pipeline.admit()
        _, holder = await asyncio.open_connection("127.0.0.1", port)
        holder.write(REST_HEAD + b"Content-Length: 1000\r\n\r\n{")
        await holder.drain()

        async def held() -> bool:
            return gate.in_flight == 1

        await wait_for(held)
        try:
            yield port, gate
        finally:
            holder.close()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer, read by its Content-Length (the connection may stay open)."""
    status, headers, _ = parse(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
    return status, headers, await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)


def door_problem(status: int, headers: dict[str, str], body: bytes) -> dict[str, object]:
    """The door's refusal, checked: 503, Retry-After 1, the gate's problem document without a sessionId."""
    assert status == 503 and headers["retry-after"] == "1"
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["code"] == "GATEWAY_OVERLOADED" and problem["retryAfterSeconds"] == 1
    assert set(problem["messages"]) == {"kk", "ru", "en"}
    assert "sessionId" not in problem, "the door opens no session (the gate's refusal has one)"
    return problem  # type: ignore[no-any-return]


async def test_a_whole_rest_submission_is_refused_at_the_door_and_the_connection_kept(shedding) -> None:  # type: ignore[no-untyped-def]
    port, gate = shedding
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(2):  # refused twice on one connection: it stays usable
            writer.write(rest_request())
            await writer.drain()
            status, headers, body = await read_answer(reader)
            door_problem(status, headers, body)
            assert "connection" not in headers, "a whole request leaves the connection open"
        writer.write(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")  # not an intake path: aiohttp serves it
        await writer.drain()
        status, _, _ = await read_answer(reader)
        assert status == 200
    finally:
        writer.close()
    assert gate.in_flight == 1, "the refused took no slot"


async def test_a_request_asking_to_close_is_refused_and_closed(shedding) -> None:  # type: ignore[no-untyped-def]
    port, _ = shedding
    status, headers, body = await exchange(port, rest_request(close=True))  # read to EOF: it must come
    door_problem(status, headers, body)
    assert headers["connection"] == "close" and int(headers["content-length"]) == len(body)


async def test_a_body_still_arriving_after_the_refusal_does_not_reset_the_answer(shedding) -> None:  # type: ignore[no-untyped-def]
    port, _ = shedding
    body = b'{"requestInfo": {}}'
    status, headers, answer = await exchange(port, REST_HEAD + b"Content-Length: %d\r\n\r\n" % len(body), then=body)
    door_problem(status, headers, answer)
    assert headers["connection"] == "close", "the end of the request was not seen: the connection is not kept"


async def test_a_kept_alive_connection_is_refused_at_the_door_between_requests(shedding) -> None:  # type: ignore[no-untyped-def]
    port, _ = shedding
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")  # served by aiohttp, kept alive
        await writer.drain()
        status, headers, _ = await read_answer(reader)
        assert status == 200 and headers.get("connection", "keep-alive").lower() != "close"
        writer.write(rest_request())
        await writer.drain()
        door_problem(*await read_answer(reader))
    finally:
        writer.close()


async def test_the_shep_channels_are_refused_by_the_gate_with_their_fault(shedding) -> None:  # type: ignore[no-untyped-def]
    port, _ = shedding
    body = b"<not xml"
    status, headers, answer = await exchange(port, b"POST /shep/sync HTTP/1.1\r\nHost: gateway\r\n"
                                             b"Content-Type: text/xml\r\nConnection: close\r\n"
                                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert status == 500 and headers["retry-after"] == "1"
    assert b"<errorCode>GATEWAY_OVERLOADED</errorCode>" in answer and b"<sessionId>" in answer


async def test_with_the_door_off_the_gate_refuses(system, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    settings = replace(system.settings, listen=replace(system.settings.listen, port=port), state_dir=tmp_path,
                       limits=replace(system.settings.limits, max_in_flight=1, refuse_at_door=False))
    app = create_app(settings, redis_url=system.redis_url)
    async with gateway_site(app, settings):
        _, holder = await asyncio.open_connection("127.0.0.1", port)
        holder.write(REST_HEAD + b"Content-Length: 1000\r\n\r\n{")
        await holder.drain()
        gate = app[INTAKE].pipeline.admit()

        async def held() -> bool:
            return gate.in_flight == 1

        await wait_for(held)
        try:
            status, headers, body = await exchange(port, rest_request(close=True))  # aiohttp closes: it was asked to
        finally:
            holder.close()
    problem = json.loads(body)
    assert status == 503 and problem["code"] == "GATEWAY_OVERLOADED" and "sessionId" in problem
    assert headers["retry-after"] == "1"


@pytest.mark.parametrize(("data", "refused"), [
    (b"POST /api/v1/requests HTTP/1.1\r\n", True),
    (b"POST /api/v1/requests?lang=kk HTTP/1.1\r\n", True),
    (b"POST /api/v1/requests", False),  # the request line not complete yet: aiohttp's
    (b"GET /api/v1/requests HTTP/1.1\r\n", False),
    (b"POST /shep/sync HTTP/1.1\r\n", False),
    (b"POST /api/v1/requestsX HTTP/1.1\r\n", False),
])
def test_only_a_rest_submission_line_is_refused_and_only_while_shedding(data: bytes, refused: bool) -> None:
    policy = AdmissionPolicy(max_in_flight=1, min_in_flight=1, target=0.005, interval=0.025, retry_after=3)
    gate = Admission(policy)
    door = Door.of(gate)
    assert door.refusal(data) is None, "not shedding: everything goes on to aiohttp"
    with gate:
        refusal = door.refusal(data)
    assert (refusal is not None) is refused
    if refusal is not None:
        assert b"Retry-After: 3\r\n" in refusal.answer and b'"retryAfterSeconds": 3' in refusal.answer
        assert not refusal.keep_alive and b"Connection: close\r\n" in refusal.answer, "no whole request: closed"


WHOLE = b"POST /api/v1/requests HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize(("data", "whole"), [
    (WHOLE, True),
    (WHOLE.replace(b"Content-Length: 2", b"content-length:2 "), True),
    (WHOLE[:-1], False),  # the body not all here
    (WHOLE + b"GET / HTTP/1.1\r\n\r\n", False),  # pipelined: something after the body
    (WHOLE.replace(b"Content-Length: 2", b"Content-Length: 2\r\nContent-Length: 2"), False),
    (WHOLE.replace(b"Content-Length: 2", b"Content-Length: +2"), False),
    (WHOLE.replace(b"Content-Length: 2", b"Content-Length : 2"), False),
    (WHOLE.replace(b"Host: g", b"Host: g\r\n folded"), False),
    (WHOLE.replace(b"Host: g", b"Transfer-Encoding: chunked"), False),
    (WHOLE.replace(b"Host: g", b"Connection: close"), False),
    (WHOLE.replace(b"HTTP/1.1", b"HTTP/1.0"), False),
    (WHOLE.replace(b"Content-Length: 2\r\n", b""), False),
])
def test_only_a_request_whose_end_is_beyond_doubt_keeps_its_connection(data: bytes, whole: bool) -> None:
    assert whole_request(data) is whole
    policy = AdmissionPolicy(max_in_flight=1, min_in_flight=1, target=0.005, interval=0.025, retry_after=1)
    gate = Admission(policy)
    with gate:
        refusal = Door.of(gate).refusal(data)
    assert refusal is not None and refusal.keep_alive is whole
    assert (b"Connection: close\r\n" in refusal.answer) is not whole
