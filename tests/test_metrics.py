"""/metrics against the running system: operators only, every documented metric present, counters moving with real
requests, scrape-time gauges following Redis, the message log's hook, and one view over `serve --workers 2`."""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from connectors.queue import JobQueue
from gateway.access.senders import hash_password
from gateway.config import MonitorSettings
from gateway.monitor.context import MONITOR
from gateway.monitor.messagelog import register_message_log
from gateway.shell.app import create_app
from gateway.shell.serve import start_site
from mocks.portal.applicant import FUND_SUBMISSION_SERVICE, READER_TICKET_SERVICE, signed_application
from tests.helpers import (
    CLI,
    NATIONAL,
    NATIONAL_PASSWORD,
    OPERATOR,
    OPERATOR_PASSWORD,
    PORTAL_PASSWORD,
    XML,
    GatewayUnderTest,
    assert_problem,
    free_port,
    send_soap,
    serve_config,
    wait_for,
)

OPS = {"Authorization": aiohttp.encode_basic_auth(OPERATOR, OPERATOR_PASSWORD)}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
REQUIRED = ("egov_requests_total", "egov_request_duration_seconds", "egov_signature_checks_total",
            "egov_revocation_lookups_total", "egov_revocation_cache_hits_total", "egov_backend_calls_total",
            "egov_backend_call_duration_seconds", "egov_outbox_due", "egov_queue_pending", "egov_dead_letters",
            "egov_breaker_open", "egov_cabinet_streams", "egov_certificate_expiry_seconds")


