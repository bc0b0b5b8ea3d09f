"""The shared revocation cache: several checkers ("nodes") on one real Redis (and once on the local cluster) in
front of the mock PKI's OCSP responder on a real socket. What one node fetched, another uses without asking the
responder, after checking it as a fresh answer; a stored answer that fails a check (tampered, past nextUpdate,
nonce-less under a nonce policy) is no answer; a Redis that is down or hangs costs a miss, never a verification.
Requests are counted at the responder; lookups through the checker's ``on_lookup``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from gateway.config import ConfigError, Settings, settings_from_dict
from gateway.shell.redis_clients import redis_client
from gateway.shell.revocation_cache import RedisSharedAnswers
from mocks.pki import TestPki
from mocks.portal.applicant import READER_TICKET_SERVICE, signed_application
from signing.policy import RevocationMode, VerificationPolicy
from signing.report import Indication, SubIndication
from signing.revocation import RevocationChecker, RevocationSettings, apply_revocation
from signing.revocation_fields import key_hash
from signing.revocation_shared import GuardedShare
from signing.trust import TrustStore
from signing.verifier import DocumentVerifier, SignatureRejected, VerifiedDocument
from tests.helpers import (
    GatewayUnderTest,
    Responder,
    free_port,
    mock_control,
    rest_request,
    running_responder,
    second_gateway,
)

Mode = RevocationMode


@pytest_asyncio.fixture(scope="module")
async def responder(pki: TestPki) -> AsyncIterator[Responder]:
    async with running_responder(pki) as running:
        yield running


@pytest_asyncio.fixture(autouse=True)
async def fresh_responder(responder: Responder, http: aiohttp.ClientSession) -> None:
    responder.clock.offset = timedelta()
    await mock_control(http, responder.url, "reset")


@pytest.fixture(scope="module")
def verified(pki: TestPki) -> VerifiedDocument:
    """aigerim's application, verified once (each node applies revocation on top)."""
    verifier = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(pki.trust_anchors, pki.intermediates))
    return verifier.verify(signed_application(pki.person("aigerim"), READER_TICKET_SERVICE))


class Node:
    """One gateway node's checker, with what it told its lookup observer."""

    def __init__(self, http: aiohttp.ClientSession, responder: Responder, store: RedisSharedAnswers | None,
                 **settings: Any) -> None:
        self.lookups: list[tuple[str, str]] = []
        settings = {"ocsp_url": f"{responder.url}/ocsp",
                    "crl_urls": (f"{responder.url}/crl/nca.crl", f"{responder.url}/crl/root.crl"),
                    "timeout_seconds": 1.0, **settings}
        self.checker = RevocationChecker(RevocationSettings(**settings), http, clock=responder.clock,
                                         on_lookup=lambda source, result: self.lookups.append((source, result)),
                                         shared=store)

    async def verify(self, verified: VerifiedDocument) -> VerifiedDocument:
        return await apply_revocation(verified, self.checker, Mode.HARD_FAIL)

    def told(self) -> Counter[tuple[str, str]]:
        told, self.lookups = Counter(self.lookups), []
        return told


async def requests(http: aiohttp.ClientSession, responder: Responder) -> dict[str, int]:
    return dict((await mock_control(http, responder.url, "state"))["requests"])


def entry(store: RedisSharedAnswers, certificate: x509.Certificate, issuer: x509.Certificate) -> str:
    return store.key(f"{key_hash(issuer).hex()}:{certificate.serial_number:x}")


@pytest.fixture
def store(redis: Redis, prefix: str) -> RedisSharedAnswers:
    return RedisSharedAnswers(redis, prefix)


