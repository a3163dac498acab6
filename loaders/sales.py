from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.cache import Resource
from db.keyset import build_page
from db.records import Page, SaleRecord
from db.repositories import sales
from db.repositories.estimates import recent_market_sales
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


class SalesCountLoader(ByIdLoader[int, int]):
    """How many sales each property has (`Property.sales { totalCount }`), exactly: one
    statement per batch."""

    resource = Resource.HISTORY

    def cache_key(self, key: int) -> str:
        return f"count:{key}"

    def tags(self, key: int, value: int | None) -> Iterable[str]:
        return (f"property:{key}",)

    async def fetch(self, keys: Sequence[int]) -> Mapping[int, int]:
        found = await sales.count_sales_by_property(self.db, keys)
        return {key: found.get(key, 0) for key in keys}


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


@dataclass(frozen=True, slots=True)
class RecentSalesKey:
    locality_id: int
    is_strata: bool
    limit: int
    on_or_before: date | None = None
    """Sales contracted on or before this date only (None: up to the newest)."""


class RecentMarketSalesLoader(
    GroupedLoader[RecentSalesKey, tuple[bool, int, date | None], list[SaleRecord]]
):
    """The latest market sales of a locality, of one kind (strata or not), newest first:
    the pool comparable sales are chosen from. One statement per kind for a whole batch."""

    resource = Resource.HISTORY

    def cache_key(self, key: RecentSalesKey) -> str:
        return f"recent:{key.locality_id}:{int(key.is_strata)}:{key.limit}:{key.on_or_before}"

    def tags(self, key: RecentSalesKey, value: list[SaleRecord]) -> Iterable[str]:
        # A sale recorded (or a property changed) in the locality invalidates `locality:<id>`.
        return (f"locality:{key.locality_id}",)

    @staticmethod
    def arguments(key: RecentSalesKey) -> tuple[bool, int, date | None]:
        return key.is_strata, key.limit, key.on_or_before

    async def fetch(
        self, keys: Sequence[RecentSalesKey], arguments: tuple[bool, int, date | None]
    ) -> list[list[SaleRecord]]:
        is_strata, limit, on_or_before = arguments
        found = await recent_market_sales(
            self.db,
            [k.locality_id for k in keys],
            is_strata=is_strata,
            limit=limit,
            on_or_before=on_or_before,
        )
        return [found.get(k.locality_id, []) for k in keys]
