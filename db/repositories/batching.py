"""Statement shapes shared by the repositories: `key IN keys` and "first N rows per key".

Each shape is built once per (purpose, dialect, options) and reused with bind parameters:
constructing SQLAlchemy statements costs more than running them. PostgreSQL gets array
parameters (`= ANY($1)`, `unnest($1) CROSS JOIN LATERAL`), so the SQL text never changes
with the batch size and asyncpg's prepared-statement cache keeps hitting. SQLite gets an
expanding `IN (...)` and a ROW_NUMBER() window, which it plans well.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles

from db.engine import Database
from db.keyset import KeysetOrder

R = TypeVar("R")


class Explain(sa.Executable, sa.ClauseElement):
    """`EXPLAIN (FORMAT JSON) <select>` (PostgreSQL): the plan, with the planner's row
    estimates, of a statement that is not run; its bind parameters stay parameters."""

    inherit_cache = False

    def __init__(self, select: sa.Select[Any]) -> None:
        self.select = select


@compiles(Explain, "postgresql")
def _compile_explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.select, **kw))


S = TypeVar("S", bound=sa.Executable)

_statements: dict[Hashable, Any] = {}


def cached_statement(key: Hashable, build: Callable[[], S]) -> S:
    """The statement built for `key`, built on first use (the keys are a small, fixed set)."""
    statement: S | None = _statements.get(key)
    if statement is None:
        statement = _statements[key] = build()
    return statement


def keys_param(
    db: Database, column: sa.ColumnElement[Any], name: str = "keys"
) -> sa.ColumnElement[bool]:
    """`column IN :keys`, as `= ANY(:keys)` with one array parameter on PostgreSQL."""
    if db.is_postgresql:
        element = sa.Text() if isinstance(column.type, sa.Text) else sa.BigInteger()
        return column == sa.any_(sa.bindparam(name, type_=ARRAY(element)))
    return column.in_(sa.bindparam(name, expanding=True))


async def rows_by_id(
    db: Database,
    *,
    name: str,
    columns: Sequence[sa.Column[Any]],
    key: sa.Column[Any],
    keys: Sequence[Any],
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> Sequence[Any]:
    statement = cached_statement(
        (name, db.dialect),
        lambda: sa.select(*columns).where(keys_param(db, key), *where),
    )
    return await db.fetch_all(statement, {"keys": list(keys)}, prepared=True)


async def first_n_per_key(
    db: Database,
    *,
    name: str,
    columns: Sequence[sa.Column[Any]],
    key: sa.Column[Any],
    keys: Sequence[int],
    where: Sequence[sa.ColumnElement[bool]],
    order: KeysetOrder[Any],
    after: Sequence[Any] | None,
    limit: int,
    make: Callable[..., R],
    parameters: Mapping[str, Any] | None = None,
) -> dict[int, list[R]]:
    """The first `limit` rows of each key in `order` (optionally after a cursor), in one
    statement for the whole batch. `where` must be constant (the statement is built once per
    `name`): values that vary go in as bind parameters, given in `parameters`."""

    def build() -> sa.Select[Any]:
        conditions = [*where]
        if after is not None:
            conditions.append(order.after_parameters())
        sort_source: sa.FromClause
        if db.is_postgresql:
            wanted = (
                sa.func.unnest(sa.bindparam("keys", type_=ARRAY(sa.BigInteger())))
                .table_valued("key")
                .render_derived(name="wanted")
            )
            page = (
                sa.select(*columns)
                .where(key == wanted.c.key, *conditions)
                .order_by(*order.order_by())
                .limit(sa.bindparam("limit", type_=sa.Integer()))
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
                .where(keys_param(db, key), *conditions)
                .subquery("ranked")
            )
            statement = sa.select(*[ranked.c[c.name] for c in columns]).where(
                ranked.c.rank_in_key <= sa.bindparam("limit", type_=sa.Integer())
            )
            sort_source = ranked
        sort = [sort_source.c[c.name] for c in order.columns]
        return statement.order_by(
            sort_source.c[key.name], *[c.desc() if order.descending else c.asc() for c in sort]
        )

    statement = cached_statement((name, db.dialect, order.name, after is not None), build)
    params: dict[str, Any] = {"keys": list(keys), "limit": limit, **(parameters or {})}
    if after is not None:
        params |= order.parameter_values(after)
    grouped: dict[int, list[R]] = defaultdict(list)
    key_position = [c.name for c in columns].index(key.name)
    for row in await db.fetch_all(statement, params, prepared=True):
        grouped[row[key_position]].append(make(*row))
    return grouped
