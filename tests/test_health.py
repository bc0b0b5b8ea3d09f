"""/health/live and /health/ready against real gateways: the public and the operator's views, and readiness that
follows a dedicated Redis and OCSP/CRL service being stopped and started again; certificate expiry warnings."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import ConfigError, MonitorSettings, Settings, check_settings, settings_from_dict
from gateway.shell.app import create_app
from gateway.shell.monitoring import start_monitor_site
from gateway.shell.redis_embedded import EmbeddedRedis
from gateway.shell.serve import start_site
from mocks.pki.revocation import run_revocation
from signing.policy import RevocationMode
from signing.revocation import RevocationSettings
from tests.helpers import (
    OPERATOR,
    OPERATOR_PASSWORD,
    GatewayUnderTest,
    assert_problem,
    free_port,
    mock_control,
    second_gateway,
    wait_for,
)

OPS = {"Authorization": aiohttp.encode_basic_auth(OPERATOR, OPERATOR_PASSWORD)}
CHECKS = {"redis", "keys", "trust_anchors", "revocation"}
QUICK = MonitorSettings(probe_interval_seconds=0.2, probe_timeout_seconds=1.0, gauge_cache_seconds=0.1)


async def ready(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with http.get(f"{url}/health/ready", headers=headers or {}) as response:
        return response.status, await response.json()


async def until_ready(http: aiohttp.ClientSession, url: str, status: int, *, seconds: float = 20) -> Any:
    """Poll /health/ready (anonymously) until it answers ``status``; its body."""
    async def check() -> Any:
        answer, body = await ready(http, url)
        return body if answer == status else None

    return await wait_for(check, seconds)


def revocation_at(url: str, mode: RevocationMode = RevocationMode.HARD_FAIL) -> RevocationSettings:
    return RevocationSettings(mode=mode, ocsp_url=f"{url}/ocsp", crl_urls=(f"{url}/crl/nca.crl", f"{url}/crl/root.crl"))


async def gateway_on(settings: Settings, redis_url: str, state_dir: Path) -> tuple[aiohttp.web.AppRunner, str]:
    port = free_port()
    settings = replace(settings, listen=replace(settings.listen, port=port), state_dir=state_dir)
    return await start_site(create_app(settings, redis_url=redis_url), "127.0.0.1", port), f"http://127.0.0.1:{port}"


async def test_live_is_public_and_plain(gw: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gw.url}/health/live") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    async with http.get(f"{gw.url}/health") as response:  # the old endpoint keeps answering as before
        assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_ready_details_only_for_operators(gw: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    assert await ready(http, gw.url) == (200, {"status": "ok", "failing": []})
    status, body = await ready(http, gw.url, OPS)
    assert status == 200
    assert set(body["checks"]) == CHECKS
    assert all(check["ok"] for check in body["checks"].values()), body
    assert "2 of 2" not in body["checks"]["revocation"]["detail"]  # one OCSP responder and two CRLs
    assert body["checks"]["revocation"]["detail"] == "3 of 3 sources answer"
    async with http.get(f"{gw.url}/health/ready", headers=gw.auth()) as response:
        await assert_problem(response, 403, "CLIENT_ACCESS_DENIED")


async def test_ready_follows_redis(gw: GatewayUnderTest, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    monitor_address = f"127.0.0.1:{free_port()}"
    settings = replace(gw.settings, monitor=replace(QUICK, listen=monitor_address))
    runner, url = await gateway_on(settings, server.url, tmp_path)
    monitor = await start_monitor_site(runner.app, settings)
    assert monitor is not None
    try:
        await until_ready(http, url, 200)
        server.stop()
        body = await until_ready(http, url, 503)
        assert body == {"status": "unavailable", "failing": ["redis"]}  # which check, not why: that is for operators
        status, details = await ready(http, url, OPS)  # signing in needs Redis: the public view, still 503
        assert (status, details) == (503, body)
        async with http.get(f"{url}/metrics", headers=OPS) as response:  # nor can an operator sign in for metrics
            await assert_problem(response, 503, "GATEWAY_STORAGE_UNAVAILABLE")
        # The separate monitor address asks no credentials: details and metrics stay readable in the outage.
        status, details = await ready(http, f"http://{monitor_address}")
        assert status == 503 and details["checks"]["redis"]["detail"].startswith("a write was refused"), details
        async with http.get(f"http://{monitor_address}/metrics") as response:
            assert response.status == 200
            text = await response.text()
        assert "# TYPE egov_requests_total counter" in text
        assert "egov_outbox_due" not in text  # read from Redis: left out, not shown stale
        server.start()  # on the same port
        assert await until_ready(http, url, 200) == {"status": "ok", "failing": []}
        status, details = await ready(http, url, OPS)
        assert status == 200 and details["checks"]["redis"]["detail"] == "a write with expiry succeeded"
    finally:
        await monitor.cleanup()
        await runner.cleanup()
        server.stop()


async def test_ready_follows_the_revocation_service(gw: GatewayUnderTest, http: aiohttp.ClientSession,
                                                   tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="egov.monitor")
    port = free_port()
    revocation_url = f"http://127.0.0.1:{port}"
    service = await run_revocation(gw.pki, port=port)
    settings = replace(gw.settings, monitor=QUICK, revocation=revocation_at(revocation_url))
    runner, url = await gateway_on(settings, gw.redis_url, tmp_path)
    try:
        await until_ready(http, url, 200)
        await service.cleanup()  # the OCSP responder and the CRLs stop
        assert await until_ready(http, url, 503) == {"status": "unavailable", "failing": ["revocation"]}
        status, body = await ready(http, url, OPS)
        assert status == 503
        detail = body["checks"]["revocation"]["detail"]
        assert f"OCSP {revocation_url}/ocsp: unreachable" in detail and f"CRL {revocation_url}/crl/nca.crl" in detail
        service = await run_revocation(gw.pki, port=port)
        await until_ready(http, url, 200)
        logged = [r.getMessage() for r in caplog.records if r.name == "egov.monitor"]
        ocsp = f"OCSP {revocation_url}/ocsp"
        assert sum(m.startswith(f"{ocsp} is failing: unreachable") for m in logged) == 1, logged  # once, not per probe
        assert f"{ocsp} answers again" in logged
    finally:
        await runner.cleanup()
        await service.cleanup()


@pytest.mark.parametrize(("mode", "status"), [(RevocationMode.HARD_FAIL, 200), (RevocationMode.REQUIRE, 503),
                                              (RevocationMode.SOFT_FAIL, 200)])
async def test_ocsp_alone_down(gw: GatewayUnderTest, http: aiohttp.ClientSession, tmp_path: Path,
                               mode: RevocationMode, status: int) -> None:
    """With the CRLs answering, an OCSP outage is a warning (requests pass through the CRLs), except where OCSP
    is required."""
    port = free_port()
    service = await run_revocation(gw.pki, port=port)
    revocation_url = f"http://127.0.0.1:{port}"
    runner, url = await gateway_on(replace(gw.settings, monitor=QUICK, revocation=revocation_at(revocation_url, mode)),
                                   gw.redis_url, tmp_path)
    try:
        await until_ready(http, url, 200)
        await mock_control(http, revocation_url, "ocsp", {"down": True})

        async def warned() -> tuple[int, Any] | None:  # once the next probe has seen it
            answer, body = await ready(http, url, OPS)
            warnings = body["checks"]["revocation"]["warnings"]
            return (answer, body) if any(f"OCSP {revocation_url}/ocsp: answered HTTP" in w for w in warnings) else None

        answer, body = await wait_for(warned)
        assert answer == status, body
        assert body["failing"] == ([] if status == 200 else ["revocation"])
    finally:
        await runner.cleanup()
        await service.cleanup()


async def test_certificates_near_expiry(gw: GatewayUnderTest, http: aiohttp.ClientSession, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="egov.monitor")
    warn = replace(QUICK, expiry_warning_days=100_000)
    runner, url = await second_gateway(gw, tmp_path / "warn", monitor=warn)
    try:
        for _ in range(3):
            status, body = await ready(http, url, OPS)
            assert status == 200
        for name in ("keys", "trust_anchors"):
            assert any("within 100000 days" in w for w in body["checks"][name]["warnings"]), body
        signer = gw.pki.systems["gateway"].load_certificate().subject.rfc4514_string()
        logged = [r.getMessage() for r in caplog.records if signer in r.getMessage()]
        assert len(logged) == 1, logged  # logged once, however often the checks run
    finally:
        await runner.cleanup()
    runner, url = await second_gateway(gw, tmp_path / "fail", monitor=replace(QUICK, anchor_min_days=100_000))
    try:
        assert await ready(http, url) == (503, {"status": "unavailable", "failing": ["keys", "trust_anchors"]})
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("table", "message"), [
    ('listen = "9464"', "monitor.listen: expected host:port"),
    ('listen = "127.0.0.1:0"', "monitor.listen: expected host:port"),
    ("anchor_min_days = -1", "must not be negative"),
    ("probe_interval_seconds = 0", "monitor.probe_interval_seconds: must be positive"),
    ("gauge_cache_seconds = nan", "monitor.gauge_cache_seconds: must be positive"),
    ("probe_seconds = 3", "monitor.probe_seconds: unknown setting"),
])
def test_monitor_settings_are_checked(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_settings(settings_from_dict({"monitor": tomllib.loads(table)}))
