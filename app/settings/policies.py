"""The resilience policy of each dependency: the profile's defaults, then the overrides from
the environment (`PROPINTEL_RESILIENCE_<DEPENDENCY>`, see overrides.py)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from app.resilience.breaker import BreakerConfig
from app.resilience.bulkhead import BulkheadConfig
from app.resilience.dependency import Dependency, DependencyConfig
from app.resilience.retry import Retry
from app.settings.profiles import Profile
from app.settings.resilience import DependencyOverrides

if TYPE_CHECKING:  # settings call these functions; they only read its fields
    from app.settings import Settings


def _postgresql(settings: Settings) -> DependencyConfig:
    # Outside prod a tripped breaker waits less: developers and tests restart databases.
    wait_in_open_s = 2.0 if settings.profile is Profile.PROD else 1.0
    return DependencyConfig(
        timeout_s=settings.db_timeout_s,
        retry=Retry.FAST,
        # As many calls as pooled connections; the rest wait a bounded time here rather
        # than unboundedly in the pool.
        bulkhead=BulkheadConfig(
            max_concurrent=settings.db_pool_size, max_waiting=512, max_wait_s=1.0
        ),
        breaker=BreakerConfig(
            window_size=50,
            minimum_calls=10,
            failure_rate_threshold=50,
            slow_call_duration_s=settings.db_timeout_s / 2,
            slow_call_rate_threshold=80,
            wait_in_open_s=wait_in_open_s,
            half_open_calls=3,
        ),
    )


def _redis(settings: Settings) -> DependencyConfig:
    return DependencyConfig(
        timeout_s=settings.redis_timeout_s,
        retry=Retry.NONE,  # a miss reads through; retrying would only delay it
        bulkhead=BulkheadConfig(max_concurrent=64, max_waiting=512, max_wait_s=0.1),
        breaker=BreakerConfig(
            window_size=20,
            minimum_calls=5,
            failure_rate_threshold=50,
            slow_call_duration_s=settings.redis_timeout_s / 2,
            slow_call_rate_threshold=80,
            wait_in_open_s=1.0 if settings.profile is Profile.PROD else 0.5,
            half_open_calls=2,
        ),
    )


def _apply(
    base: DependencyConfig, overrides: DependencyOverrides, setting: str
) -> DependencyConfig:
    try:
        bulkhead = base.bulkhead
        if overrides.bulkhead is not None:
            bulkhead = dataclasses.replace(
                bulkhead, **overrides.bulkhead.model_dump(exclude_none=True)
            )
        breaker = base.breaker
        if overrides.breaker is not None:
            breaker = dataclasses.replace(
                breaker, **overrides.breaker.model_dump(exclude_none=True)
            )
        return DependencyConfig(
            timeout_s=overrides.timeout_s or base.timeout_s,
            retry=Retry[overrides.retry] if overrides.retry else base.retry,
            bulkhead=bulkhead,
            breaker=breaker,
        )
    except ValueError as error:
        raise ValueError(f"{setting}: {error}") from None


def dependency_configs(settings: Settings) -> dict[str, DependencyConfig]:
    """Every dependency's policy; raises ValueError naming the setting that makes one wrong."""
    return {
        "postgresql": _apply(
            _postgresql(settings), settings.resilience_postgresql, "PROPINTEL_RESILIENCE_POSTGRESQL"
        ),
        "redis": _apply(_redis(settings), settings.resilience_redis, "PROPINTEL_RESILIENCE_REDIS"),
    }


def database_dependency(settings: Settings) -> Dependency:
    return Dependency("postgresql", dependency_configs(settings)["postgresql"])


def redis_dependency(settings: Settings) -> Dependency:
    return Dependency("redis", dependency_configs(settings)["redis"])
