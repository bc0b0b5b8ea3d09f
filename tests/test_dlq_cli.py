"""`egov-gateway dlq` against a real HTTP server: what it prints for the answers an admin API can give."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.shell.cli import main

Serve = Callable[[web.Response], Awaitable[str]]


@pytest.fixture
def serve_dead_letters(aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]) -> Serve:
    """Start a server whose dead-letter listing gives ``answer``; return its base URL."""

    async def start(answer: web.Response) -> str:
        async def listing(request: web.Request) -> web.Response:
            assert request.headers["Authorization"].startswith("Basic ")
            return answer

        app = web.Application()
        app.router.add_get("/api/v1/admin/dead-letters", listing)
        server = await aiohttp_server(app)
        return str(server.make_url("")).rstrip("/")

    return start


async def dlq_list(base: str) -> int:
    # urllib blocks: run the command off the loop that serves it.
    return await asyncio.to_thread(main, ["dlq", "--gateway", base, "--password", "secret", "list"])


async def test_an_empty_listing_says_so(serve_dead_letters: Serve, capsys: pytest.CaptureFixture[str]) -> None:
    base = await serve_dead_letters(web.json_response({"deadLetters": []}))
    assert await dlq_list(base) == 0
    assert "no dead letters" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [
    web.json_response([]),
    web.Response(text="<html>proxy error</html>", content_type="text/html"),
], ids=["json-list", "not-json"])
async def test_an_answer_that_is_not_a_json_object_is_an_error_not_a_traceback(
        serve_dead_letters: Serve, capsys: pytest.CaptureFixture[str], answer: web.Response) -> None:
    base = await serve_dead_letters(answer)
    assert await dlq_list(base) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: unexpected answer from {base}: ")
    assert "Traceback" not in err
