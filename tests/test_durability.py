"""The durability check before acknowledging, its settings, and how storage errors become refusals."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.config import ConfigError
from gateway.config.loading import check_settings, settings_from_dict
from gateway.errors import GatewayError, storage_refusal
from gateway.lifecycle.durability import DurabilityProbe, judge


async def test_concurrent_confirmations_share_one_status_read(redis: Redis) -> None:
    probe = DurabilityProbe(redis)
    await asyncio.gather(*(probe.confirm() for _ in range(50)))  # the session's server: append-only file on
    assert probe.reads == 1
    await probe.confirm()  # a later request never reuses an earlier read
    assert probe.reads == 2


async def test_a_server_without_its_append_only_file_is_refused(redis: Redis) -> None:
    await redis.config_set("appendonly", "no")
    try:
        with pytest.raises(GatewayError) as refused:
            await DurabilityProbe(redis).confirm()
        assert refused.value.code == "GATEWAY_STORAGE_NOT_DURABLE"
        await DurabilityProbe(redis, require_aof=False).confirm()  # allowed when the operator says so
    finally:
        await redis.config_set("appendonly", "yes")  # rewrites the file in the background: wait for it
        for _ in range(200):
            info = await redis.info("persistence")
            if not (info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]):
                break
            await asyncio.sleep(0.05)
        assert info["aof_enabled"] == 1 and info["aof_last_bgrewrite_status"] == "ok"


def test_a_failed_append_only_write_is_refused_whatever_require_aof_says() -> None:
    failed = {"aof_enabled": 1, "aof_last_write_status": "err", "aof_last_bgrewrite_status": "ok"}
    assert judge(failed, require_aof=False) == "the storage's last append-only write failed (disk full or I/O error)"
    assert judge({**failed, "aof_last_write_status": "ok", "aof_last_bgrewrite_status": "err"},
                 require_aof=True) is None  # a failed rewrite leaves the old file appended to


def test_misconf_anywhere_is_not_durable_and_other_errors_unavailable() -> None:
    inside_script = ResponseError("Error running script (call to f_88a9): @user_script:6: @user_script: 6: "
                                  "-MISCONF Errors writing to the AOF file: No space left on device")
    assert storage_refusal(inside_script).code == "GATEWAY_STORAGE_NOT_DURABLE"
    plain = ResponseError("MISCONF Errors writing to the AOF file")
    assert storage_refusal(plain).code == "GATEWAY_STORAGE_NOT_DURABLE"
    assert storage_refusal(RedisConnectionError("refused")).code == "GATEWAY_STORAGE_UNAVAILABLE"
    assert storage_refusal(ResponseError("WRONGTYPE")).code == "GATEWAY_STORAGE_UNAVAILABLE"


@pytest.mark.parametrize(("raw", "message"), [
    ({"redis": {"appendfsync": "no"}}, "redis.appendfsync: must be 'everysec' or 'always'"),
    ({"listen": {"header_timeout_seconds": 0}}, "listen.header_timeout_seconds: must be positive"),
    ({"listen": {"keepalive_timeout_seconds": float("inf")}}, "listen.keepalive_timeout_seconds: must be positive"),
    ({"listen": {"max_connections": 0}}, "listen.max_connections: must be at least 1"),
])
def test_bad_fault_settings_are_refused(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_settings(settings_from_dict(raw))
    assert str(refused.value) == message
