"""The loop supervisor on its own: backoff with jitter up to a cap and reset on success, one log line per
burst of failures (masked), cancellation passing through, guarded work items. Time is injected."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.supervise import FailureBurst, SupervisorSettings, backoff_delay, guard, spawn, supervise

FAST = SupervisorSettings(backoff_base_seconds=0.1, backoff_cap_seconds=1.0, remind_seconds=60.0)


class Script:
    """A step that plays a list of outcomes (an exception to raise, or None for success), then sets ``stop``."""

    def __init__(self, stop: asyncio.Event, outcomes: list[BaseException | None]) -> None:
        self.stop, self.outcomes, self.calls = stop, list(outcomes), 0

    async def __call__(self) -> None:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if not self.outcomes:
            self.stop.set()
        if outcome is not None:
            raise outcome


class Sleeps:
    """The injected sleep: records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def run(outcomes: list[BaseException | None], *, burst: FailureBurst | None = None,
              rng: float = 1.0) -> tuple[Script, Sleeps]:
    stop = asyncio.Event()
    step, sleeps = Script(stop, outcomes), Sleeps()
    await supervise("test loop", step, stop, settings=FAST, burst=burst, sleep=sleeps, rng=lambda: rng)
    return step, sleeps


async def test_steps_run_until_stop_and_storage_errors_back_off_doubling_to_the_cap() -> None:
    down = RedisConnectionError("Connection refused")
    step, sleeps = await run([down, down, down, down, down, None])
    assert step.calls == 6  # every error was survived
    assert sleeps.waits == [0.1, 0.2, 0.4, 0.8, 1.0]  # rng 1.0: the ceiling itself; capped at 1.0


async def test_a_success_resets_the_backoff() -> None:
    down = OSError("network unreachable")
    _, sleeps = await run([down, down, None, down, None])
    assert sleeps.waits == [0.1, 0.2, 0.1]


def test_jitter_stays_between_half_the_ceiling_and_the_ceiling() -> None:
    assert backoff_delay(3, FAST, rng=lambda: 0.0) == pytest.approx(0.2)
    assert backoff_delay(3, FAST, rng=lambda: 1.0) == pytest.approx(0.4)
    assert backoff_delay(10_000, FAST, rng=lambda: 1.0) == pytest.approx(1.0)  # no overflow, capped


async def test_a_burst_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="egov.supervise")
    down = RedisConnectionError("Connection reset by peer")
    await run([down] * 50 + [None])
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["test loop failed: ConnectionError: Connection reset by peer; backing off",
                     "test loop recovered after 50 failures in 0 s"]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


async def test_a_long_burst_reminds_at_the_interval_of_the_injected_clock(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 25.0  # every failure is 25 s after the one before
        return now[0]

    caplog.set_level(logging.INFO, logger="egov.supervise")
    burst = FailureBurst("test loop", FAST, clock=clock)
    await run([RedisConnectionError("down")] * 6 + [None], burst=burst)
    lines = [r.getMessage() for r in caplog.records]
    # failures at 25..150 s: logged at 25, reminded at 100 (75 s >= 60), the next one would be due at 160
    assert len(lines) == 3, lines
    assert lines[1] == "test loop still failing: 4 failures in 75 s, the last ConnectionError: down"
    assert lines[-1] == "test loop recovered after 6 failures in 150 s"


async def test_an_unexpected_error_is_logged_with_its_traceback_and_no_full_iin(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="egov.supervise")
    step, sleeps = await run([KeyError("880101300123"), None])
    assert step.calls == 2 and sleeps.waits == [0.1]  # a bug backs off too: no hot spin
    first = caplog.records[0]
    assert first.levelno == logging.ERROR
    text = first.getMessage()
    assert "Traceback" in text and "KeyError" in text
    assert "880101300123" not in text and "********0123" in text


async def test_cancellation_passes_through() -> None:
    with pytest.raises(asyncio.CancelledError):
        await run([asyncio.CancelledError(), None])


async def test_the_default_backoff_ends_early_when_stop_is_set() -> None:
    stop = asyncio.Event()
    slow = SupervisorSettings(backoff_base_seconds=3600.0, backoff_cap_seconds=3600.0)

    async def step() -> None:
        asyncio.get_running_loop().call_soon(stop.set)
        raise RedisConnectionError("down")

    await asyncio.wait_for(supervise("test loop", step, stop, settings=slow), timeout=5)  # not an hour


def test_settings_refuse_a_base_above_the_cap_or_no_reminder_interval() -> None:
    with pytest.raises(ValueError, match="backoff_base_seconds"):
        SupervisorSettings(backoff_base_seconds=5.0, backoff_cap_seconds=1.0)
    with pytest.raises(ValueError, match="backoff_base_seconds"):
        SupervisorSettings(backoff_base_seconds=0.0)
    with pytest.raises(ValueError, match="remind_seconds"):
        SupervisorSettings(remind_seconds=0.0)


async def test_guarded_items_swallow_their_errors_into_one_shared_burst(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="egov.supervise")
    burst = FailureBurst("delivery of an application", FAST)

    async def item(fail: bool) -> str:
        if fail:
            raise RedisConnectionError("down")
        return "done"

    results = await asyncio.gather(*(guard(item(True), burst, f"app-{n}") for n in range(10)))
    assert results == [None] * 10 and burst.failures == 10
    assert await guard(item(False), burst, "app-ok") == "done"
    assert burst.failures == 0
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["delivery of an application (app-0) failed: ConnectionError: down; backing off",
                     "delivery of an application recovered after 10 failures in 0 s"]


async def test_spawned_items_are_kept_referenced_until_they_end_and_never_leak_an_exception() -> None:
    tasks: set[asyncio.Task[None]] = set()
    release = asyncio.Event()
    burst = FailureBurst("status notification", FAST)

    async def item() -> None:
        await release.wait()
        raise RuntimeError("a bug")

    task = spawn(tasks, item(), burst, "app-1")
    assert tasks == {task}
    release.set()
    await task
    assert not tasks and task.exception() is None and burst.failures == 1
