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
from db.repositories.batching import cached_statement, first_n_per_key, keys_param
from db.repositories.sales import SALES_NEWEST_FIRST

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


async def recent_market_sales(
    db: Database,
    locality_ids: Sequence[int],
    *,
    is_strata: bool,
    limit: int,
    on_or_before: date | None = None,
) -> dict[int, list[SaleRecord]]:
    """The `limit` most recent market sales of each locality, of one kind (strata or not),
    newest first, contracted on or before `on_or_before` when given: one statement for the
    whole batch (a LATERAL over the localities on PostgreSQL, served by the
    (locality_id, contract_date) index of market sales)."""
    kind = "strata" if is_strata else "houses"
    until: tuple[sa.ColumnElement[bool], ...] = ()
    if on_or_before is not None:
        until = (s.c.contract_date <= sa.bindparam("on_or_before", type_=sa.Date()),)
    return await first_n_per_key(
        db,
        name=f"recent_market_{kind}" + ("_until" if until else ""),
        columns=SALE_COLUMNS,
        key=s.c.locality_id,
        keys=locality_ids,
        where=(
            s.c.is_market_sale,
            s.c.is_strata == sa.true() if is_strata else s.c.is_strata == sa.false(),
            *until,
        ),
        order=SALES_NEWEST_FIRST,
        after=None,
        limit=limit,
        make=SaleRecord,
        parameters={"on_or_before": on_or_before} if until else None,
    )
