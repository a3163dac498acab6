"""Property queries: by id, filtered keyset pages, and first-N pages per locality."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from db import tables
from db.engine import Database
from db.keyset import KeysetOrder
from db.records import PROPERTY_COLUMNS, PropertyRecord
from db.repositories.batching import first_n_per_key, key_in

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


def _conditions(criteria: PropertyCriteria) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = [p.c.deleted_at.is_(None)]
    if criteria.locality_id is not None:
        where.append(p.c.locality_id == criteria.locality_id)
    if criteria.locality_name is not None or criteria.postcode is not None:
        matching = sa.select(l.c.id)
        if criteria.locality_name is not None:
            matching = matching.where(l.c.name == criteria.locality_name.strip().upper())
        if criteria.postcode is not None:
            matching = matching.where(l.c.postcode == criteria.postcode)
        where.append(p.c.locality_id.in_(matching.scalar_subquery()))
    if criteria.district is not None:
        where.append(p.c.district == criteria.district.strip().upper())
    if criteria.is_strata is not None:
        where.append(p.c.is_strata.is_(criteria.is_strata))
    if criteria.nature is not None:
        where.append(p.c.nature == criteria.nature)
    if criteria.min_area_m2 is not None:
        where.append(p.c.area_m2 >= criteria.min_area_m2)
    if criteria.max_area_m2 is not None:
        where.append(p.c.area_m2 <= criteria.max_area_m2)
    if criteria.min_last_sale_price is not None:
        where.append(p.c.last_sale_price >= criteria.min_last_sale_price)
    if criteria.max_last_sale_price is not None:
        where.append(p.c.last_sale_price <= criteria.max_last_sale_price)
    if criteria.sold_after is not None:
        where.append(p.c.last_sale_date >= criteria.sold_after)
    if criteria.sold_before is not None:
        where.append(p.c.last_sale_date <= criteria.sold_before)
    if criteria.bbox is not None:
        box = criteria.bbox
        where.append(p.c.latitude.between(box.min_lat, box.max_lat))
        where.append(p.c.longitude.between(box.min_lon, box.max_lon))
    return where


async def properties_by_id(db: Database, ids: Sequence[int]) -> dict[int, PropertyRecord]:
    statement = sa.select(*PROPERTY_COLUMNS).where(
        key_in(db, p.c.id, ids), p.c.deleted_at.is_(None)
    )
    return {row[0]: PropertyRecord(*row) for row in await db.fetch_all(statement)}


async def properties_page(
    db: Database,
    criteria: PropertyCriteria,
    *,
    order: KeysetOrder[PropertyRecord],
    after: Sequence[Any] | None,
    limit: int,
) -> list[PropertyRecord]:
    where = _conditions(criteria)
    if after is not None:
        where.append(order.after(after))
    statement = sa.select(*PROPERTY_COLUMNS).where(*where).order_by(*order.order_by()).limit(limit)
    return [PropertyRecord(*row) for row in await db.fetch_all(statement)]


async def properties_by_locality(
    db: Database,
    locality_ids: Sequence[int],
    *,
    order: KeysetOrder[PropertyRecord],
    after: Sequence[Any] | None,
    limit: int,
) -> dict[int, list[PropertyRecord]]:
    where: list[sa.ColumnElement[bool]] = [p.c.deleted_at.is_(None)]
    if after is not None:
        where.append(order.after(after))
    return await first_n_per_key(
        db,
        columns=PROPERTY_COLUMNS,
        key=p.c.locality_id,
        keys=locality_ids,
        where=where,
        order=order,
        limit=limit,
        make=PropertyRecord,
    )
