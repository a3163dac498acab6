"""A circuit breaker with resilience4j's semantics, for asyncio.

CLOSED: calls pass; outcomes go into a sliding window (the last N calls, or the calls of the
last N seconds). Once the window holds at least `minimum_calls`, a failure rate or a slow-call
rate at or above its threshold opens the breaker.
OPEN: calls are refused at once (`CircuitOpen`) for `wait_in_open_s`; the next call after that
moves the breaker to HALF_OPEN.
HALF_OPEN: `half_open_calls` trial calls are let through (others are refused); when they have
all finished, their failure and slow rates decide: CLOSED (window reset) or OPEN again.

Errors the `is_failure` predicate rejects (a bad cursor, a unique violation) are neither
successes nor failures: they say nothing about the dependency's health.
No asyncio library implements these semantics (aiobreaker and purgatory have no sliding
window, no slow-call rate, no bounded half-open trials), hence this module.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from prometheus_client.metrics import Gauge


class State(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitOpen(Exception):
    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"circuit {name} is open")
        self.name = name
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window: Literal["count", "time"] = "count"
    window_size: int = 50
    """Calls (count window) or seconds (time window)."""
    minimum_calls: int = 10
    failure_rate_threshold: float = 50.0
    """Percent."""
    slow_call_duration_s: float = 1.0
    slow_call_rate_threshold: float = 100.0
    """Percent; 100 means only an all-slow window opens the breaker."""
    wait_in_open_s: float = 5.0
    half_open_calls: int = 3

    def __post_init__(self) -> None:
        checks = {
            "window_size": self.window_size >= 1,
            "minimum_calls": self.minimum_calls >= 1,
            "failure_rate_threshold": 0 < self.failure_rate_threshold <= 100,
            "slow_call_rate_threshold": 0 < self.slow_call_rate_threshold <= 100,
            "slow_call_duration_s": self.slow_call_duration_s > 0,
            "wait_in_open_s": self.wait_in_open_s > 0,
            "half_open_calls": self.half_open_calls >= 1,
        }
        wrong = [name for name, ok in checks.items() if not ok]
        if wrong:
            raise ValueError(f"invalid circuit breaker setting(s): {', '.join(wrong)}")


class _Window:
    """Outcome counts over the last N calls or the last N seconds (per-second buckets)."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.calls: deque[tuple[bool, bool]] = deque()
        self.buckets: deque[list[int]] = deque()  # [second, calls, failures, slow]
        self.total = self.failures = self.slow = 0

    def record(self, failed: bool, slow: bool) -> None:
        if self.config.window == "count":
            self.calls.append((failed, slow))
            self.total += 1
            self.failures += failed
            self.slow += slow
            if len(self.calls) > self.config.window_size:
                old_failed, old_slow = self.calls.popleft()
                self.total -= 1
                self.failures -= old_failed
                self.slow -= old_slow
            return
        second = int(self.clock())
        if not self.buckets or self.buckets[-1][0] != second:
            self.buckets.append([second, 0, 0, 0])
        bucket = self.buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        bucket[3] += slow
        self.total += 1
        self.failures += failed
        self.slow += slow
        self._expire()

    def _expire(self) -> None:
        if self.config.window != "time":
            return
        oldest = int(self.clock()) - self.config.window_size + 1
        while self.buckets and self.buckets[0][0] < oldest:
            _, calls, failures, slow = self.buckets.popleft()
            self.total -= calls
            self.failures -= failures
            self.slow -= slow

    def rates(self) -> tuple[int, float, float]:
        """(calls, failure %, slow %) over the window."""
        self._expire()
        if not self.total:
            return 0, 0.0, 0.0
        return self.total, 100 * self.failures / self.total, 100 * self.slow / self.total

    def reset(self) -> None:
        self.calls.clear()
        self.buckets.clear()
        self.total = self.failures = self.slow = 0


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self.clock = clock
        self.state = State.CLOSED
        self.opened_at = 0.0
        self.window = _Window(self.config, clock)
        self.rejected = 0
        self._trial_permits = 0
        self._trial_outcomes: list[tuple[bool, bool]] = []
        self._state_gauges = _state_gauges(name)
        self._show(State.CLOSED)

    def acquire(self) -> None:
        """Permission for one call; raises CircuitOpen when refused. Every permitted call
        must end with `record_success`, `record_failure` or `record_ignored`."""
        if self.state is State.OPEN:
            waited = self.clock() - self.opened_at
            if waited < self.config.wait_in_open_s:
                self.rejected += 1
                raise CircuitOpen(self.name, self.config.wait_in_open_s - waited)
            self._to(State.HALF_OPEN)
        if self.state is State.HALF_OPEN:
            if self._trial_permits >= self.config.half_open_calls:
                self.rejected += 1
                raise CircuitOpen(self.name, self.config.wait_in_open_s)
            self._trial_permits += 1

    def record_success(self, duration_s: float) -> None:
        self._record(False, duration_s >= self.config.slow_call_duration_s)

    def record_failure(self, duration_s: float) -> None:
        self._record(True, duration_s >= self.config.slow_call_duration_s)

    def record_ignored(self) -> None:
        if self.state is State.HALF_OPEN:
            self._trial_permits -= 1  # give the trial back: it said nothing

    def _record(self, failed: bool, slow: bool) -> None:
        if self.state is State.HALF_OPEN:
            self._trial_outcomes.append((failed, slow))
            if len(self._trial_outcomes) >= self.config.half_open_calls:
                calls = len(self._trial_outcomes)
                failure_rate = 100 * sum(f for f, _ in self._trial_outcomes) / calls
                slow_rate = 100 * sum(s for _, s in self._trial_outcomes) / calls
                self._to(State.OPEN if self._tripped(failure_rate, slow_rate) else State.CLOSED)
            return
        if self.state is State.OPEN:
            return  # a call permitted before the breaker opened, finishing late
        self.window.record(failed, slow)
        calls, failure_rate, slow_rate = self.window.rates()
        if calls >= self.config.minimum_calls and self._tripped(failure_rate, slow_rate):
            self._to(State.OPEN)

    def _tripped(self, failure_rate: float, slow_rate: float) -> bool:
        return (
            failure_rate >= self.config.failure_rate_threshold
            or slow_rate >= self.config.slow_call_rate_threshold
        )

    def _to(self, state: State) -> None:
        self.state = state
        self._show(state)
        self._trial_permits = 0
        self._trial_outcomes = []
        if state is State.OPEN:
            self.opened_at = self.clock()
        if state is State.CLOSED:
            self.window.reset()

    def _show(self, current: State) -> None:
        """propintel_breaker_state: 1 for the current state, 0 for the others."""
        for state, gauge in self._state_gauges.items():
            gauge.set(1 if state is current else 0)

    def snapshot(self) -> dict[str, object]:
        calls, failure_rate, slow_rate = self.window.rates()
        return {
            "name": self.name,
            "state": self.state.value,
            "calls": calls,
            "failure_rate": round(failure_rate, 1),
            "slow_call_rate": round(slow_rate, 1),
            "rejected": self.rejected,
        }


def _state_gauges(name: str) -> dict[State, Gauge]:
    # Imported here, not at the top: app.cli imports this module (through the settings)
    # before `propintel serve` sets the metrics directory (app/telemetry/multiprocess.py).
    from app.telemetry import metrics

    return {state: metrics.breaker_state.labels(name, state.value) for state in State}
