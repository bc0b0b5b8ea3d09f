"""Sender authentication (gateway.access): one code for unknown ids and wrong passwords at the same cost,
scrypt off the event loop and bounded, the memo of a verified password, and throttling in a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from gateway.access.senders import AuthenticatedSender, SenderDirectory, hash_password
from gateway.config import AuthSettings, SenderSettings
from gateway.errors import GatewayError

# One scrypt hash for the whole module: each costs tens of milliseconds.
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)
SENDERS = {
    "portal": SenderSettings(password_hash=PASSWORD_HASH, cabinet=True),
    "office": SenderSettings(password_hash=PASSWORD_HASH, services=("kazneb.reader-ticket", "other")),
}
HERE = "192.0.2.1"


@pytest_asyncio.fixture
async def directory(redis: Redis, prefix: str) -> AsyncIterator[SenderDirectory]:
    made = SenderDirectory(SENDERS, redis=redis, prefix=prefix)
    yield made
    made.close()


def make(redis: Redis, prefix: str, **auth: int | float) -> SenderDirectory:
    return SenderDirectory(SENDERS, redis=redis, prefix=prefix, settings=AuthSettings(**auth))  # type: ignore[arg-type]


async def refusal(directory: SenderDirectory, sender: str, password: str | None,
                  client: str = HERE) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await directory.authenticate(sender, password, client=client)
    return caught.value


async def test_unknown_sender_and_wrong_password_get_one_code_and_the_same_scrypt(directory) -> None:
    before = directory.checks.started
    unknown = await refusal(directory, "intruder", PASSWORD)
    assert directory.checks.started == before + 1, "an unknown id pays a full scrypt (against a dummy hash)"
    wrong = await refusal(directory, "portal", "guess-123")
    assert directory.checks.started == before + 2
    assert unknown.code == wrong.code == "CLIENT_BAD_CREDENTIALS"
    assert unknown.detail == wrong.detail and unknown.spec.http_status == 401


@pytest.mark.parametrize("password", [None, "", "guess-123", PASSWORD.upper()])
async def test_bad_credentials(directory, password: str | None) -> None:
    error = await refusal(directory, "portal", password)
    assert error.code == "CLIENT_BAD_CREDENTIALS" and error.spec.http_status == 401
    if password:
        assert password not in str(error)


async def test_memo_spares_scrypt_for_a_correct_repeat_only(directory) -> None:
    first = await directory.authenticate("portal", PASSWORD, client=HERE)
    assert isinstance(first, AuthenticatedSender) and first.sender_id == "portal" and first.settings.cabinet
    started = directory.checks.started
    assert (await directory.authenticate("portal", PASSWORD, client=HERE)).sender_id == "portal"
    assert directory.checks.started == started, "remembered: no second scrypt"
    for _ in range(2):  # a wrong password is never served from the memo and always pays the full check
        assert (await refusal(directory, "portal", "wrong")).code == "CLIENT_BAD_CREDENTIALS"
    assert directory.checks.started == started + 2
    # the memo is per sender: the same password for another sender is checked against that sender
    assert (await directory.authenticate("office", PASSWORD, client=HERE)).sender_id == "office"
    assert directory.checks.started == started + 3
    assert len(directory._verified) == 2, "one digest per configured sender, never more"


async def test_a_burst_of_first_requests_shares_one_check(directory) -> None:
    """Before the memo knows the password, 30 requests at once cost one scrypt, not 30 (and no 503)."""
    before = directory.checks.started
    burst = await asyncio.gather(*(directory.authenticate("portal", PASSWORD, client=HERE) for _ in range(30)))
    assert {sender.sender_id for sender in burst} == {"portal"}
    assert directory.checks.started == before + 1
    wrong = await asyncio.gather(*(refusal(directory, "portal", "guess-1") for _ in range(3)))
    assert {error.code for error in wrong} == {"CLIENT_BAD_CREDENTIALS"}, "a shared wrong check refuses them all"


async def test_may_call(directory) -> None:
    portal = await directory.authenticate("portal", PASSWORD, client=HERE)
    office = await directory.authenticate("office", PASSWORD, client=HERE)
    assert portal.may_call("kazneb.reader-ticket") and portal.may_call("anything.else")
    assert office.may_call("kazneb.reader-ticket") and office.may_call("other")
    assert not office.may_call("elicense.permit") and not office.may_call("*") and not office.may_call("")


async def test_scrypt_runs_off_the_event_loop(directory) -> None:
    """While one wrong password is checked, the event loop keeps turning (it would not turn at all if
    scrypt ran on it)."""
    turns = 0
    checking = asyncio.create_task(refusal(directory, "portal", "wrong"))
    while not checking.done():
        turns += 1
        await asyncio.sleep(0)
    assert (await checking).code == "CLIENT_BAD_CREDENTIALS"
    assert turns > 1


async def test_password_checks_are_bounded(redis, prefix) -> None:
    directory = make(redis, prefix, max_concurrent_checks=1, queue_seconds=0)
    try:
        first = asyncio.create_task(refusal(directory, "portal", "wrong-1"))
        while directory.checks.running == 0:
            await asyncio.sleep(0)
        busy = await refusal(directory, "portal", "wrong-2")
        assert busy.code == "GATEWAY_OVERLOADED" and busy.retry_after == 1
        assert (await first).code == "CLIENT_BAD_CREDENTIALS"
        assert directory.checks.running == 0 and directory.checks.started == 1
    finally:
        directory.close()


async def test_an_address_is_throttled_then_locked_out(redis, prefix) -> None:
    directory = make(redis, prefix, address_failures=3, window_seconds=60, lockout_seconds=120)
    try:
        for _ in range(3):
            assert (await refusal(directory, "portal", "wrong")).code == "CLIENT_BAD_CREDENTIALS"
        started = directory.checks.started
        throttled = await refusal(directory, "portal", PASSWORD)  # even the right password: no check at all
        assert throttled.code == "CLIENT_TOO_MANY_ATTEMPTS" and throttled.spec.http_status == 429
        assert throttled.retry_after is not None and 1 <= throttled.retry_after <= 60
        assert (await refusal(directory, "intruder", "x")).code == "CLIENT_TOO_MANY_ATTEMPTS"
        locked = await refusal(directory, "office", PASSWORD)  # the 6th attempt: twice the limit
        assert locked.code == "CLIENT_LOCKED_OUT" and locked.retry_after == 120
        again = await refusal(directory, "portal", PASSWORD)
        assert again.code == "CLIENT_LOCKED_OUT" and again.retry_after is not None and 115 <= again.retry_after <= 120
        assert directory.checks.started == started, "a throttled attempt never reaches scrypt"
        # another address is not held by this one's failures
        assert (await directory.authenticate("portal", PASSWORD, client="192.0.2.2")).sender_id == "portal"
    finally:
        directory.close()


@pytest.mark.parametrize("sender", ["portal", "no-such-sender"])
async def test_a_sender_id_is_throttled_across_addresses_alike_known_or_not(redis, prefix, sender) -> None:
    directory = make(redis, prefix, sender_failures=3, address_failures=100, lockout_seconds=90)
    try:
        for n in range(3):
            assert (await refusal(directory, sender, "wrong", f"198.51.100.{n}")).code == "CLIENT_BAD_CREDENTIALS"
        throttled = await refusal(directory, sender, "wrong", "198.51.100.9")
        assert throttled.code == "CLIENT_TOO_MANY_ATTEMPTS" and throttled.retry_after
        for n in range(2):
            await refusal(directory, sender, "wrong", f"203.0.113.{n}")
        assert (await refusal(directory, sender, "x", "203.0.113.7")).code == "CLIENT_LOCKED_OUT"
    finally:
        directory.close()


async def test_a_flood_against_a_sender_id_does_not_lock_its_own_address_out(redis, prefix) -> None:
    directory = make(redis, prefix, sender_failures=2, address_failures=100)
    try:
        assert (await directory.authenticate("portal", PASSWORD, client=HERE)).sender_id == "portal"
        for n in range(6):  # far past twice the sender's limit, from elsewhere
            await refusal(directory, "portal", "wrong", f"198.51.100.{n}")
        assert (await refusal(directory, "portal", PASSWORD, "198.51.100.50")).code == "CLIENT_LOCKED_OUT"
        assert (await directory.authenticate("portal", PASSWORD, client=HERE)).sender_id == "portal"
    finally:
        directory.close()


async def test_two_workers_share_the_counts(redis, prefix) -> None:
    first, second = (make(redis, prefix, address_failures=2) for _ in range(2))
    try:
        await refusal(first, "portal", "wrong")
        await refusal(second, "portal", "wrong")
        assert (await refusal(first, "portal", PASSWORD)).code == "CLIENT_TOO_MANY_ATTEMPTS"
        assert (await refusal(second, "portal", PASSWORD)).code == "CLIENT_LOCKED_OUT"
    finally:
        first.close()
        second.close()


async def test_redis_trouble_refuses_rather_than_skipping_the_throttle(prefix) -> None:
    from tests.helpers import free_port

    down = Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
    directory = SenderDirectory(SENDERS, redis=down, prefix=prefix)
    try:
        assert (await refusal(directory, "portal", PASSWORD)).code == "GATEWAY_STORAGE_UNAVAILABLE"
    finally:
        directory.close()
        await down.aclose()
