from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.cache import Resource
from db.records import PropertyRecord
from db.repositories import properties
from db.repositories.properties import PropertyCriteria
from loaders.base import ByIdLoader, GroupedLoader

EXACT_COUNT_LIMIT = 10_000
"""`Query.properties { totalCount }` of a list not restricted to localities counts exactly up
to this many properties (a few ms); past it, on PostgreSQL, it is the planner's estimate (an
exact count over the full data's 2.7 million properties takes 0.27-0.32 s, the estimate
0.5 ms)."""


class PropertyByIdLoader(ByIdLoader[int, PropertyRecord]):
    resource = Resource.PROPERTY

    def tags(self, key: int, value: PropertyRecord | None) -> Iterable[str]:
        return (f"property:{key}",)

    async def fetch(self, keys: Sequence[int]) -> Mapping[int, PropertyRecord]:
        return await properties.properties_by_id(self.db, keys)

    def prime_records(self, records: Sequence[PropertyRecord]) -> None:
        """Records fetched by a list query answer later `property(id)` lookups for free."""
        self.prime_many({record.id: record for record in records})


@dataclass(frozen=True, slots=True)
class PropertyCountKey:
    """What a property connection's `totalCount` counts: the properties matching `criteria`,
    in one locality, or (`locality_id` None) in all of them."""

    criteria: PropertyCriteria
    locality_id: int | None = None


class PropertyCountLoader(GroupedLoader[PropertyCountKey, tuple[PropertyCriteria, bool], int]):
    """Counts of property lists: one statement per batch of localities with equal filters
    (exact: a locality is small). For `Query.properties`: exact when it names a locality or
    postcode; otherwise exact up to EXACT_COUNT_LIMIT, past it (PostgreSQL) the planner's
    estimate, never below the limit (a second statement). SQLite: always exact."""

    resource = Resource.LIST

    def cache_key(self, key: PropertyCountKey) -> str:
        where = "*" if key.locality_id is None else key.locality_id
        return f"count:{where}:{key.criteria!r}"

    def tags(self, key: PropertyCountKey, value: int) -> Iterable[str]:
        # A property write invalidates its locality and every property list.
        if key.locality_id is None:
            return ("list:properties",)
        return (f"locality:{key.locality_id}",)

    @staticmethod
    def arguments(key: PropertyCountKey) -> tuple[PropertyCriteria, bool]:
        return key.criteria, key.locality_id is None

    async def fetch(
        self, keys: Sequence[PropertyCountKey], arguments: tuple[PropertyCriteria, bool]
    ) -> list[int]:
        criteria, everywhere = arguments
        if everywhere:  # keys with equal criteria are one key: one count
            return [await self._count_everywhere(criteria)] * len(keys)
        found = await properties.count_properties_by_locality(
            self.db, [k.locality_id for k in keys if k.locality_id is not None], criteria
        )
        return [found.get(k.locality_id, 0) for k in keys if k.locality_id is not None]

    async def _count_everywhere(self, criteria: PropertyCriteria) -> int:
        in_localities = criteria.locality_name is not None or criteria.postcode is not None
        if in_localities or not self.db.is_postgresql:
            # A few localities' properties (their indexes), or SQLite (the embedded default,
            # a few hundred thousand properties): exact. The planner's estimates for a
            # locality restriction are poor (93% low for one suburb on the full data).
            return await properties.count_properties(self.db, criteria)
        limit = EXACT_COUNT_LIMIT
        counted = await properties.count_properties(self.db, criteria, at_most=limit + 1)
        if counted <= limit:
            return counted
        return max(await properties.estimate_properties(self.db, criteria), limit + 1)
