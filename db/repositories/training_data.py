"""The rows the price model trains on (app/ml/data.py turns them into numpy columns).

These read through a plain `AsyncEngine`, not `Database`: the sales read is one statement
that streams millions of rows in partitions, which the asyncpg pool of `Database` (whole
result sets, per-statement timeout, resilience guard) is not made for. Rows come back as
tuples in the column order each function documents. PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from db import tables

_s, _p, _loc = tables.sales, tables.properties, tables.localities

_MARKET_SALES = (
    sa.select(
        _s.c.property_id,
        _s.c.locality_id,
        _s.c.is_strata,
        _s.c.contract_date,
        _s.c.price,
        _s.c.area_m2,
        _s.c.zoning,
        _s.c.nature,
        _s.c.primary_purpose,
        _s.c.district_code,
        _p.c.street_name,
        _p.c.house_number,
    )
    .select_from(_s.join(_p, _p.c.id == _s.c.property_id))
    .where(_s.c.is_market_sale, _p.c.deleted_at.is_(None))
)

_LOCALITIES = sa.select(
    _loc.c.id, _loc.c.latitude, _loc.c.longitude, _loc.c.district_code
).order_by(_loc.c.id)


async def localities(engine: AsyncEngine) -> Sequence[Any]:
    """Every locality, by id: (id, latitude, longitude, district_code)."""
    async with engine.connect() as conn:
        return (await conn.execute(_LOCALITIES)).all()


async def market_sale_partitions(
    engine: AsyncEngine, *, partition_rows: int
) -> AsyncGenerator[Sequence[Any], None]:
    """Every market sale of a live property, `partition_rows` at a time (so millions of rows
    never exist as row objects at once): (property_id, locality_id, is_strata, contract_date,
    price, area_m2, zoning, nature, primary_purpose, district_code, street_name,
    house_number). No order. Close the iterator (`contextlib.aclosing`) if you stop early."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One long read: the service's per-statement timeout does not apply here.
            await conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
        result = await conn.stream(_MARKET_SALES)
        async for rows in result.partitions(partition_rows):
            yield rows
