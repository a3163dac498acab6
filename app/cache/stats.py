"""Hit and miss counters per tier and resource type (reported by the `cacheStats` query),
and the same as Prometheus metrics (propintel_cache_requests_total)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from app.cache.resources import Resource
from app.telemetry import metrics
from app.telemetry.labels import BatchedCounter

TIERS = ("l1", "l2", "operation")
"""Metric tiers: the two stores, and the whole-operation cache's own answer (hit, miss, or a
stale response served because the operation failed)."""
RESULTS = ("hit", "miss", "stale", "error")


@dataclass(slots=True)
class TierCounters:
    hits: int = 0
    misses: int = 0
    errors: int = 0

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


@cache
def cache_requests() -> BatchedCounter:
    """The family's counts, added up and written in batches (a multiprocess write costs ~2 µs
    and the hot path counts an operation-cache hit per request: app/telemetry/labels.py).
    Every (tier, resource, result) series exists, at 0, from the start."""
    for tier in TIERS:
        for resource in Resource:
            for result in RESULTS:
                metrics.cache_requests.labels(tier, resource.value, result)
    return BatchedCounter(metrics.cache_requests)


class CacheStatistics:
    def __init__(self) -> None:
        self.counters: defaultdict[tuple[str, Resource], TierCounters] = defaultdict(TierCounters)
        self._metric = cache_requests()

    def count(
        self, tier: str, resource: Resource, *, hits: int, misses: int, errors: int = 0
    ) -> None:
        """`errors`: failed lookups (their keys are counted as misses here, as they read
        through; the metric counts those keys as `error`, not `miss`)."""
        counters = self.counters[tier, resource]
        counters.hits += hits
        counters.misses += misses
        counters.errors += errors
        if hits:
            self._metric.add(hits, tier, resource, "hit")
        if misses:
            self._metric.add(misses, tier, resource, "error" if errors else "miss")

    def count_stale(self, resource: Resource, *, l1: int, l2: int) -> None:
        """Values served past their TTL (stale-if-error), by the tier they were found in."""
        self.counters["stale", resource].hits += l1 + l2
        if l1:
            self._metric.add(l1, "l1", resource, "stale")
        if l2:
            self._metric.add(l2, "l2", resource, "stale")

    def count_operation(self, result: str) -> None:
        """The whole-operation cache's answer: hit, miss or stale."""
        self._metric.add(1, "operation", Resource.OPERATION, result)

    def reset(self) -> None:
        self.counters.clear()


@dataclass(slots=True)
class StoreRefusals:
    """Values loaded but not stored, because an invalidation came while they were loading
    (they may predate the write): per tier (tests and statistics)."""

    l1: int = 0
    l2: int = 0
