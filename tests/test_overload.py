"""Overload is shed, not collapsed (issue 9, bug 2): the in-flight bound is the first check of every intake, so
excess requests are refused with GATEWAY_OVERLOADED and Retry-After before their body is parsed or their signature
verified; the Redis pools are sized from the configuration, so admitted requests never fail for a connection."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import aiohttp
import pytest
from lxml import etree

from gateway.config import ConfigError, RedisSettings, check_settings, settings_from_dict
from gateway.intake.context import INTAKE
from mocks.library.forms import READER_REGISTRATION_NS
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from tests.helpers import (
    SOAP_ENV,
    async_envelope_bytes,
    mock_control,
    rest_request_bytes,
    second_gateway,
    sync_envelope_bytes,
    wait_for,
)

XML = "text/xml; charset=utf-8"


def tampered(system) -> etree._Element:  # type: ignore[no-untyped-def]
    document = signed_application(system.pki.person("aigerim"), READER_TICKET_SERVICE)
    document.find(f"{{{READER_REGISTRATION_NS}}}email").text = "attacker@example.kz"
    return document


async def post(http: aiohttp.ClientSession, url: str, body: bytes, content_type: str) -> tuple[int, str | None, str]:
    """Status, Retry-After and the error code (or SCSS001 / the SOAP answer's success) of one request."""
    async with http.post(url, data=body, headers={"Content-Type": content_type}) as response:
        raw = await response.read()
        retry_after = response.headers.get("Retry-After")
    if content_type == "application/json":
        answer = json.loads(raw)
        code = answer["code"] if "code" in answer else answer["responseInfo"]["status"]["code"]
        return response.status, retry_after, code
    envelope = etree.fromstring(raw)
    error = envelope.findtext(f".//{{{SOAP_ENV}}}Fault/detail/*/errorCode")
    return response.status, retry_after, error or "SCSS001"


async def test_excess_requests_are_refused_before_any_expensive_step(system, http, tmp_path) -> None:
    runner, url = await second_gateway(system, tmp_path, limits=replace(system.settings.limits, max_in_flight=4))
    limiter = runner.app[INTAKE].pipeline.admit()
    await mock_control(http, system.library_url, "fail", {"delay": 3.0})  # the back-end holds the first four
    try:
        held = [asyncio.create_task(post(http, f"{url}/api/v1/requests", rest_request_bytes(
            signed_application(system.pki.person(handle), READER_TICKET_SERVICE)), "application/json"))
            for handle in ("aigerim", "daniyar", "saule", "aigerim")]

        async def all_admitted() -> bool:
            return limiter.in_flight == 4

        await wait_for(all_admitted)
        calls = system.library_calls
        # Each of these would be refused differently (or accepted) if it were read, parsed or verified at all.
        extra = {
            "REST, valid": (f"{url}/api/v1/requests", rest_request_bytes(
                signed_application(system.pki.person("saule"), READER_TICKET_SERVICE)), "application/json"),
            "REST, tampered signature": (f"{url}/api/v1/requests", rest_request_bytes(tampered(system)),
                                         "application/json"),
            "REST, not JSON": (f"{url}/api/v1/requests", b"{not json", "application/json"),
            "SyncChannel, tampered signature": (f"{url}/shep/sync", sync_envelope_bytes(tampered(system)), XML),
            "SyncChannel, not XML": (f"{url}/shep/sync", b"<not xml", XML),
            "AsyncChannel, tampered signature": (f"{url}/shep/async", async_envelope_bytes(tampered(system)), XML),
        }
        refused = dict(zip(extra, await asyncio.gather(*(post(http, *args) for args in extra.values())),
                           strict=True))
        assert not any(task.done() for task in held), "refused while the admitted ones are still waiting"
        assert system.library_calls == calls
        outcomes = await asyncio.gather(*held)
    finally:
        await mock_control(http, system.library_url, "reset")
        await runner.cleanup()
    for case, (status, retry_after, code) in refused.items():
        assert code == "GATEWAY_OVERLOADED", case
        assert status == (503 if case.startswith("REST") else 500), case  # SHEP clients expect 500 for a Fault
        assert retry_after is not None and int(retry_after) > 0, case
    assert [outcome[0::2] for outcome in outcomes] == [(200, "SCSS001")] * 4
    assert limiter.in_flight == 0, "every slot is given back"


async def test_a_refused_request_gives_its_slot_back_and_the_next_is_admitted(system, http, tmp_path) -> None:
    runner, url = await second_gateway(system, tmp_path, limits=replace(system.settings.limits, max_in_flight=1))
    try:
        for _ in range(3):  # refusals of every kind free the one slot
            assert (await post(http, f"{url}/api/v1/requests", b"{", "application/json"))[2] == "CLIENT_MALFORMED_JSON"
            assert (await post(http, f"{url}/shep/sync", b"<x", XML))[2] == "CLIENT_MALFORMED_XML"
        document = signed_application(system.pki.person("saule"), READER_TICKET_SERVICE)
        assert await post(http, f"{url}/shep/sync", sync_envelope_bytes(document), XML) == (200, None, "SCSS001")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("case", "redis"), [
    ("pool derived from max_in_flight", RedisSettings()),
    ("a small blocking pool waits", RedisSettings(max_connections=8, pool_timeout_seconds=60)),
])
async def test_many_more_requests_than_the_old_pool_never_fail_for_storage(system, tmp_path, case: str,
                                                                           redis: RedisSettings) -> None:
    # The floor at the cap: the queueing delay of 150 requests at once never sheds (test_admission.py does), so all
    # 150 are in flight together, as many as the pools must serve.
    limits = replace(system.settings.limits, min_in_flight=system.settings.limits.max_in_flight)
    runner, url = await second_gateway(system, tmp_path, limits=limits,
                                       redis=replace(system.settings.redis, max_connections=redis.max_connections,
                                                     pool_timeout_seconds=redis.pool_timeout_seconds))
    client = runner.app[INTAKE].store.redis
    expected = redis.max_connections or system.settings.limits.max_in_flight + system.settings.delivery.concurrency + 16
    assert client.connection_pool.max_connections == expected
    people = ("aigerim", "daniyar", "saule")
    bodies = [rest_request_bytes(signed_application(system.pki.person(people[i % 3]), READER_TICKET_SERVICE))
              for i in range(150)]
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            outcomes = await asyncio.gather(*(post(http, f"{url}/api/v1/requests", body, "application/json")
                                              for body in bodies))
    finally:
        await runner.cleanup()
    codes = [code for _, _, code in outcomes]
    assert "GATEWAY_STORAGE_UNAVAILABLE" not in codes
    assert codes == ["SCSS001"] * 150, {code: codes.count(code) for code in set(codes)}


def test_the_pool_size_comes_from_the_configuration() -> None:
    derived = settings_from_dict({"limits": {"max_in_flight": 100}, "delivery": {"concurrency": 10}})
    assert derived.redis.pool_size(derived.limits, derived.delivery) == 100 + 10 + 16
    fixed = settings_from_dict({"redis": {"max_connections": 50, "pool_timeout_seconds": 1}})
    assert fixed.redis.pool_size(fixed.limits, fixed.delivery) == 50
    assert fixed.redis.pool_timeout_seconds == 1.0


@pytest.mark.parametrize(("raw", "message"), [
    ({"redis": {"max_connections": 0}}, "redis.max_connections: must be at least 1"),
    ({"redis": {"pool_timeout_seconds": 0}}, "redis.pool_timeout_seconds: must be positive"),
    ({"redis": {"pool_timeout_seconds": float("inf")}}, "redis.pool_timeout_seconds: must be positive"),
    ({"redis": {"max_connections": "many"}}, "redis.max_connections: expected int"),
    ({"limits": {"max_in_flight": 0}}, "limits.max_in_flight: must be positive"),
])
def test_bad_pool_and_gate_settings_are_refused(raw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        check_settings(settings_from_dict(raw))
