"""Circuit breaker, bulkhead and guarded dependency semantics (no services needed)."""

from __future__ import annotations

import asyncio

import pytest

from app.resilience.breaker import BreakerConfig, CircuitBreaker, CircuitOpen, State
from app.resilience.bulkhead import Bulkhead, BulkheadConfig, BulkheadFull
from app.resilience.deadline import deadline_in
from app.resilience.dependency import Dependency, DependencyConfig, ServiceUnavailable
from app.resilience.retry import Retry
from tests.support.credentials import BOOTSTRAP_KEY, JWT_SECRET


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **config: object) -> CircuitBreaker:
    values: dict[str, object] = {"window_size": 10, "minimum_calls": 4, **config}
    return CircuitBreaker("db", BreakerConfig(**values), clock=clock)  # type: ignore[arg-type]


def call(b: CircuitBreaker, *, fail: bool = False, seconds: float = 0.01) -> None:
    b.acquire()
    if fail:
        b.record_failure(seconds)
    else:
        b.record_success(seconds)


def test_opens_at_the_failure_rate_once_the_window_has_the_minimum_calls() -> None:
    clock = Clock()
    b = breaker(clock, failure_rate_threshold=50)
    call(b, fail=True)
    call(b, fail=True)
    call(b, fail=True)
    assert b.snapshot()["state"] == "CLOSED"  # 3 calls < minimum of 4
    call(b)
    assert b.snapshot()["state"] == "OPEN"  # 3 of 4 failed: 75% >= 50%
    with pytest.raises(CircuitOpen) as refused:
        b.acquire()
    assert refused.value.retry_after_s == pytest.approx(5.0)


def test_slow_calls_open_it_too() -> None:
    clock = Clock()
    b = breaker(clock, slow_call_duration_s=0.5, slow_call_rate_threshold=75)
    for _ in range(3):
        call(b, seconds=0.6)
    call(b, seconds=0.01)
    assert b.snapshot()["state"] == "OPEN"  # 3 of 4 slow: 75%


def test_count_window_forgets_old_calls() -> None:
    clock = Clock()
    b = breaker(clock, window_size=4, minimum_calls=4, failure_rate_threshold=75)
    for _ in range(2):
        call(b, fail=True)
    for _ in range(4):
        call(b)
    call(b, fail=True)
    assert b.snapshot()["state"] == "CLOSED"  # the window holds 1 failure of 4


def test_time_window_forgets_old_seconds() -> None:
    clock = Clock()
    b = breaker(clock, window="time", window_size=10, minimum_calls=3, failure_rate_threshold=60)
    call(b, fail=True)
    call(b, fail=True)
    clock.now += 11  # those failures are out of the window
    call(b)
    call(b)
    call(b, fail=True)
    assert b.snapshot()["state"] == "CLOSED"  # 1 of 3 in the window


def test_half_open_lets_a_few_trials_through_and_decides() -> None:
    clock = Clock()
    b = breaker(clock, half_open_calls=2, wait_in_open_s=5)
    for _ in range(4):
        call(b, fail=True)
    assert b.snapshot()["state"] == "OPEN"
    clock.now += 5
    b.acquire()
    assert b.snapshot()["state"] == "HALF_OPEN"
    b.acquire()
    with pytest.raises(CircuitOpen):
        b.acquire()  # only two trials
    b.record_success(0.01)
    b.record_success(0.01)
    assert b.snapshot()["state"] == "CLOSED"
    # ... and a failing trial round opens it again.
    for _ in range(4):
        call(b, fail=True)
    clock.now += 5
    call(b, fail=True)
    call(b)
    assert b.snapshot()["state"] == "OPEN"


def test_ignored_outcomes_do_not_count() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(10):
        b.acquire()
        b.record_ignored()
    assert b.window.rates() == (0, 0.0, 0.0)


def test_invalid_settings_are_named() -> None:
    with pytest.raises(ValueError, match="failure_rate_threshold"):
        BreakerConfig(failure_rate_threshold=0)


