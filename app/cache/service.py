"""What the rest of the app asks of the cache: whole operations, invalidation after writes,
warming, and statistics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import RedisError

from app.cache.resources import Resource
from app.cache.tiered import (
    MISSING,
    InvalidationCounts,
    LoadTicket,
    RequestScope,
    TieredCache,
)
from app.settings import Settings
from db.engine import Database, Guard
from db.repositories.localities import busiest_localities
from db.repositories.properties import PROPERTY_ORDERS
from db.repositories.stats import StatsWindow
from loaders import create_loaders
from loaders.localities import LocalityPropertiesKey
from loaders.sales import SalesPageKey
from loaders.stats import LocalityStatsKey

logger = logging.getLogger("propintel.cache")

# What warming loads for each locality: what the apps open first.
WARM_PAGE_SIZE = 20
WARM_SALES_PER_PROPERTY = 5


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


def property_tags(property_id: int, locality_id: int) -> list[str]:
    """Everything a change to one property can alter: its details and history, its
    locality's statistics and pages, and lists across localities."""
    return [f"property:{property_id}", f"locality:{locality_id}", "list:properties"]


class CacheService:
    def __init__(
        self, settings: Settings, db: Database, *, redis_guard: Guard | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.tiered = TieredCache(
            guard=redis_guard,
            ttls=settings.cache_ttls,
            l1_max_entries=settings.cache_l1_max_entries,
            redis_url=settings.redis_url,
            namespace=settings.cache_namespace,
            stale_if_error_s=settings.cache_stale_if_error_s,
        )
        self._warming: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.tiered.start()
        if self.settings.cache_warm_localities:
            self._warming = asyncio.create_task(self._warm_busiest(), name="cache-warming")

    async def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
        await self.tiered.close()

    # -- whole operations ------------------------------------------------------------------

    @staticmethod
    def operation_key(
        query: str, operation_name: str | None, variables: dict[str, Any] | None, role: str
    ) -> str:
        try:
            material = orjson.dumps(
                [query, operation_name, variables or {}, role], option=orjson.OPT_SORT_KEYS
            )
        except TypeError:
            # orjson refuses integers past 64 bits; the standard library does not (such a
            # variable is refused by coercion anyway, but the key comes first).
            material = json.dumps(
                [query, operation_name, variables or {}, role], sort_keys=True, default=repr
            ).encode()
        return hashlib.blake2b(material, digest_size=20).hexdigest()

    async def cached_operation(self, key: str) -> dict[str, Any] | None:
        value = await self.tiered.get(Resource.OPERATION, key)
        return None if value is MISSING else value

    async def stale_operation(self, key: str) -> tuple[dict[str, Any], float] | None:
        """A cached response past its TTL (stale-if-error), with its age past the TTL."""
        value, age = await self.tiered.get_stale(Resource.OPERATION, key)
        return None if value is MISSING else (value, age)

    def ticket(self) -> LoadTicket:
        return self.tiered.ticket()

    async def store_operation(
        self, key: str, data: dict[str, Any], scope: RequestScope, ticket: LoadTicket
    ) -> None:
        await self.tiered.put(Resource.OPERATION, key, data, scope.tags, ticket)

    # -- invalidation ----------------------------------------------------------------------

    async def invalidate(
        self, tags: Sequence[str] = (), patterns: Sequence[str] = ()
    ) -> InvalidationCounts:
        return await self.tiered.invalidate(tags, patterns)

    async def invalidate_property(self, property_id: int, locality_id: int) -> None:
        await self.tiered.invalidate(property_tags(property_id, locality_id))

    # -- warming ---------------------------------------------------------------------------

    async def warm(self, locality_ids: Iterable[int]) -> WarmReport:
        """Loads localities, their first page of properties (with recent sales) and their
        statistics through the cache, as a request for them would."""
        ids = list(dict.fromkeys(locality_ids))
        loaders = create_loaders(self.db, self.tiered)
        localities = [
            found for found in await loaders.locality_by_id.load_many(ids) if found is not None
        ]
        order = PROPERTY_ORDERS["ID_ASC"]
        pages = await loaders.properties_by_locality.load_many(
            [
                LocalityPropertiesKey(loc.id, order.name, WARM_PAGE_SIZE, None, None)
                for loc in localities
            ]
        )
        await loaders.locality_stats.load_many(
            [LocalityStatsKey(loc.id, StatsWindow()) for loc in localities]
        )
        property_ids = [edge.node.id for page in pages for edge in page.edges]
        loaders.property_by_id.prime_many({e.node.id: e.node for p in pages for e in p.edges})
        await loaders.sales_by_property.load_many(
            [SalesPageKey(pid, WARM_SALES_PER_PROPERTY, None, None) for pid in property_ids]
        )
        entries = len(localities) * 3 + len(property_ids)
        return WarmReport(localities=len(localities), entries=entries)

    async def busiest_localities(self, limit: int) -> list[int]:
        return await busiest_localities(self.db, limit)

    async def _warm_busiest(self) -> None:
        try:
            ids = await busiest_localities(self.db, self.settings.cache_warm_localities)
            report = await self.warm(ids)
            logger.info(
                "cache warmed: %s localities, %s entries", report.localities, report.entries
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # warming is an optimisation: never take the server down
            logger.warning("cache warming failed: %r", error)

    # -- statistics ------------------------------------------------------------------------

    async def report(self) -> list[TierReport]:
        statistics = self.tiered.statistics.counters
        l1_entries = self.tiered.l1.entry_counts(self.tiered.value_prefix)
        tiers = [
            _tier_report(
                "l1",
                available=True,
                entries=l1_entries,
                evictions=self.tiered.l1.evictions,
                statistics=statistics,
            )
        ]
        if self.tiered.redis is not None:
            try:
                l2_entries = await self._l2_entry_counts()
                info = await self.tiered.redis.info("stats")
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
                    _tier_report(
                        "l2", available=False, entries={}, evictions=0, statistics=statistics
                    )
                )
        return tiers

    async def _l2_entry_counts(self) -> dict[str, int]:
        assert self.tiered.redis is not None
        counts: dict[str, int] = {}
        prefix = self.tiered.value_prefix
        async for key in self.tiered.redis.scan_iter(match=prefix + "*", count=1000):
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
    statistics: Any,
) -> TierReport:
    resources = []
    for resource in Resource:
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
