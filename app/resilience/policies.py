"""The policies of this app's dependencies, from settings."""

from __future__ import annotations

from app.resilience.breaker import BreakerConfig
from app.resilience.bulkhead import BulkheadConfig
from app.resilience.dependency import Dependency, DependencyConfig
from app.resilience.retry import Retry
from app.settings import Settings


def database_dependency(settings: Settings) -> Dependency:
    return Dependency(
        "postgresql",
        DependencyConfig(
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
                wait_in_open_s=2.0,
                half_open_calls=3,
            ),
        ),
    )


def redis_dependency(settings: Settings) -> Dependency:
    return Dependency(
        "redis",
        DependencyConfig(
            timeout_s=settings.redis_timeout_s,
            retry=Retry.NONE,  # a miss reads through; retrying would only delay it
            bulkhead=BulkheadConfig(max_concurrent=64, max_waiting=512, max_wait_s=0.1),
            breaker=BreakerConfig(
                window_size=20,
                minimum_calls=5,
                failure_rate_threshold=50,
                slow_call_duration_s=settings.redis_timeout_s / 2,
                slow_call_rate_threshold=80,
                wait_in_open_s=1.0,
                half_open_calls=2,
            ),
        ),
    )
