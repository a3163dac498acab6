"""Hit and miss counters per tier and resource type (reported by the `cacheStats` query)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from app.cache.resources import Resource


@dataclass(slots=True)
class TierCounters:
    hits: int = 0
    misses: int = 0
    errors: int = 0

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


class CacheStatistics:
    def __init__(self) -> None:
        self.counters: defaultdict[tuple[str, Resource], TierCounters] = defaultdict(TierCounters)

    def count(
        self, tier: str, resource: Resource, *, hits: int, misses: int, errors: int = 0
    ) -> None:
        counters = self.counters[tier, resource]
        counters.hits += hits
        counters.misses += misses
        counters.errors += errors

    def reset(self) -> None:
        self.counters.clear()
