"""What the rest of the app asks of the cache, in one object per process: start and stop it,
the whole-operation cache (operations.py), invalidation after writes (invalidation.py),
warming (supplied by the composition root: see `Warming`), and statistics (report.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from app.cache.invalidation import InvalidationCounts, LoadTicket
from app.cache.operations import OperationCache, operation_key
from app.cache.report import TierReport, WarmReport, tier_reports
from app.cache.tiered import RequestScope, TieredCache
from app.settings import Settings
from db.engine import Database, Guard


class Warming(Protocol):
    """Loads localities into the cache as requests for them would.

    It reads through the per-request loaders, which sit above the cache, so the cache cannot
    import it: the composition root passes its constructor (app/graphql/warming.py)."""

    def start(self, count: int) -> None:
        """Warms the `count` busiest localities in the background."""
        ...

    async def close(self) -> None:
        """Cancels the background warming, if it is still running."""
        ...

    async def warm(self, locality_ids: Iterable[int]) -> WarmReport: ...

    async def busiest_localities(self, limit: int) -> list[int]: ...


WarmingFactory = Callable[[Database, TieredCache], Warming]


def property_tags(property_id: int, locality_id: int) -> list[str]:
    """Everything a change to one property can alter: its details and history, its
    locality's statistics and pages, and lists across localities."""
    return [f"property:{property_id}", f"locality:{locality_id}", "list:properties"]


class CacheService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        redis_guard: Guard | None = None,
        warming: WarmingFactory | None = None,
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
        self.operations = OperationCache(self.tiered)
        self.warming = warming(db, self.tiered) if warming is not None else None

    async def start(self) -> None:
        self.tiered.start()
        if self.warming is not None and self.settings.cache_warm_localities:
            self.warming.start(self.settings.cache_warm_localities)

    async def close(self) -> None:
        if self.warming is not None:
            await self.warming.close()
        await self.tiered.close()

    # -- whole operations (operations.py) --------------------------------------------------

    @staticmethod
    def operation_key(
        query: str, operation_name: str | None, variables: dict[str, Any] | None, role: str
    ) -> str:
        return operation_key(query, operation_name, variables, role)

    async def cached_operation(self, key: str) -> dict[str, Any] | None:
        return await self.operations.get(key)

    async def stale_operation(self, key: str) -> tuple[dict[str, Any], float] | None:
        """A cached response past its TTL (stale-if-error), with its age past the TTL."""
        return await self.operations.get_stale(key)

    def ticket(self) -> LoadTicket:
        return self.operations.ticket()

    async def store_operation(
        self, key: str, data: dict[str, Any], scope: RequestScope, ticket: LoadTicket
    ) -> None:
        await self.operations.store(key, data, scope, ticket)

    # -- invalidation ----------------------------------------------------------------------

    async def invalidate(
        self, tags: Sequence[str] = (), patterns: Sequence[str] = ()
    ) -> InvalidationCounts:
        return await self.tiered.invalidate(tags, patterns)

    async def invalidate_property(self, property_id: int, locality_id: int) -> None:
        await self.tiered.invalidate(property_tags(property_id, locality_id))

    # -- warming (the Warming given to the constructor) -------------------------------------

    async def warm(self, locality_ids: Iterable[int]) -> WarmReport:
        """Loads localities, their first page of properties (with recent sales) and their
        statistics through the cache, as a request for them would."""
        return await self._warming().warm(locality_ids)

    async def busiest_localities(self, limit: int) -> list[int]:
        return await self._warming().busiest_localities(limit)

    def _warming(self) -> Warming:
        if self.warming is None:
            raise RuntimeError("this CacheService was built without warming (warming=...)")
        return self.warming

    # -- statistics (report.py) ------------------------------------------------------------

    async def report(self) -> list[TierReport]:
        return await tier_reports(self.tiered)