async def test_a_second_node_uses_the_first_nodes_answer_without_asking(http, responder, verified, store,
                                                                         redis) -> None:
    first, second = Node(http, responder, store), Node(http, responder, store)
    assert (await first.verify(verified)).report.revocation.source == "ocsp"
    assert first.told() == {("ocsp", "good"): 2}, "the signer's certificate and the NCA intermediate"
    assert await requests(http, responder) == {"ocsp": 2}

    answer = await second.verify(verified)
    info = answer.report.revocation
    assert answer.report.passed and (info.status, info.source, info.url) == ("good", "shared", f"{responder.url}/ocsp")
    assert info.next_update - info.checked_at == timedelta(minutes=10), "the expiry the responder gave"
    assert second.told() == {("shared", "good"): 2}
    assert await requests(http, responder) == {"ocsp": 2}, "the second node asked nobody"
    assert (await second.verify(verified)).report.revocation.source == "cache", "then it is in its memory"
    assert second.told() == {("cache", "good"): 2}

    leaf, issuer = verified.path.certificates[:2]
    ttl = await redis.pttl(entry(store, leaf, issuer))
    assert 9 * 60_000 < ttl <= 10 * 60_000, "the key expires with the answer (nextUpdate)"


async def test_a_node_without_the_shared_cache_asks_for_itself(http, responder, verified, store) -> None:
    await Node(http, responder, store).verify(verified)
    alone = Node(http, responder, None)
    assert (await alone.verify(verified)).report.revocation.source == "ocsp"
    assert alone.told() == {("ocsp", "good"): 2}
    assert await requests(http, responder) == {"ocsp": 4}


async def test_an_entry_past_its_next_update_is_not_used(http, responder, verified, store, redis) -> None:
    await Node(http, responder, store).verify(verified)
    leaf, issuer = verified.path.certificates[:2]
    stored = await redis.get(entry(store, leaf, issuer))
    responder.clock.offset = timedelta(minutes=11)  # past nextUpdate (10 min); Redis's own expiry has not come
    later = Node(http, responder, store)
    info = (await later.verify(verified)).report.revocation
    assert (info.status, info.source) == ("good", "ocsp")
    assert later.told() == {("shared", "refused"): 2, ("ocsp", "good"): 2}
    assert await requests(http, responder) == {"ocsp": 4}
    assert await redis.get(entry(store, leaf, issuer)) != stored, "the fresh answer replaced the stale one"


