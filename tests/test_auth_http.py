"""Sign-in throttling, the flood of wrong passwords and per-sender quotas over real sockets: two gateway
apps on one Redis share every count; a correct sender and /health are answered while scrypt works."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from gateway.config import AuthSettings, QuotaSettings, RedisSettings, Settings
from gateway.intake.context import INTAKE
from mocks.portal.applicant import ELICENSE_SERVICE, READER_TICKET_SERVICE
from tests.helpers import (
    OFFICE,
    OFFICE_PASSWORD,
    OPERATOR,
    OPERATOR_PASSWORD,
    PORTAL,
    PORTAL_PASSWORD,
    GatewayUnderTest,
    assert_problem,
    message_id,
    second_gateway,
)

ALLOWED = "/api/v1/services/allowed"


def basic(sender: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(sender, password)}


@pytest_asyncio.fixture
async def pair(system: GatewayUnderTest, tmp_path: Path, prefix: str) -> AsyncIterator[Any]:
    """Start gateway apps sharing the system's Redis under this test's own key prefix; cleaned up after."""
    runners: list[web.AppRunner] = []

    async def start(**changes: Any) -> tuple[web.Application, str]:
        runner, url = await second_gateway(system, tmp_path / f"gw{len(runners)}",
                                           redis=RedisSettings(key_prefix=prefix), **changes)
        runners.append(runner)
        return runner.app, url

    yield start
    for runner in runners:
        await runner.cleanup()


async def code_of(response: aiohttp.ClientResponse) -> tuple[int, str]:
    return response.status, (await response.json(content_type=None))["code"]


def rest_request(sender: str, password: str, service: str = READER_TICKET_SERVICE) -> dict[str, Any]:
    """A REST envelope without a document: past the quota it is refused with CLIENT_DOCUMENT_MISSING."""
    return {"requestInfo": {"messageId": message_id(), "serviceId": service,
                            "messageDate": datetime.now(UTC).isoformat(),
                            "sender": {"senderId": sender, "password": password}}}


async def test_unknown_sender_and_wrong_password_look_the_same_over_http(gw, http) -> None:
    answers = []
    for sender, password in (("nobody", "whatever"), (PORTAL, "wrong")):
        async with http.get(gw.url + ALLOWED, headers=basic(sender, password)) as response:
            answers.append(await assert_problem(response, 401, "CLIENT_BAD_CREDENTIALS"))
        async with http.post(f"{gw.url}/api/v1/requests", json=rest_request(sender, password)) as response:
            answers.append(await assert_problem(response, 401, "CLIENT_BAD_CREDENTIALS"))
    assert answers[0] == answers[2] and answers[1]["detail"] == answers[3]["detail"]


async def test_two_gateways_on_one_redis_share_the_failure_counts(pair, http) -> None:
    auth = AuthSettings(address_failures=2, window_seconds=60, lockout_seconds=300)
    (_, first), (_, second) = await pair(auth=auth), await pair(auth=auth)
    for url in (first, second):
        async with http.get(url + ALLOWED, headers=basic(PORTAL, "wrong")) as response:
            await assert_problem(response, 401, "CLIENT_BAD_CREDENTIALS")
    async with http.get(first + ALLOWED, headers=basic(PORTAL, PORTAL_PASSWORD)) as response:
        await assert_problem(response, 429, "CLIENT_TOO_MANY_ATTEMPTS")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    async with http.post(f"{second}/api/v1/requests", json=rest_request(PORTAL, PORTAL_PASSWORD)) as response:
        await assert_problem(response, 429, "CLIENT_LOCKED_OUT")  # the 4th attempt: twice the limit
        assert int(response.headers["Retry-After"]) == 300


async def test_a_correct_sender_and_health_are_answered_during_a_flood_of_wrong_passwords(pair, http) -> None:
    """8 clients from their own loopback addresses send wrong passwords without pause (limits high, so each
    costs a scrypt); while those checks run, /health and the correct sender are answered."""
    auth = AuthSettings(max_concurrent_checks=2, queue_seconds=5, address_failures=100_000,
                        sender_failures=100_000)
    app, url = await pair(auth=auth)
    checks = app[INTAKE].senders.checks
    async with http.get(url + ALLOWED, headers=basic(PORTAL, PORTAL_PASSWORD)) as response:
        assert response.status == 200  # remembered from now on: no scrypt for the correct sender
    stop = asyncio.Event()
    statuses: list[int] = []

    async def flood(n: int) -> None:
        connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{n + 2}", 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            while not stop.is_set():
                async with session.get(url + ALLOWED, headers=basic(PORTAL, f"wrong-{n}")) as answer:
                    statuses.append(answer.status)

    clients = [asyncio.create_task(flood(n)) for n in range(8)]
    try:
        while checks.running == 0:
            await asyncio.sleep(0.01)
        started = checks.started
        async with http.get(url + "/health") as health, \
                http.get(url + ALLOWED, headers=basic(PORTAL, PORTAL_PASSWORD)) as allowed:
            assert health.status == 200 and allowed.status == 200
            assert (await allowed.json())["senderId"] == PORTAL
        assert checks.started > started or checks.running > 0, "scrypt work was in flight meanwhile"
    finally:
        stop.set()
        await asyncio.gather(*clients)
    assert statuses and set(statuses) <= {401, 503} and 401 in statuses
    assert checks.running <= auth.max_concurrent_checks


def with_quotas(settings: Settings, **quotas: QuotaSettings) -> dict[str, Any]:
    portal = replace(settings.senders[PORTAL], quotas=quotas)
    return {"senders": {**settings.senders, PORTAL: portal}}


async def test_a_quota_is_shared_by_two_gateways_and_refused_with_retry_after(system, pair, http) -> None:
    changes = with_quotas(system.settings, **{READER_TICKET_SERVICE: QuotaSettings(per_day=2),
                                              "*": QuotaSettings(per_second=1000)})
    (_, first), (_, second) = await pair(**changes), await pair(**changes)
    for url in (first, second):
        async with http.post(f"{url}/api/v1/requests", json=rest_request(PORTAL, PORTAL_PASSWORD)) as response:
            assert await code_of(response) == (400, "CLIENT_DOCUMENT_MISSING")  # counted, then refused later
    async with http.post(f"{first}/api/v1/requests", json=rest_request(PORTAL, PORTAL_PASSWORD)) as response:
        problem = await assert_problem(response, 429, "CLIENT_QUOTA_EXCEEDED")
        assert 1 <= int(response.headers["Retry-After"]) <= 86_400
        assert "2 requests per day" in problem["detail"]
    other = rest_request(PORTAL, PORTAL_PASSWORD, ELICENSE_SERVICE)  # another service: its own count
    async with http.post(f"{second}/api/v1/requests", json=other) as response:
        assert await code_of(response) == (400, "CLIENT_DOCUMENT_MISSING")

    async with http.get(f"{second}/api/v1/admin/senders/{PORTAL}/usage",
                        headers=basic(OPERATOR, OPERATOR_PASSWORD)) as response:
        assert response.status == 200, await response.text()
        usage = await response.json()
    by_service = {item["serviceId"]: item for item in usage["services"]}
    assert by_service[READER_TICKET_SERVICE]["perDay"]["limit"] == 2
    assert by_service[READER_TICKET_SERVICE]["perDay"]["used"] == 2
    assert by_service[ELICENSE_SERVICE]["perSecond"]["limit"] == 1000
    assert by_service[ELICENSE_SERVICE]["perDay"] == {"limit": None, "used": 1,
                                                     "resetsInSeconds": by_service[ELICENSE_SERVICE]["perDay"]
                                                     ["resetsInSeconds"]}
    assert usage["senderId"] == PORTAL and usage["day"]


async def test_usage_is_for_operators_only(system, pair, http) -> None:
    _, url = await pair(**with_quotas(system.settings, **{"*": QuotaSettings(per_day=5)}))
    async with http.get(f"{url}/api/v1/admin/senders/{PORTAL}/usage", headers=basic(OFFICE, OFFICE_PASSWORD)) as r:
        await assert_problem(r, 403, "CLIENT_ACCESS_DENIED")
    async with http.get(f"{url}/api/v1/admin/senders/{PORTAL}/usage", headers=basic(PORTAL, "wrong")) as r:
        await assert_problem(r, 401, "CLIENT_BAD_CREDENTIALS")
    async with http.get(f"{url}/api/v1/admin/senders/nobody/usage", headers=basic(OPERATOR, OPERATOR_PASSWORD)) as r:
        await assert_problem(r, 404, "CLIENT_NOT_FOUND")
