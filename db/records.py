"""Plain records the repositories return: what the GraphQL types read their fields from.

Slotted dataclasses built positionally from rows (the repositories select exactly these
columns in this order), so a page of 100 rows costs 100 cheap constructor calls. Not frozen:
a frozen dataclass sets each field through object.__setattr__, ten times slower to build
(5.8 µs against 0.6 µs for a property), and records are never modified after a repository
builds them (the caches share them between requests).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa

from db import tables


@dataclass(slots=True)
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


@dataclass(slots=True)
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


@dataclass(slots=True)
class LocalityRecord:
    id: int
    name: str
    postcode: str
    state: str
    district: str | None
    latitude: float | None
    longitude: float | None


@dataclass(slots=True)
class LocalityStatsRecord:
    sales_count: int
    median_price: float | None
    p25_price: float | None
    p75_price: float | None
    median_price_per_m2: float | None


EMPTY_STATS = LocalityStatsRecord(0, None, None, None, None)

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)


def _columns(table: sa.Table, record: type[object]) -> list[sa.Column[Any]]:
    return [table.c[name] for name in record.__dataclass_fields__]  # type: ignore[attr-defined]


PROPERTY_COLUMNS = _columns(tables.properties, PropertyRecord)
SALE_COLUMNS = _columns(tables.sales, SaleRecord)
LOCALITY_COLUMNS = _columns(tables.localities, LocalityRecord)


class CursorOrder(Protocol[R_contra]):
    """What an edge needs of its keyset order (db.keyset.KeysetOrder)."""

    @property
    def name(self) -> str: ...

    def encode(self, record: R_contra) -> str: ...


class Edge(Generic[R]):
    """A node and its cursor; the cursor is encoded only when someone reads it (most
    queries select nodes, not the cursor of every edge)."""

    __slots__ = ("_cursor", "node", "order")

    def __init__(self, node: R, order: CursorOrder[R]) -> None:
        self.node = node
        self.order = order
        self._cursor: str | None = None

    @property
    def cursor(self) -> str:
        if self._cursor is None:
            self._cursor = self.order.encode(self.node)
        return self._cursor

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Edge) and (self.cursor, self.node) == (other.cursor, other.node)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Edge({self.node!r})"


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
    counted: Any = None
    """What the connection's `totalCount` counts (a key of its count loader), set by the
    resolver that returns the page; not part of a cached page."""

    def counting(self, counted: Any) -> Page[R]:
        """This page with what its `totalCount` counts (a copy: pages are shared through the
        cache). Built directly: `dataclasses.replace` costs 2.5x more, on every page served."""
        return Page(self.edges, self.page_info, counted)

    @property
    def nodes(self) -> list[R]:
        return [edge.node for edge in self.edges]
