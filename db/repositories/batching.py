"""Statement shapes shared by the repositories: `key IN keys` and "first N rows per key".

PostgreSQL gets array parameters (`= ANY($1)`, `unnest(...) CROSS JOIN LATERAL`), so a
statement's text does not change with the batch size and asyncpg's prepared-statement cache
keeps hitting. SQLite gets `IN (...)` and a ROW_NUMBER() window, which it plans well.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from db.engine import Database
from db.keyset import KeysetOrder

R = TypeVar("R")


def key_in(
    db: Database, column: sa.ColumnElement[Any], keys: Sequence[Any]
) -> sa.ColumnElement[bool]:
    if db.is_postgresql:
        element_type = sa.Text() if keys and isinstance(keys[0], str) else sa.BigInteger()
        return column == sa.any_(sa.literal(list(keys), ARRAY(element_type)))
    return column.in_(list(keys))


async def rows_by_key(
    db: Database,
    *,
    columns: Sequence[sa.ColumnElement[Any]],
    key: sa.ColumnElement[Any],
    keys: Sequence[Any],
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> dict[Any, Sequence[Any]]:
    """One row per key (for unique keys): {key: row}."""
    statement = sa.select(*columns).where(key_in(db, key, keys), *where)
    position = list(columns).index(key) if key in columns else None
    rows = await db.fetch_all(statement)
    if position is None:
        raise ValueError("the key column must be selected")
    return {row[position]: row for row in rows}


async def first_n_per_key(
    db: Database,
    *,
    columns: Sequence[sa.Column[Any]],
    key: sa.Column[Any],
    keys: Sequence[int],
    where: Sequence[sa.ColumnElement[bool]],
    order: KeysetOrder[Any],
    limit: int,
    make: Callable[..., R],
) -> dict[int, list[R]]:
    """The first `limit` rows of each key in `order`, in one statement for the whole batch."""
    sort_source: sa.FromClause
    if db.is_postgresql:
        wanted = (
            sa.func.unnest(sa.literal(list(keys), ARRAY(sa.BigInteger())))
            .table_valued("key")
            .render_derived(name="wanted")
        )
        page = (
            sa.select(*columns)
            .where(key == wanted.c.key, *where)
            .order_by(*order.order_by())
            .limit(limit)
            .lateral("page")
        )
        statement = sa.select(*[page.c[c.name] for c in columns]).select_from(
            wanted.join(page, sa.true())
        )
        sort_source = page
    else:
        rank = sa.func.row_number().over(partition_by=key, order_by=order.order_by())
        ranked = (
            sa.select(*columns, rank.label("rank_in_key"))
            .where(key_in(db, key, keys), *where)
            .subquery("ranked")
        )
        statement = sa.select(*[ranked.c[c.name] for c in columns]).where(
            ranked.c.rank_in_key <= limit
        )
        sort_source = ranked
    sort = [sort_source.c[c.name] for c in order.columns]
    statement = statement.order_by(
        sort_source.c[key.name], *[c.desc() if order.descending else c.asc() for c in sort]
    )
    grouped: dict[int, list[R]] = defaultdict(list)
    key_position = [c.name for c in columns].index(key.name)
    for row in await db.fetch_all(statement):
        grouped[row[key_position]].append(make(*row))
    return grouped
