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
