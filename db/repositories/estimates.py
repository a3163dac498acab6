"""What estimates read: the market sales of properties (their repeat-sales history) and
comparable recent sales nearby."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa

from db import tables
from db.engine import Database
from db.records import SALE_COLUMNS, SaleRecord
from db.repositories.batching import cached_statement, keys_param

s = tables.sales


async def market_history(
    db: Database, property_ids: Sequence[int], before: date
) -> dict[int, list[tuple[date, int]]]:
    """(contract date, price) of each property's market sales before `before`, oldest first;
    one statement for the whole batch."""
    statement = cached_statement(
        ("market_history", db.dialect),
        lambda: (
            sa.select(s.c.property_id, s.c.contract_date, s.c.price)
            .where(
                keys_param(db, s.c.property_id),
                s.c.is_market_sale,
                s.c.contract_date < sa.bindparam("before", type_=sa.Date()),
            )
            .order_by(s.c.property_id, s.c.contract_date, s.c.id)
        ),
    )
    rows = await db.fetch_all(
        statement, {"keys": list(property_ids), "before": before}, prepared=True
    )
    history: dict[int, list[tuple[date, int]]] = defaultdict(list)
    for property_id, contract_date, price in rows:
        history[property_id].append((contract_date, price))
    return history


async def comparable_sales(
    db: Database,
    *,
    locality_id: int,
    is_strata: bool,
    exclude_property: int,
    area_m2: float | None,
    limit: int,
) -> list[SaleRecord]:
    """The most recent market sales in the property's locality, of its kind (strata or
    not), nearest in land area first among the last ones: what a valuer would pull first."""
    recent = (
        sa.select(*SALE_COLUMNS)
        .where(
            s.c.locality_id == locality_id,
            s.c.is_market_sale,
            s.c.is_strata == is_strata,
            s.c.property_id != exclude_property,
        )
        .order_by(s.c.contract_date.desc(), s.c.id.desc())
        .limit(max(limit * 8, 40))
        .subquery()
    )
    closeness = (
        sa.func.abs(sa.func.coalesce(recent.c.area_m2, area_m2) - area_m2)
        if area_m2 is not None
        else sa.literal(0)
    )
    statement = (
        sa.select(*recent.c)
        .order_by(closeness, recent.c.contract_date.desc(), recent.c.id.desc())
        .limit(limit)
    )
    rows = await db.fetch_all(statement)
    return [SaleRecord(*row) for row in rows]
