"""One guarded dependency: bulkhead -> (retry -> circuit breaker -> timeout) -> the call.

A failed call costs at most its timeout (bounded by the request's deadline), a few retries
for transient errors, and nothing at all once the breaker is open: callers get
`ServiceUnavailable` (GraphQL code SERVICE_UNAVAILABLE, with a retry hint) at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg
import stamina

from app.errors import DomainError, ErrorCode
from app.resilience.breaker import BreakerConfig, CircuitBreaker, CircuitOpen
from app.resilience.bulkhead import Bulkhead, BulkheadConfig, BulkheadFull, Preset
from app.resilience.deadline import remaining
from app.resilience.retry import Retry, is_transient
from app.telemetry.labels import BatchedObservations, BatchedValue

T = TypeVar("T")
OUTCOMES = ("success", "failure", "timeout", "rejected")
"""propintel_dependency_calls_total's outcomes (a caller's error, e.g. a unique violation, is
a success: the dependency answered)."""


class ServiceUnavailable(DomainError):
    code = ErrorCode.SERVICE_UNAVAILABLE

    def __init__(self, dependency: str, reason: str, retry_after_s: float) -> None:
        super().__init__(
            f"{dependency} is unavailable ({reason}); retry in {retry_after_s:.1f} s",
            dependency=dependency,
            retryAfterSeconds=round(retry_after_s, 1),
        )
        self.dependency = dependency


def is_dependency_failure(error: BaseException) -> bool:
    """Errors that say the dependency is unwell (they count against its breaker). A unique
    violation or a bad value is the caller's problem and counts for nothing."""
    return is_transient(error) or isinstance(error, (asyncpg.QueryCanceledError, OSError))


@dataclass(frozen=True, slots=True)
class DependencyConfig:
    timeout_s: float
    retry: Retry = Retry.FAST
    bulkhead: BulkheadConfig = Preset.NORMAL.value
    breaker: BreakerConfig = field(default_factory=BreakerConfig)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")


class Dependency:
    def __init__(
        self,
        name: str,
        config: DependencyConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.breaker = CircuitBreaker(name, config.breaker, clock=clock)
        self.bulkhead = Bulkhead(name, config.bulkhead)
        self.retries = 0
        self.timeouts = 0
        self._metrics = _Instruments(name)

    async def call(
        self,
        operation: Callable[[float], Awaitable[T]],
        *,
        is_failure: Callable[[BaseException], bool] = is_dependency_failure,
        self_timed: bool = False,
    ) -> T:
        """Runs `operation(budget_s)`. With `self_timed` the operation enforces the budget
        itself (asyncpg's own timeout is far cheaper than an asyncio.timeout scope) and must
        raise TimeoutError past it; otherwise an asyncio.timeout scope enforces it."""
        calls = self._metrics
        try:
            async with self.bulkhead:
                result = await self._attempts(operation, is_failure, self_timed)
        except BulkheadFull:
            calls.rejected.inc()
            raise ServiceUnavailable(self.name, "too many calls waiting", 1.0) from None
        except CircuitOpen as error:
            calls.rejected.inc()
            raise ServiceUnavailable(self.name, "circuit open", error.retry_after_s) from None
        except TimeoutError:
            calls.timeout.inc()
            raise ServiceUnavailable(self.name, "timed out", 1.0) from None
        except ServiceUnavailable:
            calls.failure.inc()  # a nested guard's refusal
            raise
        except Exception as error:
            if is_failure(error):
                calls.failure.inc()
                raise ServiceUnavailable(self.name, type(error).__name__, 1.0) from error
            calls.success.inc()
            raise
        calls.success.inc()
        return result

    async def _attempts(
        self,
        operation: Callable[[float], Awaitable[T]],
        is_failure: Callable[[BaseException], bool],
        self_timed: bool,
    ) -> T:
        try:
            return await self._attempt(operation, is_failure, self_timed)
        except Exception as error:
            if not is_transient(error) or self.config.retry is Retry.NONE:
                raise
        return await self._retry(operation, is_failure, self_timed)

    async def _retry(
        self,
        operation: Callable[[float], Awaitable[T]],
        is_failure: Callable[[BaseException], bool],
        self_timed: bool,
    ) -> T:
        """The first attempt failed transiently: stamina's backoff for the rest, within the
        request's deadline."""
        policy = self.config.retry.value
        for attempt in stamina.retry_context(
            on=is_transient,
            attempts=policy.attempts - 1,
            timeout=remaining(default=self.config.timeout_s * policy.attempts),
            wait_initial=policy.wait_initial_s,
            wait_max=policy.wait_max_s,
            wait_jitter=policy.wait_jitter_s,
        ):
            with attempt:
                self.retries += 1
                self._metrics.retries.inc()
                return await self._attempt(operation, is_failure, self_timed)
        raise AssertionError("stamina either returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        operation: Callable[[float], Awaitable[T]],
        is_failure: Callable[[BaseException], bool],
        self_timed: bool,
    ) -> T:
        self.breaker.acquire()
        budget = min(self.config.timeout_s, remaining(default=self.config.timeout_s))
        started = self.clock()
        if budget <= 0:
            self.breaker.record_ignored()
            raise TimeoutError
        timer = time.perf_counter()
        try:
            if self_timed:
                result = await operation(budget)
            else:
                async with asyncio.timeout(budget):
                    result = await operation(budget)
        except TimeoutError:
            self._metrics.duration.observe(time.perf_counter() - timer)
            self.timeouts += 1
            self.breaker.record_failure(self.clock() - started)
            raise
        except BaseException as error:
            self._metrics.duration.observe(time.perf_counter() - timer)
            if isinstance(error, Exception) and is_failure(error):
                self.breaker.record_failure(self.clock() - started)
            else:
                self.breaker.record_ignored()
            raise
        self._metrics.duration.observe(time.perf_counter() - timer)
        self.breaker.record_success(self.clock() - started)
        return result

    def snapshot(self) -> dict[str, object]:
        return {
            "name": self.name,
            "breaker": self.breaker.snapshot(),
            "bulkhead": self.bulkhead.snapshot(),
            "retries": self.retries,
            "timeouts": self.timeouts,
        }


class _Instruments:
    """This dependency's metric children, resolved once (`.labels` per call costs a lock
    and a dictionary lookup); made at construction, so every outcome shows from the start."""

    def __init__(self, name: str) -> None:
        # Imported here, not at the top: app.cli imports this module (through the settings)
        # before `propintel serve` sets the metrics directory (app/telemetry/multiprocess.py).
        from app.telemetry import metrics

        # Every call updates these: added up and written in batches (app/telemetry/labels.py).
        calls = metrics.dependency_calls
        self.success = BatchedValue(calls.labels(name, "success"))
        self.failure = BatchedValue(calls.labels(name, "failure"))
        self.timeout = BatchedValue(calls.labels(name, "timeout"))
        self.rejected = BatchedValue(calls.labels(name, "rejected"))
        self.duration = BatchedObservations(metrics.dependency_call_duration.labels(name))
        self.retries = BatchedValue(metrics.retries.labels(name))