async def test_bulkhead_rejects_at_once_when_full() -> None:
    bulkhead = Bulkhead("ml", BulkheadConfig(max_concurrent=2, max_waiting=1, max_wait_s=0.05))
    release = asyncio.Event()

    async def hold() -> None:
        async with bulkhead:
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())  # waits for a slot, then times out
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFull):  # no room left even to wait
        async with bulkhead:
            pass
    with pytest.raises(BulkheadFull):
        await waiter
    release.set()
    await asyncio.gather(*holders)
    assert bulkhead.active == 0
    assert bulkhead.rejected == 2


async def test_dependency_retries_transient_errors_then_succeeds() -> None:
    dependency = Dependency("db", DependencyConfig(timeout_s=1, retry=Retry.STANDARD))
    attempts = 0

    async def flaky(_budget: float) -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionResetError("reset")
        return "ok"

    assert await dependency.call(flaky) == "ok"
    assert attempts == 3
    assert dependency.retries == 2


async def test_dependency_fails_fast_when_open_and_within_the_deadline() -> None:
    config = DependencyConfig(
        timeout_s=0.05,
        retry=Retry.NONE,
        breaker=BreakerConfig(minimum_calls=2, window_size=2, wait_in_open_s=30),
    )
    dependency = Dependency("db", config)

    async def hang(_budget: float) -> None:
        await asyncio.sleep(10)

    for _ in range(2):
        with pytest.raises(ServiceUnavailable, match="timed out"):
            await dependency.call(hang)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ServiceUnavailable) as refused:
        await dependency.call(hang)
    assert loop.time() - started < 0.01
    assert refused.value.extensions is not None
    assert refused.value.extensions["code"] == "SERVICE_UNAVAILABLE"
    assert refused.value.extensions["retryAfterSeconds"] > 0

    fresh = Dependency("db", DependencyConfig(timeout_s=5))
    with deadline_in(0.05), pytest.raises(ServiceUnavailable):
        await fresh.call(hang)  # the request's deadline, not the 5 s timeout


async def test_caller_errors_pass_through_and_do_not_trip() -> None:
    dependency = Dependency(
        "db", DependencyConfig(timeout_s=1, breaker=BreakerConfig(minimum_calls=1))
    )

    async def bad_input(_budget: float) -> None:
        raise ValueError("not the dependency's fault")

    for _ in range(5):
        with pytest.raises(ValueError, match="fault"):
            await dependency.call(bad_input)
    assert dependency.breaker.state is State.CLOSED


def test_profile_policies_take_overrides_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.settings import Settings
    from app.settings.policies import dependency_configs

    monkeypatch.setenv(
        "PROPINTEL_RESILIENCE_POSTGRESQL",
        '{"timeout_s": 1.5, "retry": "STANDARD", "breaker": {"minimum_calls": 5}}',
    )
    monkeypatch.setenv("PROPINTEL_PROFILE", "prod")
    monkeypatch.setenv("JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("ADMIN_API_KEY", BOOTSTRAP_KEY)
    configs = dependency_configs(Settings())
    assert configs["postgresql"].timeout_s == 1.5
    assert configs["postgresql"].retry is Retry.STANDARD
    assert configs["postgresql"].breaker.minimum_calls == 5
    assert configs["postgresql"].breaker.wait_in_open_s == 2.0  # prod's, not overridden
    assert configs["redis"].retry is Retry.NONE


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ('{"breaker": {"failure_rate_threshold": 0}}', "breaker.failure_rate_threshold"),
        ('{"timeout": 1}', "timeout"),
        ('{"retry": "SOMETIMES"}', "retry"),
        ('{"bulkhead": {"max_concurrent": 0}}', "bulkhead.max_concurrent"),
        ("not json", "PROPINTEL_RESILIENCE_REDIS"),
    ],
)
def test_a_wrong_resilience_setting_stops_startup_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, named: str
) -> None:
    import subprocess
    import sys

    env = {"PROPINTEL_RESILIENCE_REDIS": value, "DATABASE_URL": "sqlite:///unused.sqlite3"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "invalid settings" in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr
