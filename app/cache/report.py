"""What the cache reports: hits, misses, entries and evictions per tier and resource type
(`cacheStats`), and what a warming loaded (`warmCache`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError

from app.cache.resources import Resource
from app.cache.stats import TierCounters
from app.cache.tiered import TieredCache


@dataclass(frozen=True, slots=True)
class WarmReport:
    localities: int
    entries: int


@dataclass(frozen=True, slots=True)
class ResourceReport:
    resource: Resource
    hits: int
    misses: int
    hit_rate: float | None
    entries: int


@dataclass(frozen=True, slots=True)
class TierReport:
    tier: str
    available: bool
    entries: int
    evictions: int
    hits: int
    misses: int
    hit_rate: float | None
    resources: list[ResourceReport]


async def tier_reports(tiered: TieredCache) -> list[TierReport]:
    """L1, then L2 when there is one (marked unavailable when Redis does not answer)."""
    statistics = tiered.statistics.counters
    l1_entries = tiered.l1.entry_counts(tiered.keys.values)
    tiers = [
        _tier_report(
            "l1",
            available=True,
            entries=l1_entries,
            evictions=tiered.l1.evictions,
            statistics=statistics,
        )
    ]
    if tiered.redis is not None:
        try:
            l2_entries = await _l2_entry_counts(tiered)
            info = await tiered.redis.info("stats")
            tiers.append(
                _tier_report(
                    "l2",
                    available=True,
                    entries=l2_entries,
                    evictions=int(info.get("evicted_keys", 0)),
                    statistics=statistics,
                )
            )
        except (RedisError, OSError):
            tiers.append(
                _tier_report("l2", available=False, entries={}, evictions=0, statistics=statistics)
            )
    return tiers


async def _l2_entry_counts(tiered: TieredCache) -> dict[str, int]:
    assert tiered.redis is not None
    counts: dict[str, int] = {}
    prefix = tiered.keys.values
    async for key in tiered.redis.scan_iter(match=prefix + "*", count=1000):
        text = key.decode() if isinstance(key, bytes) else key
        resource = text[len(prefix) :].split(":", 1)[0]
        counts[resource] = counts.get(resource, 0) + 1
    return counts


def _tier_report(
    tier: str,
    *,
    available: bool,
    entries: dict[str, int],
    evictions: int,
    statistics: Mapping[tuple[str, Resource], TierCounters],
) -> TierReport:
    resources = []
    for resource in Resource:
        # .get, not []: the counters are a defaultdict, and reporting must not add to them.
        counters = statistics.get((tier, resource))
        hits = counters.hits if counters else 0
        misses = counters.misses if counters else 0
        resources.append(
            ResourceReport(
                resource=resource,
                hits=hits,
                misses=misses,
                hit_rate=hits / (hits + misses) if hits + misses else None,
                entries=entries.get(resource.value, 0),
            )
        )
    hits = sum(r.hits for r in resources)
    misses = sum(r.misses for r in resources)
    return TierReport(
        tier=tier,
        available=available,
        entries=sum(entries.values()),
        evictions=evictions,
        hits=hits,
        misses=misses,
        hit_rate=hits / (hits + misses) if hits + misses else None,
        resources=resources,
    )
