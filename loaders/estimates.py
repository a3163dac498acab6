"""Price estimates of properties: one SQL statement (their market histories) and one model
call per batch, cached by (property, model version, date).

A key is (property id, as-of date); the property records come from the parents being
resolved (`remember`), so an estimate on a page of properties reads nothing else. A new sale
invalidates `property:<id>`, which drops the property's estimates; a new active model
changes the version in every key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from strawberry.dataloader import DataLoader

from app.cache import Cache, RequestScope, Resource
from app.estimates.service import ModelRegistry, subject_of
from app.ml import Estimate
from db.engine import Database
from db.records import PropertyRecord
from db.repositories.estimates import market_history
from loaders.base import CachedLoader

EstimateKey = tuple[int, date]


Cached = list[int]
"""[price, low, high]: what the cache holds (plain JSON in Redis); the date is in the key."""


class EstimateLoader(DataLoader[EstimateKey, Estimate]):
    resource = Resource.ESTIMATE

    def __init__(
        self,
        db: Database,
        cache: Cache,
        scope: RequestScope | None,
        registry: ModelRegistry,
        version: int,
    ) -> None:
        super().__init__(load_fn=self._load)
        self.cached = _CachedEstimates(db, cache, scope, self)
        self.registry = registry
        self.db = db
        self.version = version
        self.records: dict[int, PropertyRecord] = {}

    def remember(self, records: Iterable[PropertyRecord]) -> None:
        for record in records:
            self.records[record.id] = record

    async def _load(self, keys: list[EstimateKey]) -> list[Estimate]:
        values = await self.cached.load_many(keys)
        return [Estimate(v[0], v[1], v[2], key[1]) for key, v in zip(keys, values, strict=True)]

    async def estimate(self, keys: list[EstimateKey]) -> list[Cached]:
        latest = max(as_of for _, as_of in keys)
        history = await market_history(self.db, sorted({pid for pid, _ in keys}), latest)
        by_date: dict[date, list[int]] = defaultdict(list)
        for position, (_, as_of) in enumerate(keys):
            by_date[as_of].append(position)
        results: list[Cached] = [[]] * len(keys)
        # One model call per distinct date (a page asks for one date: one call).
        for as_of, positions in by_date.items():
            subjects = [
                subject_of(
                    self.records[keys[p][0]],
                    [sale for sale in history.get(keys[p][0], ()) if sale[0] < as_of],
                )
                for p in positions
            ]
            for position, estimate in zip(
                positions, await self.registry.predict(subjects, as_of), strict=True
            ):
                results[position] = [estimate.price, estimate.low, estimate.high]
        return results


class _CachedEstimates(CachedLoader[EstimateKey, Cached]):
    """The cache side of EstimateLoader: only the keys the cache misses are estimated."""

    resource = Resource.ESTIMATE

    def __init__(
        self, db: Database, cache: Cache, scope: RequestScope | None, owner: EstimateLoader
    ) -> None:
        super().__init__(db, cache, scope)
        self.owner = owner

    def cache_key(self, key: EstimateKey) -> str:
        return f"estimate:{self.owner.version}:{key[0]}:{key[1].isoformat()}"

    def tags(self, key: EstimateKey, value: Cached) -> Iterable[str]:
        return (f"property:{key[0]}", f"model:{self.owner.version}")

    async def _load(self, keys: list[EstimateKey]) -> list[Cached]:
        return await self._through_cache(keys, self.owner.estimate)
