"""Property queries: by id, filtered keyset pages, and first-N pages per locality."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from db import tables
from db.engine import Database
from db.keyset import KeysetOrder
from db.records import PROPERTY_COLUMNS, PropertyRecord
from db.repositories.batching import cached_statement, first_n_per_key, rows_by_id

p = tables.properties
l = tables.localities  # noqa: E741

_ORDERS: tuple[KeysetOrder[PropertyRecord], ...] = (
    KeysetOrder("ID_ASC", [p.c.id], ["id"], [int]),
    KeysetOrder(
        "LAST_SALE_PRICE_ASC",
        [p.c.last_sale_price, p.c.id],
        ["last_sale_price", "id"],
        [int, int],
    ),
    KeysetOrder(
        "LAST_SALE_PRICE_DESC",
        [p.c.last_sale_price, p.c.id],
        ["last_sale_price", "id"],
        [int, int],
        descending=True,
    ),
    KeysetOrder(
        "LAST_SALE_DATE_DESC",
        [p.c.last_sale_date, p.c.id],
        ["last_sale_date", "id"],
        [date, int],
        descending=True,
    ),
)
PROPERTY_ORDERS = {order.name: order for order in _ORDERS}


@dataclass(frozen=True)
class BoundingBox:
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float


@dataclass(frozen=True)
class PropertyCriteria:
    """Validated filter values; None means "no constraint"."""

    locality_id: int | None = None
    locality_name: str | None = None
    postcode: str | None = None
    district: str | None = None
    is_strata: bool | None = None
    nature: str | None = None
    min_area_m2: float | None = None
    max_area_m2: float | None = None
    min_last_sale_price: int | None = None
    max_last_sale_price: int | None = None
    sold_after: date | None = None
    sold_before: date | None = None
    bbox: BoundingBox | None = None


# Filter name -> the condition it adds, over a bind parameter of the same name. A page
# statement is built once per combination of filters given (and order, and cursor or not).
_FILTERS: dict[str, Callable[[], sa.ColumnElement[bool]]] = {
    "locality_id": lambda: p.c.locality_id == sa.bindparam("locality_id", type_=sa.BigInteger()),
    "district": lambda: p.c.district == sa.bindparam("district", type_=sa.Text()),
    "is_strata": lambda: p.c.is_strata == sa.bindparam("is_strata", type_=sa.Boolean()),
    "nature": lambda: p.c.nature == sa.bindparam("nature", type_=sa.Text()),
    "min_area_m2": lambda: p.c.area_m2 >= sa.bindparam("min_area_m2", type_=sa.Float()),
    "max_area_m2": lambda: p.c.area_m2 <= sa.bindparam("max_area_m2", type_=sa.Float()),
    "min_last_sale_price": lambda: (
        p.c.last_sale_price >= sa.bindparam("min_last_sale_price", type_=sa.BigInteger())
    ),
    "max_last_sale_price": lambda: (
        p.c.last_sale_price <= sa.bindparam("max_last_sale_price", type_=sa.BigInteger())
    ),
    "sold_after": lambda: p.c.last_sale_date >= sa.bindparam("sold_after", type_=sa.Date()),
    "sold_before": lambda: p.c.last_sale_date <= sa.bindparam("sold_before", type_=sa.Date()),
    "bbox": lambda: sa.and_(
        p.c.latitude.between(
            sa.bindparam("min_lat", type_=sa.Float()), sa.bindparam("max_lat", type_=sa.Float())
        ),
        p.c.longitude.between(
            sa.bindparam("min_lon", type_=sa.Float()), sa.bindparam("max_lon", type_=sa.Float())
        ),
    ),
}


def _locality_condition(by_name: bool, by_postcode: bool) -> sa.ColumnElement[bool]:
    matching = sa.select(l.c.id)
    if by_name:
        matching = matching.where(l.c.name == sa.bindparam("locality_name", type_=sa.Text()))
    if by_postcode:
        matching = matching.where(l.c.postcode == sa.bindparam("postcode", type_=sa.Text()))
    return p.c.locality_id.in_(matching.scalar_subquery())


def _page_per_locality(
    where: list[sa.ColumnElement[bool]],
    order: KeysetOrder[PropertyRecord],
    limit: sa.BindParameter[Any],
    by_name: bool,
    by_postcode: bool,
) -> sa.Select[Any]:
    """The page as the merge of each matching locality's own first page (LATERAL).

    `locality_id IN (SELECT ...)` hides the locality from the planner, which then reads all
    of a suburb's properties and sorts them; per locality, the (locality_id, <order>) index
    yields the first rows in order and stops."""
    matching = sa.select(l.c.id.label("locality_id"))
    if by_name:
        matching = matching.where(l.c.name == sa.bindparam("locality_name", type_=sa.Text()))
    if by_postcode:
        matching = matching.where(l.c.postcode == sa.bindparam("postcode", type_=sa.Text()))
    wanted = matching.subquery("wanted")
    page = (
        sa.select(*PROPERTY_COLUMNS)
        .where(p.c.locality_id == wanted.c.locality_id, *where)
        .order_by(*order.order_by())
        .limit(limit)
        .lateral("page")
    )
    sort = [page.c[c.name] for c in order.columns]
    return (
        sa.select(*[page.c[c.name] for c in PROPERTY_COLUMNS])
        .select_from(wanted.join(page, sa.true()))
        .order_by(*[c.desc() if order.descending else c.asc() for c in sort])
        .limit(limit)
    )


def _parameters(criteria: PropertyCriteria) -> dict[str, Any]:
    values: dict[str, Any] = {
        name: getattr(criteria, name)
        for name in (*_FILTERS, "locality_name", "postcode")
        if name != "bbox" and getattr(criteria, name) is not None
    }
    for name in ("locality_name", "district"):
        if name in values:
            values[name] = values[name].strip().upper()
    if criteria.bbox is not None:
        box = criteria.bbox
        values |= {
            "min_lat": box.min_lat,
            "max_lat": box.max_lat,
            "min_lon": box.min_lon,
            "max_lon": box.max_lon,
        }
    return values


async def properties_by_id(db: Database, ids: Sequence[int]) -> dict[int, PropertyRecord]:
    rows = await rows_by_id(
        db,
        name="properties_by_id",
        columns=PROPERTY_COLUMNS,
        key=p.c.id,
        keys=ids,
        where=[p.c.deleted_at.is_(None)],
    )
    return {row[0]: PropertyRecord(*row) for row in rows}


async def properties_page(
    db: Database,
    criteria: PropertyCriteria,
    *,
    order: KeysetOrder[PropertyRecord],
    after: Sequence[Any] | None,
    limit: int,
) -> list[PropertyRecord]:
    given = tuple(name for name in _FILTERS if getattr(criteria, name) is not None)
    by_name, by_postcode = criteria.locality_name is not None, criteria.postcode is not None

    def build() -> sa.Select[Any]:
        where = [p.c.deleted_at.is_(None), *(_FILTERS[name]() for name in given)]
        if after is not None:
            where.append(order.after_parameters())
        limit_param = sa.bindparam("limit", type_=sa.Integer())
        if (by_name or by_postcode) and db.is_postgresql:
            return _page_per_locality(where, order, limit_param, by_name, by_postcode)
        if by_name or by_postcode:
            where.append(_locality_condition(by_name, by_postcode))
        statement: sa.Select[Any] = (
            sa.select(*PROPERTY_COLUMNS)
            .where(*where)
            .order_by(*order.order_by())
            .limit(limit_param)
        )
        return statement

    key = (
        "properties_page",
        db.dialect,
        order.name,
        after is not None,
        given,
        by_name,
        by_postcode,
    )
    params = _parameters(criteria) | {"limit": limit}
    if after is not None:
        params |= order.parameter_values(after)
    rows = await db.fetch_all(cached_statement(key, build), params, prepared=True)
    return [PropertyRecord(*row) for row in rows]


async def properties_by_locality(
    db: Database,
    locality_ids: Sequence[int],
    *,
    order: KeysetOrder[PropertyRecord],
    after: Sequence[Any] | None,
    limit: int,
) -> dict[int, list[PropertyRecord]]:
    return await first_n_per_key(
        db,
        name="properties_by_locality",
        columns=PROPERTY_COLUMNS,
        key=p.c.locality_id,
        keys=locality_ids,
        where=[p.c.deleted_at.is_(None)],
        order=order,
        after=after,
        limit=limit,
        make=PropertyRecord,
    )
