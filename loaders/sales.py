from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.cache import Resource
from db.keyset import build_page
from db.records import Page, SaleRecord
from db.repositories import sales
from db.repositories.sales import SALES_NEWEST_FIRST
from loaders.base import ByIdLoader, GroupedLoader


class SaleByIdLoader(ByIdLoader[int, SaleRecord]):
    resource = Resource.HISTORY

    def cache_key(self, key: int) -> str:
        return f"sale:{key}"

    def tags(self, key: int, value: SaleRecord | None) -> Iterable[str]:
        if value is None:
            return (f"sale:{key}",)
        return (f"sale:{key}", f"property:{value.property_id}")

    async def fetch(self, keys: Sequence[int]) -> Mapping[int, SaleRecord]:
        return await sales.sales_by_id(self.db, keys)


@dataclass(frozen=True, slots=True)
class SalesPageKey:
    property_id: int
    first: int
    after: str | None  # the cursor as the client sent it (for the page info)
    after_values: tuple[Any, ...] | None  # the decoded cursor


class SalesByPropertyLoader(
    GroupedLoader[SalesPageKey, tuple[int, tuple[Any, ...] | None], Page[SaleRecord]]
):
    resource = Resource.HISTORY

    def cache_key(self, key: SalesPageKey) -> str:
        return f"page:{key.property_id}:{key.first}:{key.after or ''}"

    def tags(self, key: SalesPageKey, value: Page[SaleRecord]) -> Iterable[str]:
        return (f"property:{key.property_id}",)

    @staticmethod
    def arguments(key: SalesPageKey) -> tuple[int, tuple[Any, ...] | None]:
        return key.first, key.after_values

    async def fetch(
        self, keys: Sequence[SalesPageKey], arguments: tuple[int, tuple[Any, ...] | None]
    ) -> list[Page[SaleRecord]]:
        first, after_values = arguments
        found = await sales.sales_by_property(
            self.db, [k.property_id for k in keys], after=after_values, limit=first + 1
        )
        return [
            build_page(
                found.get(k.property_id, []), first=first, order=SALES_NEWEST_FIRST, after=k.after
            )
            for k in keys
        ]
