"""Property queries: by id, filtered keyset pages, first-N pages per locality, and counts."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from db import tables
from db.engine import Database
from db.keyset import KeysetOrder
from db.records import PROPERTY_COLUMNS, PropertyRecord
from db.repositories.batching import (
    Explain,
    cached_statement,
    first_n_per_key,
    keys_param,
    rows_by_id,
)

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


Shape = tuple[tuple[str, ...], bool, bool]
"""Which filters a criteria gives (statements are built once per shape): the names of the
`_FILTERS` given, whether a locality name is, whether a postcode is."""


def _shape(criteria: PropertyCriteria) -> Shape:
    given = tuple(name for name in _FILTERS if getattr(criteria, name) is not None)
    return given, criteria.locality_name is not None, criteria.postcode is not None


@functools.cache
def _conditions(shape: Shape) -> tuple[sa.ColumnElement[bool], ...]:
    """Live properties matching the filters of `shape`, the locality ones as a subquery."""
    given, by_name, by_postcode = shape
    where = [p.c.deleted_at.is_(None), *(_FILTERS[name]() for name in given)]
    if by_name or by_postcode:
        where.append(_locality_condition(by_name, by_postcode))
    return tuple(where)


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


def properties_page_statement(
    db: Database,
    criteria: PropertyCriteria,
    *,
    order: KeysetOrder[PropertyRecord],
    after: Sequence[Any] | None,
    limit: int,
) -> tuple[sa.Select[Any], dict[str, Any], Hashable]:
    """The keyset page statement (built once per shape), its parameters, and its shape's key
    (db/repositories/json_pages.py wraps the same statement)."""
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
    return cached_statement(key, build), params, key


async def properties_page(
    db: Database,
    criteria: PropertyCriteria,
    *,
    order: KeysetOrder[PropertyRecord],
    after: Sequence[Any] | None,
    limit: int,
) -> list[PropertyRecord]:
    statement, params, _key = properties_page_statement(
        db, criteria, order=order, after=after, limit=limit
    )
    rows = await db.fetch_all(statement, params, prepared=True)
    return [PropertyRecord(*row) for row in rows]


async def properties_by_locality(
    db: Database,
    locality_ids: Sequence[int],
    *,
    criteria: PropertyCriteria,
    order: KeysetOrder[PropertyRecord],
    after: Sequence[Any] | None,
    limit: int,
) -> dict[int, list[PropertyRecord]]:
    """The first `limit` properties of each locality matching `criteria`, in `order`: per
    locality, the (locality_id, <order>) index read in order, the filters applied to it."""
    shape = _shape(criteria)
    return await first_n_per_key(
        db,
        name=f"properties_by_locality:{shape}",
        columns=PROPERTY_COLUMNS,
        key=p.c.locality_id,
        keys=locality_ids,
        where=_conditions(shape),
        order=order,
        after=after,
        limit=limit,
        make=PropertyRecord,
        parameters=_parameters(criteria),
    )


async def count_properties(
    db: Database, criteria: PropertyCriteria, *, at_most: int | None = None
) -> int:
    """How many live properties match `criteria`. With `at_most`, counting may stop there: a
    count below it is exact, a count of `at_most` means "at least that many".

    A list restricted to localities (by name or postcode) is counted exactly, on PostgreSQL
    per matching locality (a LATERAL over them, each served by its (locality_id, id) index,
    as the page is: `locality_id IN (SELECT ...)` makes the planner scan the whole table)."""
    shape = _shape(criteria)
    given, by_name, by_postcode = shape
    per_locality = (by_name or by_postcode) and db.is_postgresql

    def build() -> sa.Select[Any]:
        if per_locality:
            matching = sa.select(l.c.id.label("locality_id"))
            if by_name:
                matching = matching.where(
                    l.c.name == sa.bindparam("locality_name", type_=sa.Text())
                )
            if by_postcode:
                matching = matching.where(l.c.postcode == sa.bindparam("postcode", type_=sa.Text()))
            wanted = matching.subquery("wanted")
            counted = (
                sa.select(sa.func.count().label("n"))
                .select_from(p)
                .where(p.c.locality_id == wanted.c.locality_id, *_conditions((given, False, False)))
                .lateral("counted")
            )
            total = sa.func.coalesce(sa.func.sum(counted.c.n), 0)
            return sa.select(total).select_from(wanted.join(counted, sa.true()))
        if at_most is None:
            return sa.select(sa.func.count()).select_from(p).where(*_conditions(shape))
        capped = (
            sa.select(sa.literal(1).label("one"))
            .select_from(p)
            .where(*_conditions(shape))
            .limit(sa.bindparam("at_most", type_=sa.Integer()))
            .subquery("capped")
        )
        return sa.select(sa.func.count()).select_from(capped)

    capping = at_most is not None and not per_locality
    statement = cached_statement(("count_properties", db.dialect, capping, shape), build)
    params = _parameters(criteria)
    if capping:
        params["at_most"] = at_most
    rows = await db.fetch_all(statement, params, prepared=True)
    return int(rows[0][0])


async def estimate_properties(db: Database, criteria: PropertyCriteria) -> int:
    """PostgreSQL's planner estimate of how many live properties match `criteria` (from the
    table's statistics, pg_class.reltuples and the columns' histograms: no row is read)."""
    assert db.is_postgresql, "the planner's estimates are PostgreSQL's"
    shape = _shape(criteria)
    statement = cached_statement(
        ("estimate_properties", db.dialect, shape),
        lambda: Explain(sa.select(sa.literal(1)).select_from(p).where(*_conditions(shape))),
    )
    rows = await db.fetch_all(statement, _parameters(criteria), prepared=True)
    raw = rows[0][0]  # EXPLAIN's json: bytes on the read pool (db/engine.py), str elsewhere
    plan = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return int(plan[0]["Plan"]["Plan Rows"])


async def count_properties_by_locality(
    db: Database, locality_ids: Sequence[int], criteria: PropertyCriteria
) -> dict[int, int]:
    """How many live properties of each locality match `criteria`, exactly, in one statement
    (the (locality_id, id) index; a locality holds at most some 17,000 properties)."""
    shape = _shape(criteria)
    statement = cached_statement(
        ("count_properties_by_locality", db.dialect, shape),
        lambda: (
            sa.select(p.c.locality_id, sa.func.count())
            .where(keys_param(db, p.c.locality_id), *_conditions(shape))
            .group_by(p.c.locality_id)
        ),
    )
    params = _parameters(criteria) | {"keys": list(locality_ids)}
    rows = await db.fetch_all(statement, params, prepared=True)
    return {row[0]: int(row[1]) for row in rows}
