"""Types of the cache administration API (their roots are app/cache/service.py reports)."""

from __future__ import annotations

import strawberry


@strawberry.type(description="What an invalidation dropped.")
class InvalidationResult:
    tags: list[str]
    patterns: list[str]
    l1_entries: int = strawberry.field(description="Entries dropped from this process's L1.")
    l2_entries: int = strawberry.field(description="Entries dropped from Redis.")


@strawberry.type(description="What warming loaded into the cache.")
class WarmResult:
    localities: int
    entries: int


@strawberry.type
class CacheResourceStats:
    resource: str
    hits: int
    misses: int
    hit_rate: float | None
    entries: int


@strawberry.type(description="One tier: l1 (this process) or l2 (Redis, shared).")
class CacheTierStats:
    tier: str
    available: bool
    entries: int
    evictions: int
    hits: int
    misses: int
    hit_rate: float | None
    resources: list[CacheResourceStats]


@strawberry.type(description="Cache counters since this process started.")
class CacheStats:
    enabled: bool
    tiers: list[CacheTierStats]


@strawberry.type(description="A circuit breaker: its state and its sliding window's rates.")
class BreakerStatus:
    state: str
    calls: int
    failure_rate: float = strawberry.field(description="Percent of the window's calls.")
    slow_call_rate: float
    rejected: int = strawberry.field(description="Calls refused while OPEN or HALF_OPEN.")


@strawberry.type(description="A bulkhead: calls running and waiting now, and refusals so far.")
class BulkheadStatus:
    active: int
    waiting: int
    max_concurrent: int
    rejected: int


@strawberry.type(description="One guarded dependency of this process.")
class DependencyStatus:
    name: str
    breaker: BreakerStatus
    bulkhead: BulkheadStatus
    retries: int
    timeouts: int
