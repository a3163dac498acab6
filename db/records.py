"""Plain records the repositories return: what the GraphQL types read their fields from.

Slotted dataclasses built positionally from rows (the repositories select exactly these
columns in this order), so a page of 100 rows costs 100 cheap constructor calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from db import tables


@dataclass(frozen=True, slots=True)
class PropertyRecord:
    id: int
    vg_property_id: int
    strata_lot: str
    district_code: str | None
    district: str | None
    property_name: str | None
    unit_number: str | None
    house_number: str | None
    street_name: str | None
    locality_id: int
    postcode: str
    area_m2: float | None
    zoning: str | None
    nature: str | None
    primary_purpose: str | None
    is_strata: bool
    latitude: float | None
    longitude: float | None
    last_sale_price: int
    last_sale_date: date


@dataclass(frozen=True, slots=True)
class SaleRecord:
    id: int
    property_id: int
    locality_id: int
    contract_date: date
    settlement_date: date | None
    price: int
    dealing_number: str
    sale_code: str | None
    interest_pct: float
    area_m2: float | None
    parcels_in_sale: int
    is_market_sale: bool
    non_market_reasons: str


@dataclass(frozen=True, slots=True)
class LocalityRecord:
    id: int
    name: str
    postcode: str
    state: str
    district: str | None
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True, slots=True)
class LocalityStatsRecord:
    sales_count: int
    median_price: float | None
    p25_price: float | None
    p75_price: float | None
    median_price_per_m2: float | None


EMPTY_STATS = LocalityStatsRecord(0, None, None, None, None)

R = TypeVar("R")


def _columns(table: sa.Table, record: type[object]) -> list[sa.Column[Any]]:
    return [table.c[name] for name in record.__dataclass_fields__]  # type: ignore[attr-defined]


PROPERTY_COLUMNS = _columns(tables.properties, PropertyRecord)
SALE_COLUMNS = _columns(tables.sales, SaleRecord)
LOCALITY_COLUMNS = _columns(tables.localities, LocalityRecord)


@dataclass(frozen=True, slots=True)
class Edge(Generic[R]):
    cursor: str
    node: R


@dataclass(frozen=True, slots=True)
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    """One page of a keyset connection."""

    edges: list[Edge[R]]
    page_info: PageInfo

    @property
    def nodes(self) -> list[R]:
        return [edge.node for edge in self.edges]
