"""Cache warming: the busiest localities at startup, and the localities `warmCache` names.

It loads through the per-request loaders, as a request for those localities would, so what it
stores is what requests look up (the same keys, tags and TTLs). That puts it above `loaders`,
so not in app/cache, which the loaders sit on: app/asgi.py hands `Warmer` to CacheService,
whose `start`, `close`, `warm` and `busiest_localities` call it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from app.cache.report import WarmReport
from app.cache.tiered import TieredCache
from db.engine import Database
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


class Warmer:
    def __init__(self, db: Database, cache: TieredCache) -> None:
        self.db = db
        self.cache = cache
        self._task: asyncio.Task[None] | None = None

    def start(self, count: int) -> None:
        """Warms the `count` busiest localities in the background (the server answers
        meanwhile, from the database)."""
        self._task = asyncio.create_task(self._warm_busiest(count), name="cache-warming")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def warm(self, locality_ids: Iterable[int]) -> WarmReport:
        """Loads localities, their first page of properties (with recent sales) and their
        statistics through the cache, as a request for them would."""
        ids = list(dict.fromkeys(locality_ids))
        loaders = create_loaders(self.db, self.cache)
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

    async def _warm_busiest(self, count: int) -> None:
        try:
            ids = await busiest_localities(self.db, count)
            report = await self.warm(ids)
            logger.info(
                "cache warmed: %s localities, %s entries", report.localities, report.entries
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # warming is an optimisation: never take the server down
            logger.warning("cache warming failed: %r", error)
