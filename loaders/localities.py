from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.cache import Resource
from db.keyset import build_page
from db.records import LocalityRecord, Page, PropertyRecord
from db.repositories import localities, properties
from db.repositories.properties import PROPERTY_ORDERS, PropertyCriteria
from loaders.base import ByIdLoader, GroupedLoader

_NO_FILTER = PropertyCriteria()


class LocalityByIdLoader(ByIdLoader[int, LocalityRecord]):
    resource = Resource.STATIC

    def cache_key(self, key: int) -> str:
        return f"id:{key}"

    def tags(self, key: int, value: LocalityRecord | None) -> Iterable[str]:
        return (f"locality:{key}",)

    async def fetch(self, keys: Sequence[int]) -> Mapping[int, LocalityRecord]:
        return await localities.localities_by_id(self.db, keys)


class LocalityByNameLoader(ByIdLoader[tuple[str, str], LocalityRecord]):
    """Keys are (UPPER name, postcode)."""

    resource = Resource.STATIC

    def cache_key(self, key: tuple[str, str]) -> str:
        return f"name:{key[0]}:{key[1]}"

    def tags(self, key: tuple[str, str], value: LocalityRecord | None) -> Iterable[str]:
        return (f"locality:{value.id}",) if value is not None else ("list:localities",)

    async def fetch(
        self, keys: Sequence[tuple[str, str]]
    ) -> Mapping[tuple[str, str], LocalityRecord]:
        return await localities.localities_by_name(self.db, keys)


@dataclass(frozen=True, slots=True)
class LocalityPropertiesKey:
    locality_id: int
    order: str
    first: int
    after: str | None
    after_values: tuple[Any, ...] | None
    criteria: PropertyCriteria = _NO_FILTER


PropertiesArguments = tuple[str, int, tuple[Any, ...] | None, PropertyCriteria]


class PropertiesByLocalityLoader(
    GroupedLoader[LocalityPropertiesKey, PropertiesArguments, Page[PropertyRecord]]
):
    resource = Resource.LIST

    def cache_key(self, key: LocalityPropertiesKey) -> str:
        page = f"locality:{key.locality_id}:{key.order}:{key.first}:{key.after or ''}"
        return page if key.criteria == _NO_FILTER else f"{page}:{key.criteria!r}"

    def tags(self, key: LocalityPropertiesKey, value: Page[PropertyRecord]) -> Iterable[str]:
        return (f"locality:{key.locality_id}", *(f"property:{e.node.id}" for e in value.edges))

    @staticmethod
    def arguments(key: LocalityPropertiesKey) -> PropertiesArguments:
        return key.order, key.first, key.after_values, key.criteria

    async def fetch(
        self, keys: Sequence[LocalityPropertiesKey], arguments: PropertiesArguments
    ) -> list[Page[PropertyRecord]]:
        order_name, first, after_values, criteria = arguments
        order = PROPERTY_ORDERS[order_name]
        found = await properties.properties_by_locality(
            self.db,
            [k.locality_id for k in keys],
            criteria=criteria,
            order=order,
            after=after_values,
            limit=first + 1,
        )
        return [
            build_page(found.get(k.locality_id, []), first=first, order=order, after=k.after)
            for k in keys
        ]
