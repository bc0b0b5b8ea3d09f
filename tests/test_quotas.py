"""Per-sender quotas (gateway.access.quotas) in a real Redis, with an injected clock: per second, per day
in Kazakhstan time with its counter expiring at midnight, '*' and per-service entries; their configuration."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from gateway.access.quotas import KAZAKHSTAN, QuotaCounter
from gateway.access.senders import hash_password
from gateway.config import ConfigError, QuotaSettings, SenderSettings, load_settings
from gateway.errors import GatewayError

HASH = hash_password("quota-test")
NOON = datetime(2026, 3, 2, 12, 0, 0, tzinfo=KAZAKHSTAN).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def counter(redis, prefix: str, clock: Clock, **quotas: QuotaSettings) -> QuotaCounter:
    return QuotaCounter(redis, prefix, {"portal": SenderSettings(password_hash=HASH, quotas=quotas)}, clock=clock)


async def refusal(quotas: QuotaCounter, service: str = "svc") -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await quotas.count("portal", service)
    return caught.value


async def test_per_second(redis, prefix) -> None:
    clock = Clock(NOON)
    quotas = counter(redis, prefix, clock, svc=QuotaSettings(per_second=2))
    await quotas.count("portal", "svc")
    await quotas.count("portal", "svc")
    refused = await refusal(quotas)
    assert refused.code == "CLIENT_QUOTA_EXCEEDED" and refused.spec.http_status == 429 and refused.retry_after == 1
    clock.now += 1
    await quotas.count("portal", "svc")  # a new second
    await quotas.count("portal", "other")  # no quota for it (and no '*'): never refused


async def test_per_day_until_midnight_and_the_counter_expires(redis, prefix) -> None:
    clock = Clock(NOON)
    quotas = counter(redis, prefix, clock, svc=QuotaSettings(per_day=3))
    for _ in range(3):
        await quotas.count("portal", "svc")
    refused = await refusal(quotas)
    assert refused.code == "CLIENT_QUOTA_EXCEEDED" and refused.retry_after == 12 * 3600
    (key,) = [k async for k in redis.scan_iter(f"{prefix}:quota:{{portal:svc}}:d:*")]
    assert key.endswith(b"2026-03-02")
    assert 0 < await redis.ttl(key) <= 12 * 3600 + 1, "the day's counter expires at midnight"
    [usage] = await quotas.usage("portal", ["svc"])
    assert usage.today == 3, "a refusal by the day's limit is not counted"
    clock.now = (datetime(2026, 3, 3, 0, 0, 1, tzinfo=KAZAKHSTAN)).timestamp()  # just past midnight in Astana
    await quotas.count("portal", "svc")
    [usage] = await quotas.usage("portal", ["svc"])
    assert usage.today == 1 and usage.resets_in_seconds == 24 * 3600 - 1


async def test_star_applies_to_each_service_separately_and_an_entry_wins(redis, prefix) -> None:
    quotas = counter(redis, prefix, Clock(NOON), **{"*": QuotaSettings(per_day=1), "big": QuotaSettings(per_day=2)})
    await quotas.count("portal", "a")
    await quotas.count("portal", "b")  # its own count
    assert (await refusal(quotas, "a")).code == "CLIENT_QUOTA_EXCEEDED"
    await quotas.count("portal", "big")
    await quotas.count("portal", "big")
    assert (await refusal(quotas, "big")).code == "CLIENT_QUOTA_EXCEEDED"
    assert [u.service_id for u in await quotas.usage("portal", ["a", "b", "big"])] == ["a", "b", "big"]


async def test_a_sender_without_quotas_leaves_no_trace(redis, prefix) -> None:
    quotas = counter(redis, prefix, Clock(NOON))
    for _ in range(5):
        await quotas.count("portal", "svc")
        await quotas.count("nobody", "svc")
    assert [k async for k in redis.scan_iter(f"{prefix}:*")] == []
    assert await quotas.usage("portal", ["svc"]) == []


def _config(tmp_path: Path, quotas: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[senders.portal]
password_hash = "{HASH}"
{quotas}
[services.svc]
endpoint = "http://127.0.0.1:1/x"
""")
    return path


def test_quotas_in_the_configuration(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, '[senders.portal.quotas.svc]\nper_second = 5\nper_day = 100\n'
                                               '[senders.portal.quotas."*"]\nper_day = 7\n'))
    assert settings.senders["portal"].quotas == {"svc": QuotaSettings(per_second=5, per_day=100),
                                                 "*": QuotaSettings(per_day=7)}


@pytest.mark.parametrize(("quotas", "message"), [
    ("[senders.portal.quotas.nope]\nper_day = 1\n", "senders.portal.quotas.nope: unknown service"),
    ("[senders.portal.quotas.svc]\nper_second = 0\n", "senders.portal.quotas.svc.per_second: must be at least 1"),
    ("[senders.portal.quotas.svc]\nper_hour = 3\n", "senders.portal.quotas.svc.per_hour: unknown setting"),
    ('[senders.portal.quotas.svc]\nper_day = "lots"\n', "senders.portal.quotas.svc.per_day: expected int"),
])
def test_bad_quotas_name_the_key(tmp_path: Path, quotas: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("*", r"\*")):
        load_settings(_config(tmp_path, quotas))


def test_bad_auth_settings_name_the_key(tmp_path: Path) -> None:
    path = _config(tmp_path, "")
    path.write_text(path.read_text() + "[auth]\naddress_failures = 0\n")
    with pytest.raises(ConfigError, match=r"auth\.address_failures: must be at least 1"):
        load_settings(path)