async def exposition(http: aiohttp.ClientSession, url: str, headers: dict[str, str] = OPS) -> str:
    async with http.get(f"{url}/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/plain"
        return await response.text()


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(http: aiohttp.ClientSession, url: str) -> Samples:
    return samples(await exposition(http, url))


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_are_for_operators_only(gw: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gw.url}/metrics") as response:
        await assert_problem(response, 401, "CLIENT_BAD_CREDENTIALS")
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    async with http.get(f"{gw.url}/metrics", headers=gw.auth()) as response:
        await assert_problem(response, 403, "CLIENT_ACCESS_DENIED")
    wrong = {"Authorization": aiohttp.encode_basic_auth(OPERATOR, "not-the-password")}
    async with http.get(f"{gw.url}/metrics", headers=wrong) as response:
        await assert_problem(response, 401, "CLIENT_BAD_CREDENTIALS")


async def test_every_documented_metric_is_exposed(gw: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    text = await exposition(http, gw.url)
    types = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    missing = [name for name in REQUIRED if name not in types]
    assert not missing, f"not exposed: {missing}"
    documented = (Path(__file__).resolve().parents[1] / "docs" / "monitoring.md").read_text()
    undocumented = [name for name in (*REQUIRED, "egov_messagelog_unsealed_records",
                                      "egov_messagelog_last_seal_age_seconds") if f"`{name}" not in documented]
    assert not undocumented, f"docs/monitoring.md lacks {undocumented}"
    found = samples(text)
    assert value(found, "egov_certificate_expiry_seconds", kind="signer",
                 subject=gw.pki.systems["gateway"].load_certificate().subject.rfc4514_string()) > 86_400


async def test_counters_move_with_requests(gw: GatewayUnderTest, shep, http: aiohttp.ClientSession) -> None:
    before = await scrape(http, gw.url)
    result = await send_soap(shep, signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE))
    assert result.status_code == "SCSS001", result
    async with http.post(f"{gw.url}/api/v1/requests", data=b"<x/>", headers=XML) as response:
        await assert_problem(response, 415, "CLIENT_UNSUPPORTED_MEDIA_TYPE")
    tampered = signed_application(gw.pki.person("aigerim"), READER_TICKET_SERVICE)
    tampered.find(".//{*}SignatureValue").text = "AAAA" + tampered.find(".//{*}SignatureValue").text[4:]
    refused = await send_soap(shep, tampered)
    assert refused.status_code == "SIG_CRYPTO_FAILURE", refused
    after = await scrape(http, gw.url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("egov_requests_total", channel="soap", service=READER_TICKET_SERVICE, code="SCSS001") == 1
    assert moved("egov_requests_total", channel="soap", service=READER_TICKET_SERVICE, code="SIG_CRYPTO_FAILURE") == 1
    assert moved("egov_requests_total", channel="rest", service="unknown", code="CLIENT_UNSUPPORTED_MEDIA_TYPE") == 1
    assert moved("egov_request_duration_seconds_count", channel="soap", service=READER_TICKET_SERVICE) == 2
    assert moved("egov_request_duration_seconds_sum", channel="soap", service=READER_TICKET_SERVICE) > 0
    assert moved("egov_signature_checks_total", indication="TOTAL_PASSED", sub_indication="none") == 1
    assert moved("egov_signature_checks_total", indication="TOTAL_FAILED", sub_indication="SIG_CRYPTO_FAILURE") == 1
    assert moved("egov_backend_calls_total", service=READER_TICKET_SERVICE, outcome="ok") == 1
    assert moved("egov_backend_call_duration_seconds_count", service=READER_TICKET_SERVICE) == 1
    network = sum(moved("egov_revocation_lookups_total", source=source, result="good")
                  for source in ("ocsp", "crl", "shared"))
    assert network + moved("egov_revocation_cache_hits_total") >= 2  # the signer and its CA, asked or cached
    assert value(after, "egov_breaker_open", service=READER_TICKET_SERVICE) == 0


async def test_scrape_time_gauges_follow_redis(gw: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    queue = JobQueue(gw.redis, prefix=gw.settings.redis.key_prefix)
    assert value(await scrape(http, gw.url), "egov_queue_pending", service=FUND_SUBMISSION_SERVICE) == 0
    await queue.enqueue(FUND_SUBMISSION_SERVICE, {"sessionId": "{metrics-test}"})
    await queue.enqueue(FUND_SUBMISSION_SERVICE, {"sessionId": "{metrics-test-2}"})
    assert await queue.claim(FUND_SUBMISSION_SERVICE, "metrics-test") is not None  # claimed, not acknowledged

    async def pending() -> bool:
        return value(await scrape(http, gw.url), "egov_queue_pending", service=FUND_SUBMISSION_SERVICE) == 2

    await wait_for(pending)  # the gauges are read at most every gauge_cache_seconds
    found = await scrape(http, gw.url)
    assert value(found, "egov_dead_letters", service=FUND_SUBMISSION_SERVICE) == 0
    assert ("egov_outbox_due", frozenset()) in found


async def test_cabinet_streams_gauge(gw: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    iin = gw.pki.person("aigerim").iin
    before = value(await scrape(http, gw.url), "egov_cabinet_streams")
    reader = gw.auth(NATIONAL, NATIONAL_PASSWORD)  # may read every owner's: no application is needed first
    async with http.get(f"{gw.url}/api/v1/cabinet/{iin}/events", headers=reader) as stream:
        assert stream.status == 200
        assert value(await scrape(http, gw.url), "egov_cabinet_streams") == before + 1

    async def closed() -> bool:
        return value(await scrape(http, gw.url), "egov_cabinet_streams") == before

    await wait_for(closed)


class SealState:
    """The message log's two readings, as the real log will give them (it is built on another branch)."""

    def __init__(self) -> None:
        self.unsealed, self.age, self.oldest, self.broken = 0, None, None, False

    async def unsealed_records(self) -> int:
        if self.broken:
            raise RuntimeError("the message log cannot be read")
        return self.unsealed

    async def last_seal_age_seconds(self) -> float | None:
        return self.age

    async def oldest_unsealed_age_seconds(self) -> float | None:
        return self.oldest


async def test_message_log_hook(gw: GatewayUnderTest, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    port = free_port()
    settings = replace(gw.settings, listen=replace(gw.settings.listen, port=port), state_dir=tmp_path,
                       monitor=MonitorSettings(gauge_cache_seconds=0.01))
    app = create_app(settings, redis_url=gw.redis_url)
    state = SealState()
    register_message_log(app[MONITOR], state, max_seal_age_seconds=60)
    runner = await start_site(app, "127.0.0.1", port)
    url = f"http://127.0.0.1:{port}"
    try:
        found = await scrape(http, url)
        assert value(found, "egov_messagelog_unsealed_records") == 0
        assert ("egov_messagelog_last_seal_age_seconds", frozenset()) not in found  # nothing sealed yet
        state.unsealed, state.oldest = 7, 30.0  # records wait before the first seal: still ready
        async with http.get(f"{url}/health/ready") as response:
            assert response.status == 200, await response.text()
        state.age = 12.5

        async def moved() -> Samples | None:  # a scrape later than gauge_cache_seconds reads afresh
            found = await scrape(http, url)
            return found if value(found, "egov_messagelog_unsealed_records") == 7 else None

        found = await wait_for(moved)
        assert value(found, "egov_messagelog_last_seal_age_seconds") == 12.5
        async with http.get(f"{url}/health/ready") as response:
            assert response.status == 200, await response.text()
        state.oldest = 61.0
        async with http.get(f"{url}/health/ready", headers=OPS) as response:
            assert response.status == 503
            body = await response.json()
        assert body["failing"] == ["messagelog"]
        assert "the oldest for 61 s (limit 60 s)" in body["checks"]["messagelog"]["detail"]
        state.broken = True  # a reading that fails: its gauge is left out, its check fails closed

        async def left_out() -> bool:
            return ("egov_messagelog_unsealed_records", frozenset()) not in await scrape(http, url)

        await wait_for(left_out)
        async with http.get(f"{url}/health/ready", headers=OPS) as response:
            assert response.status == 503
            body = await response.json()
        assert body["checks"]["messagelog"]["detail"] == "the check itself failed (RuntimeError)"
    finally:
        await runner.cleanup()


async def test_two_workers_report_one_view(pki, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = serve_config(tmp_path, pki, port, signer=f'cert = "{pki.systems["gateway"].cert}"\n'
                          f'key = "{pki.systems["gateway"].key}"', portal_hash=hash_password(PORTAL_PASSWORD),
                          ops_hash=hash_password(OPERATOR_PASSWORD))
    monitor = f"127.0.0.1:{free_port()}"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n{config.read_text()}\n'
                      f'[revocation]\nmode = "off"\n[monitor]\nlisten = "{monitor}"\n')
    server = subprocess.Popen([*CLI, "serve", "--config", str(config), "--workers", "2"],
                              env={**os.environ, "REDIS_URL": redis_url},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ops = {"Authorization": aiohttp.encode_basic_auth("ops", OPERATOR_PASSWORD)}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            async def up() -> bool:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health/live") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(up, 30)
            processes: set[int] = set()
            sent = 0
            # New connections each time: the kernel spreads them over both processes; go on until both counted.
            while len(processes) < 2 or sent < 10:
                async with http.post(f"http://127.0.0.1:{port}/api/v1/requests", data=b"<x/>", headers=XML) as r:
                    assert r.status == 415
                sent += 1
                async with http.get(f"http://127.0.0.1:{port}/health/ready", headers=ops) as response:
                    processes.add((await response.json())["process"])
                assert sent < 200, "the second worker never answered"
            files = {p.name for p in (tmp_path / "state" / "metrics").glob("counter_*.db")}
            assert len(files) >= 2, f"one counter file per worker: {files}"
            for _ in range(6):  # whichever worker answers, it reports the sum of both
                found = samples(await exposition(http, f"http://127.0.0.1:{port}", ops))
                assert value(found, "egov_requests_total", channel="rest", service="unknown",
                             code="CLIENT_UNSUPPORTED_MEDIA_TYPE") == sent
            # The separate monitor address: the same view, no credentials.
            found = samples(await exposition(http, f"http://{monitor}", {}))
            assert value(found, "egov_requests_total", channel="rest", service="unknown",
                         code="CLIENT_UNSUPPORTED_MEDIA_TYPE") == sent
    finally:
        server.terminate()
        output = await asyncio.to_thread(server.communicate, timeout=20)
    assert server.returncode == 0, output[0]
    assert "Traceback" not in output[0]
