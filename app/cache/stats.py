"""Hit and miss counters per tier and resource type (reported by the `cacheStats` query),
and the same as Prometheus metrics (propintel_cache_requests_total)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from prometheus_client.metrics import Counter

from app.cache.resources import Resource
from app.telemetry import metrics

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
def metric_children() -> dict[tuple[str, str, str], Counter]:
    """Every (tier, resource, result) child, made once: the hot path looks one up in a dict
    instead of `.labels(...)`, and every series exists (at 0) from the start."""
    return {
        (tier, resource.value, result): metrics.cache_requests.labels(tier, resource.value, result)
        for tier in TIERS
        for resource in Resource
        for result in RESULTS
    }


class CacheStatistics:
    def __init__(self) -> None:
        self.counters: defaultdict[tuple[str, Resource], TierCounters] = defaultdict(TierCounters)
        self._metric = metric_children()

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
            self._metric[tier, resource, "hit"].inc(hits)
        if misses:
            self._metric[tier, resource, "error" if errors else "miss"].inc(misses)

    def count_stale(self, resource: Resource, *, l1: int, l2: int) -> None:
        """Values served past their TTL (stale-if-error), by the tier they were found in."""
        self.counters["stale", resource].hits += l1 + l2
        if l1:
            self._metric["l1", resource, "stale"].inc(l1)
        if l2:
            self._metric["l2", resource, "stale"].inc(l2)

    def count_operation(self, result: str) -> None:
        """The whole-operation cache's answer: hit, miss or stale."""
        self._metric["operation", Resource.OPERATION, result].inc()

    def reset(self) -> None:
        self.counters.clear()
