"""Sale queries: by id, newest-first pages per property, and counts per property."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from db import tables
from db.engine import Database
from db.keyset import KeysetOrder
from db.records import SALE_COLUMNS, SaleRecord
from db.repositories.batching import cached_statement, first_n_per_key, keys_param, rows_by_id

s = tables.sales

# Newest first; the id breaks ties between sales contracted on the same day.
SALES_NEWEST_FIRST: KeysetOrder[SaleRecord] = KeysetOrder(
    "NEWEST", [s.c.contract_date, s.c.id], ["contract_date", "id"], [date, int], descending=True
)


async def sales_by_id(db: Database, ids: Sequence[int]) -> dict[int, SaleRecord]:
    rows = await rows_by_id(db, name="sales_by_id", columns=SALE_COLUMNS, key=s.c.id, keys=ids)
    return {row[0]: SaleRecord(*row) for row in rows}


async def sales_by_property(
    db: Database, property_ids: Sequence[int], *, after: Sequence[Any] | None, limit: int
) -> dict[int, list[SaleRecord]]:
    return await first_n_per_key(
        db,
        name="sales_by_property",
        columns=SALE_COLUMNS,
        key=s.c.property_id,
        keys=property_ids,
        where=(),
        order=SALES_NEWEST_FIRST,
        after=after,
        limit=limit,
        make=SaleRecord,
    )


async def count_sales_by_property(db: Database, property_ids: Sequence[int]) -> dict[int, int]:
    """How many sales each property has (exactly: the (property_id, ...) index), in one
    statement for the batch; properties with none are missing."""
    statement = cached_statement(
        ("count_sales_by_property", db.dialect),
        lambda: (
            sa.select(s.c.property_id, sa.func.count())
            .where(keys_param(db, s.c.property_id))
            .group_by(s.c.property_id)
        ),
    )
    rows = await db.fetch_all(statement, {"keys": list(property_ids)}, prepared=True)
    return {row[0]: int(row[1]) for row in rows}