@pytest.mark.parametrize(("damage", "why"), [
    (lambda der: der[:-1] + bytes([der[-1] ^ 0x01]), "does not verify"),  # a byte of the signature
    (lambda der: der[: len(der) // 2], "is malformed"),
], ids=["a-signature-byte-flipped", "truncated"])
async def test_a_tampered_entry_is_refused_and_the_responder_asked(http, responder, verified, store, redis, caplog,
                                                                   damage, why) -> None:
    await Node(http, responder, store).verify(verified)
    leaf, issuer = verified.path.certificates[:2]
    key = entry(store, leaf, issuer)
    await redis.set(key, damage(await redis.get(key)), px=60_000)
    node = Node(http, responder, store)
    with caplog.at_level(logging.WARNING, logger="signing.revocation"):
        answer = await node.verify(verified)
    assert answer.report.passed and answer.report.revocation.source == "ocsp", "the fresh answer counts"
    assert node.told() == {("shared", "refused"): 1, ("ocsp", "good"): 1, ("shared", "good"): 1}
    refusal = [r.getMessage() for r in caplog.records if "shared OCSP answer" in r.getMessage()]
    assert len(refusal) == 1 and why in refusal[0] and f"{leaf.serial_number:x}" in refusal[0], refusal
    assert await requests(http, responder) == {"ocsp": 3}
    third = Node(http, responder, store)
    assert (await third.verify(verified)).report.revocation.source == "shared", "the fresh answer is shared"


async def test_a_revoked_answer_is_shared_as_revoked(http, responder, verified, store) -> None:
    serial = format(verified.path.certificates[0].serial_number, "x")
    await mock_control(http, responder.url, "revoke", {"serial": serial, "reason": "key_compromise"})
    for source in ("ocsp", "shared"):
        with pytest.raises(SignatureRejected) as caught:
            await Node(http, responder, store).verify(verified)
        report = caught.value.report
        assert (report.error_code, report.sub_indication, report.indication) == (
            "SIG_REVOKED", SubIndication.REVOKED, Indication.TOTAL_FAILED)
        assert (report.revocation.status, report.revocation.source, report.revocation.reason) == (
            "revoked", source, "key_compromise")
    assert "according to a shared OCSP answer from" in report.errors[0]
    assert await requests(http, responder) == {"ocsp": 2}, "the second node asked nobody"


async def test_an_unknown_status_and_a_crl_answer_are_never_shared(http, responder, pki, verified, store,
                                                                   redis, prefix) -> None:
    nca = pki.authorities["nca"]
    issuer, leaf = nca.load_certificate(), verified.path.certificates[0]
    stray = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(issuer.subject)
             .public_key(leaf.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(leaf.not_valid_before_utc).not_valid_after(leaf.not_valid_after_utc)
             .sign(nca.load_private_key(), hashes.SHA256()))  # signed by the NCA key, unknown to the responder
    node = Node(http, responder, store)
    assert (await node.checker.check(stray, issuer)).source == "crl"
    assert node.told() == {("ocsp", "unavailable"): 1, ("crl", "good"): 1}
    assert [key async for key in redis.scan_iter(f"{prefix}:ocsp:*")] == []


async def test_a_nonce_less_entry_is_refused_under_a_policy_that_requires_nonces(http, responder, verified,
                                                                                 store, caplog) -> None:
    await mock_control(http, responder.url, "ocsp", {"nonce": False})
    lenient = Node(http, responder, store, accept_missing_nonce=True)
    assert (await lenient.verify(verified)).report.revocation.source == "ocsp"
    strict = Node(http, responder, store)
    leaf, issuer = verified.path.certificates[:2]
    with caplog.at_level(logging.WARNING, logger="signing.revocation"):
        info = await strict.checker.check(leaf, issuer)
    assert (info.status, info.source) == ("good", "crl"), "the store's answer and the responder's both lack it"
    assert strict.told() == {("shared", "refused"): 1, ("ocsp", "unavailable"): 1, ("crl", "good"): 1}
    assert "does not echo our nonce" in (info.detail or "")
    assert any("carries no nonce, which the policy requires" in r.getMessage() for r in caplog.records)


async def test_a_delegated_responders_answer_is_checked_and_shared(http, responder, verified, store) -> None:
    await mock_control(http, responder.url, "ocsp", {"signer": "delegated"})
    await Node(http, responder, store).verify(verified)
    second = Node(http, responder, store)
    assert (await second.verify(verified)).report.revocation.source == "shared"
    assert second.told() == {("shared", "good"): 2}


async def test_with_redis_down_the_network_answers_and_it_is_logged_once(http, responder, verified, pki,
                                                                         caplog) -> None:
    down = redis_client(f"redis://127.0.0.1:{free_port()}", Settings(), socket_timeout=5)  # nothing listens there
    node = Node(http, responder, RedisSharedAnswers(down, "t"))
    try:
        with caplog.at_level(logging.WARNING, logger="signing.revocation_shared"):
            assert (await node.verify(verified)).report.revocation.source == "ocsp"
            other = DocumentVerifier(VerificationPolicy(), TrustStore.from_files(pki.trust_anchors, pki.intermediates)
                                     ).verify(signed_application(pki.person("daniyar"), READER_TICKET_SERVICE))
            assert (await node.verify(other)).report.revocation.source == "ocsp"
    finally:
        await down.aclose()
    told = node.told()
    assert told[("ocsp", "good")] == 3, "aigerim's, daniyar's certificate and the NCA intermediate (then cached)"
    assert 1 <= told[("shared", "unavailable")] <= 2, "the first checks' calls; then the store is left alone"
    failed = [r.getMessage() for r in caplog.records if r.name == "signing.revocation_shared"]
    assert len(failed) == 1 and "failed (get: ConnectionError" in failed[0], failed


async def test_a_hanging_redis_costs_a_bounded_miss_and_the_recovery_is_logged(redis: Redis, prefix: str,
                                                                              caplog) -> None:
    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hanging = Redis(port=port)
    now = [0.0]
    store = RedisSharedAnswers(hanging, prefix)
    share = GuardedShare(store, timeout_seconds=0.2, pause_seconds=5.0, clock=lambda: now[0])
    try:
        with caplog.at_level(logging.WARNING, logger="signing.revocation_shared"):
            assert await share.get("ab:1") is None
            assert share.failures == 1
            store.redis = redis  # the store comes back; while paused nobody asks it
            await redis.set(store.key("ab:1"), b"der", px=60_000)
            assert await share.get("ab:1") is None and share.failures == 1
            now[0] = 5.0
            assert await share.get("ab:1") == b"der"
    finally:
        await hanging.aclose()
        server.close()
        await server.wait_closed()
    assert [r.getMessage() for r in caplog.records if r.name == "signing.revocation_shared"] == [
        "the shared revocation cache failed (get: no answer within 0.2 s); asking the OCSP responders directly, "
        "the cache again in 5 s",
        "the shared revocation cache is back after 1 failed calls in 5 s"]


async def test_two_nodes_on_the_redis_cluster(http, responder, verified, cluster_client) -> None:
    store = RedisSharedAnswers(cluster_client, "egov")  # type: ignore[arg-type]  # the gateway's cast, same API
    await Node(http, responder, store).verify(verified)
    second = Node(http, responder, store)
    assert (await second.verify(verified)).report.revocation.source == "shared"
    assert second.told() == {("shared", "good"): 2}
    assert await requests(http, responder) == {"ocsp": 2}
    assert len([key async for key in cluster_client.scan_iter("egov:ocsp:*")]) == 2


# ------------------------------------------------------------------------------------- two gateways

def test_the_setting_is_on_by_default_and_a_toml_bool() -> None:
    assert settings_from_dict({}).revocation.shared_cache is True
    assert settings_from_dict({"revocation": {"shared_cache": False}}).revocation.shared_cache is False
    with pytest.raises(ConfigError, match=r"^revocation\.shared_cache: expected bool, got str 'no'$"):
        settings_from_dict({"revocation": {"shared_cache": "no"}})


def shared_hits() -> float:
    return REGISTRY.get_sample_value("egov_revocation_lookups_total", {"source": "shared", "result": "good"}) or 0.0


async def submit(http: aiohttp.ClientSession, url: str, system: GatewayUnderTest) -> None:
    request = rest_request(signed_application(system.pki.person("saule"), READER_TICKET_SERVICE))
    async with http.post(f"{url}/api/v1/requests", json=request) as response:
        body = await response.json(content_type=None)
    assert response.status == 200, body


async def test_two_gateways_on_one_redis_share_an_answer_unless_switched_off(system, http, tmp_path: Path) -> None:
    """The session's Redis and OCSP responder; ``[revocation] shared_cache`` as the gateway wires it."""
    await mock_control(http, system.revocation_url, "reset")
    async for key in system.redis.scan_iter(f"{system.settings.redis.key_prefix}:ocsp:*"):
        await system.redis.delete(key)
    off = replace(system.settings.revocation, shared_cache=False)
    gateways = [await second_gateway(system, tmp_path / name, **changes)
                for name, changes in (("a", {}), ("b", {}), ("off", {"revocation": off}))]
    counts = []
    try:
        for _, url in gateways:
            hits = shared_hits()
            await submit(http, url, system)
            counts.append(((await mock_control(http, system.revocation_url, "state"))["requests"].get("ocsp", 0),
                           shared_hits() - hits))
    finally:
        for runner, _ in gateways:
            await runner.cleanup()
        await mock_control(http, system.revocation_url, "reset")
    assert counts == [(2, 0), (2, 2), (4, 0)], "b asked nobody (two shared hits); the one switched off asked"
