"""Hit and miss counters per tier and resource type (reported by the `cacheStats` query),
and the same as Prometheus metrics (propintel_cache_requests_total): a lookup adds to these
counters only, and the metrics' flush (app/telemetry/labels.py `Tally`, within 0.25 s of a
request and before every scrape) writes what they gained since the last one. A lookup on
the hot path thus costs the metric nothing."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from app.cache.resources import Resource
from app.telemetry import metrics
from app.telemetry.labels import TALLY, BatchedCounter, Children

TIERS = ("l1", "l2", "operation")
"""Metric tiers: the two stores, and the whole-operation cache's own answer (hit, miss, or a
stale response served because the operation failed)."""
RESULTS = ("hit", "miss", "stale", "error")


@dataclass(slots=True)
class TierCounters:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    error_misses: int = 0
    """Misses of lookups that failed (the metric counts them as `error`, not `miss`)."""

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
        self.operations: dict[str, int] = {}
        """The whole-operation cache's answers by result (hit, miss)."""
        self._metric = cache_requests()
        self._family = Children(metrics.cache_requests)
        self._written: dict[tuple[str, str, str], int] = {}
        """What the family has been given of each series, by this object."""
        TALLY.batched.append(self)

    def count(
        self, tier: str, resource: Resource, *, hits: int, misses: int, errors: int = 0
    ) -> None:
        """`errors`: failed lookups (their keys are counted as misses here, as they read
        through; the metric counts those keys as `error`, not `miss`)."""
        counters = self.counters[tier, resource]
        counters.hits += hits
        counters.misses += misses
        if errors:
            counters.errors += errors
            counters.error_misses += misses

    def count_stale(self, resource: Resource, *, l1: int, l2: int) -> None:
        """Values served past their TTL (stale-if-error), by the tier they were found in."""
        self.counters["stale", resource].hits += l1 + l2
        if l1:
            self._metric.add(l1, "l1", resource, "stale")
        if l2:
            self._metric.add(l2, "l2", resource, "stale")

    def count_operation(self, result: str) -> None:
        """The whole-operation cache's answer: hit, miss or stale."""
        operations = self.operations
        operations[result] = operations.get(result, 0) + 1

    def flush(self) -> None:
        """Writes what the counters gained since the last flush (`Tally`'s member)."""
        totals: dict[tuple[str, str, str], int] = {}
        for (tier, resource), counters in self.counters.items():
            if tier in TIERS:  # "stale" is the report's row; count_stale writes its metric
                totals[tier, resource.value, "hit"] = counters.hits
                totals[tier, resource.value, "miss"] = counters.misses - counters.error_misses
                totals[tier, resource.value, "error"] = counters.error_misses
        for result, count in self.operations.items():
            totals["operation", Resource.OPERATION.value, result] = count
        written = self._written
        for labels, total in totals.items():
            gained = total - written.get(labels, 0)
            if gained > 0:
                self._family(*labels).inc(gained)
                written[labels] = total

    def reset(self) -> None:
        self.flush()  # what was counted before the reset still reaches the metric
        self.counters.clear()
        self.operations.clear()
        self._written.clear()


@dataclass(slots=True)
class StoreRefusals:
    """Values loaded but not stored, because an invalidation came while they were loading
    (they may predate the write): per tier (tests and statistics)."""

    l1: int = 0
    l2: int = 0
