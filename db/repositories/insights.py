"""The database advisor's SQL (PostgreSQL): pg_stat_statements, the statistics views, the
catalogs, EXPLAIN and HypoPG. What the rows mean (pghero's thresholds, dexter's method) is
decided in app/insights; nothing here judges.

The statistics are plain reads through `Database.fetch_all`. Planning work (PREPARE, EXPLAIN,
hypothetical indexes) runs in a `PlanningSession`: one connection of its own, inside a
transaction that is always rolled back, under a statement timeout; that connection is then
discarded, because prepared statements and HypoPG's indexes belong to the session, not to
the transaction, and must not reach the pool.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from db.engine import Database, raw_asyncpg_connection


@dataclass(frozen=True, slots=True)
class ServerFacts:
    version_num: int
    database: str
    superuser: bool
    stat_statements_installed: bool
    stat_statements_loaded: bool
    """The library is in shared_preload_libraries (its settings exist in this backend)."""
    stat_statements_available: bool
    hypopg_installed: bool
    hypopg_available: bool


_FACTS = sa.text(
    """
    SELECT current_setting('server_version_num')::int,
           current_database(),
           COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false),
           EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'),
           EXISTS (SELECT 1 FROM pg_settings WHERE name = 'pg_stat_statements.max'),
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'),
           EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg'),
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg')
    """
)


async def server_facts(db: Database) -> ServerFacts:
    row = await db.fetch_one(_FACTS)
    return ServerFacts(*row)


@dataclass(frozen=True, slots=True)
class StatementStats:
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    hit_ratio: float | None
    share_of_time: float | None


# Entries are per (user, database, queryid, toplevel): summed per queryid. Shares are of the
# whole database's execution time.
_STATEMENTS = sa.text(
    """
    WITH per_query AS (
        SELECT min(s.query) AS query,
               sum(s.calls) AS calls,
               sum(s.total_exec_time) AS total_ms,
               sum(s.rows) AS rows,
               sum(s.shared_blks_hit) AS hit,
               sum(s.shared_blks_read) AS read
        FROM pg_stat_statements s
        JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = current_database() AND s.calls > 0
        GROUP BY s.queryid
    ), shared AS (
        SELECT *, total_ms / NULLIF(sum(total_ms) OVER (), 0) AS share FROM per_query
    )
    SELECT query, calls, total_ms, total_ms / calls AS mean_ms, rows,
           hit::float8 / NULLIF(hit + read, 0) AS hit_ratio, share
    FROM shared
    WHERE calls >= :min_calls AND total_ms / calls >= :min_mean_ms
      AND (NOT :reads_only OR query ~* '^\\s*(/\\*.*?\\*/\\s*)*(select|with)\\M')
    ORDER BY total_ms DESC
    LIMIT :limit
    """
)


async def statement_stats(
    db: Database, *, limit: int, min_calls: int = 1, min_mean_ms: float = 0.0, reads_only: bool
) -> list[StatementStats]:
    """The database's statements by total execution time (pg_stat_statements must be
    installed and loaded: see `server_facts`). `reads_only`: SELECT and WITH statements."""
    rows = await db.fetch_all(
        _STATEMENTS,
        {
            "limit": limit,
            "min_calls": min_calls,
            "min_mean_ms": min_mean_ms,
            "reads_only": reads_only,
        },
    )
    return [
        StatementStats(
            query=r[0],
            calls=int(r[1]),
            total_ms=float(r[2]),
            mean_ms=float(r[3]),
            rows=int(r[4]),
            hit_ratio=None if r[5] is None else float(r[5]),
            share_of_time=None if r[6] is None else float(r[6]),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class IndexRow:
    schema: str
    table: str
    name: str
    size_bytes: int
    scans: int
    unique: bool
    primary: bool
    valid: bool
    method: str
    keys: tuple[int, ...]
    """Attribute numbers of the key columns (0: an expression), INCLUDE columns left out."""
    classes: tuple[int, ...]
    """Operator classes of the key columns."""
    columns: tuple[str, ...]
    expressions: bool
    partial: bool
    definition: str


_INDEXES = sa.text(
    """
    SELECT n.nspname, t.relname, c.relname, pg_relation_size(i.indexrelid),
           COALESCE(s.idx_scan, 0), i.indisunique, i.indisprimary, i.indisvalid, am.amname,
           (i.indkey::int2[])[0:i.indnkeyatts - 1], (i.indclass::oid[])[0:i.indnkeyatts - 1],
           ARRAY(SELECT a.attname::text
                 FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(num, pos)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
                 ORDER BY k.pos),
           i.indexprs IS NOT NULL, i.indpred IS NOT NULL, pg_get_indexdef(i.indexrelid)
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    JOIN pg_am am ON am.oid = c.relam
    LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
    ORDER BY n.nspname, t.relname, c.relname
    """
)


async def indexes(db: Database) -> list[IndexRow]:
    """Every index of the user's schemas, with its size and scans since statistics were
    last reset."""
    rows = await db.fetch_all(_INDEXES)
    return [
        IndexRow(
            schema=r[0],
            table=r[1],
            name=r[2],
            size_bytes=int(r[3]),
            scans=int(r[4]),
            unique=r[5],
            primary=r[6],
            valid=r[7],
            method=r[8],
            keys=tuple(r[9] or ()),
            classes=tuple(r[10] or ()),
            columns=tuple(r[11] or ()),
            expressions=r[12],
            partial=r[13],
            definition=r[14],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class TableRow:
    schema: str
    name: str
    live_rows: int
    dead_rows: int
    last_vacuum: datetime | None
    last_analyze: datetime | None
    modified_since_analyze: int
    inserted_since_vacuum: int
    reltuples: float
    autovacuum_enabled: bool
    vacuum_threshold: float
    vacuum_scale_factor: float
    insert_threshold: float
    insert_scale_factor: float
    analyze_threshold: float
    analyze_scale_factor: float


def _setting(name: str) -> str:
    """A table's autovacuum option (its reloptions) or else the server's setting."""
    return (
        f"COALESCE(max(option_value) FILTER (WHERE option_name = '{name}'), "
        f"current_setting('{name}'))::float8"
    )


_TABLES = sa.text(
    f"""
    SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup,
           GREATEST(s.last_vacuum, s.last_autovacuum),
           GREATEST(s.last_analyze, s.last_autoanalyze),
           s.n_mod_since_analyze, s.n_ins_since_vacuum, GREATEST(c.reltuples, 0)::float8,
           o.enabled, o.vt, o.vsf, o.it, o.isf, o.at, o.asf
    FROM pg_stat_user_tables s
    JOIN pg_class c ON c.oid = s.relid
    CROSS JOIN LATERAL (
        SELECT COALESCE(bool_and(option_value::bool)
                            FILTER (WHERE option_name = 'autovacuum_enabled'),
                        current_setting('autovacuum')::bool) AS enabled,
               {_setting("autovacuum_vacuum_threshold")} AS vt,
               {_setting("autovacuum_vacuum_scale_factor")} AS vsf,
               {_setting("autovacuum_vacuum_insert_threshold")} AS it,
               {_setting("autovacuum_vacuum_insert_scale_factor")} AS isf,
               {_setting("autovacuum_analyze_threshold")} AS at,
               {_setting("autovacuum_analyze_scale_factor")} AS asf
        FROM pg_options_to_table(c.reloptions)
    ) o
    ORDER BY s.n_dead_tup DESC, s.schemaname, s.relname
    """
)


async def tables(db: Database) -> list[TableRow]:
    """The user's tables: rows, maintenance times, and the autovacuum thresholds that apply
    to each (its own storage options, else the server's settings)."""
    return [TableRow(*row) for row in await db.fetch_all(_TABLES)]


_TABLE_HIT_RATE = sa.text(
    """
    SELECT sum(heap_blks_hit)::float8 / NULLIF(sum(heap_blks_hit) + sum(heap_blks_read), 0)
    FROM pg_statio_user_tables
    """
)


async def table_hit_ratio(db: Database) -> float | None:
    """Share of table blocks read from shared buffers (pghero's table hit rate)."""
    value = (await db.fetch_one(_TABLE_HIT_RATE))[0]
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class ConnectionCounts:
    active: int
    idle: int
    idle_in_transaction: int
    max: int


_CONNECTIONS = sa.text(
    """
    SELECT count(*) FILTER (WHERE state = 'active'),
           count(*) FILTER (WHERE state = 'idle'),
           count(*) FILTER (WHERE state LIKE 'idle in transaction%'),
           current_setting('max_connections')::int
    FROM pg_stat_activity
    WHERE backend_type = 'client backend'
    """
)


async def connections(db: Database) -> ConnectionCounts:
    """Client connections to the whole server (max_connections is the server's)."""
    return ConnectionCounts(*(await db.fetch_one(_CONNECTIONS)))


@dataclass(frozen=True, slots=True)
class SequenceRow:
    name: str
    last_value: int | None
    max_value: int
    """The lower of the sequence's own maximum and its column's type (a bigint sequence
    feeding an integer column runs out at 2^31 - 1)."""


_SEQUENCES = sa.text(
    """
    SELECT s.schemaname || '.' || s.sequencename, s.last_value,
           LEAST(s.max_value, CASE a.atttypid WHEN 'int2'::regtype THEN 32767
                                              WHEN 'int4'::regtype THEN 2147483647 END)
    FROM pg_sequences s
    LEFT JOIN pg_depend d
           ON d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i')
          AND d.objid = (quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass
    LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE s.increment_by > 0
    ORDER BY 1
    """
)


async def sequences(db: Database) -> list[SequenceRow]:
    """Ascending sequences; `last_value` is null until first used (or without privilege)."""
    return [SequenceRow(r[0], r[1], int(r[2])) for r in await db.fetch_all(_SEQUENCES)]


_XID_AGE = sa.text("SELECT max(age(datfrozenxid)) FROM pg_database")


async def transaction_id_age(db: Database) -> int:
    """The oldest unfrozen transaction id's age in any database of the server: wraparound
    is the server's, whichever database reaches it."""
    return int((await db.fetch_one(_XID_AGE))[0])


# ------------------------------------------------------------------ planning


@dataclass(frozen=True, slots=True)
class ColumnRow:
    table: str
    """schema.table"""
    column: str
    type: str


class PlanningError(Exception):
    """A statement could not be prepared or explained (its message says why)."""


def _decode_plan(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(table: str) -> str:
    """`schema.table` quoted for SQL."""
    schema, _, name = table.partition(".")
    return f"{_quote(schema)}.{_quote(name)}" if name else _quote(schema)


def index_statement(table: str, columns: Sequence[str], *, concurrently: bool = False) -> str:
    how = "CONCURRENTLY " if concurrently else ""
    cols = ", ".join(_quote(c) for c in columns)
    return f"CREATE INDEX {how}ON {qualified(table)} ({cols})"


class PlanningSession:
    """PREPARE, EXPLAIN and HypoPG on one connection inside a transaction that is rolled
    back. Every statement runs in a savepoint, so one that fails (a timeout, a statement
    that no longer plans) leaves the others their transaction."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._names = itertools.count(1)

    async def _in_savepoint(self, call: Any) -> Any:
        try:
            async with self._raw.transaction():
                return await call()
        except Exception as error:  # asyncpg's errors: the statement's own problem
            raise PlanningError(str(error).strip().splitlines()[0]) from None

    async def generic_plan(self, sql: str) -> Any:
        """The plan PostgreSQL would cache for `sql` (a normalised statement, `$n` for its
        constants), whatever values come: PREPARE it, and EXPLAIN EXECUTE it with NULLs under
        plan_cache_mode = force_generic_plan (dexter's way before PostgreSQL 16's
        EXPLAIN (GENERIC_PLAN)). A generic plan does not depend on the values, so NULL does
        not short-circuit it. PREPARE goes over the extended protocol, which refuses a text
        of several statements. Prepared again on each call: a cached generic plan would not
        see hypothetical indexes created since."""
        name = f"propintel_advice_{next(self._names)}"

        async def explain() -> Any:
            await self._raw.fetch(f"PREPARE {name} AS {sql}")
            try:
                count = await self._raw.fetchval(
                    "SELECT cardinality(parameter_types) FROM pg_prepared_statements "
                    "WHERE name = $1",
                    name,
                )
                nulls = ", ".join(["NULL"] * (count or 0))
                arguments = f"({nulls})" if count else ""
                plan = await self._raw.fetchval(
                    f"EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE {name}{arguments}"
                )
            finally:
                await self._raw.fetch(f"DEALLOCATE {name}")
            return _decode_plan(plan)[0]

        return await self._in_savepoint(explain)

    async def explain(self, sql: str, parameters: Sequence[Any], *, analyze: bool) -> Any:
        """EXPLAIN (FORMAT JSON) of a statement with its bound values; ANALYZE (and BUFFERS)
        runs it, inside this session's transaction that is rolled back."""
        options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"

        async def explain() -> Any:
            return _decode_plan(
                await self._raw.fetchval(f"EXPLAIN ({options}) {sql}", *parameters)
            )[0]

        return await self._in_savepoint(explain)

    async def enable_hypopg(self) -> None:
        """CREATE EXTENSION hypopg inside this transaction: it goes when it rolls back."""

        async def create() -> None:
            await self._raw.fetch("CREATE EXTENSION IF NOT EXISTS hypopg")

        await self._in_savepoint(create)

    async def hypothetical_index(self, table: str, columns: Sequence[str]) -> str:
        """A hypothetical btree index (HypoPG): the planner sees it, nothing is built.
        Returns its name as plans show it (`<oid>btree_table_column`)."""
        statement = index_statement(table, columns)

        async def create() -> str:
            row = await self._raw.fetchrow(
                "SELECT indexname FROM hypopg_create_index($1)", statement
            )
            return str(row[0])

        return str(await self._in_savepoint(create))

    async def reset_hypothetical(self) -> None:
        async def reset() -> None:
            await self._raw.fetch("SELECT hypopg_reset()")

        await self._in_savepoint(reset)

    async def columns(self, tables: Sequence[str]) -> list[ColumnRow]:
        """The columns of these `schema.table`s."""
        rows = await self._raw.fetch(
            """
            SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE a.attnum > 0 AND NOT a.attisdropped
              AND n.nspname || '.' || c.relname = ANY($1::text[])
            """,
            list(tables),
        )
        return [ColumnRow(r[0], r[1], r[2]) for r in rows]

    async def btree_indexes(self, tables: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
        """(schema.table, key columns) of the valid btree indexes on plain columns of these
        tables, as they stand (hypothetical ones are not in the catalog)."""
        rows = await self._raw.fetch(
            """
            SELECT n.nspname || '.' || t.relname,
                   ARRAY(SELECT a.attname::text
                         FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1])
                              WITH ORDINALITY k(num, pos)
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
                         ORDER BY k.pos)
            FROM pg_index i
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            JOIN pg_am am ON am.oid = c.relam
            WHERE am.amname = 'btree' AND i.indisvalid AND i.indexprs IS NULL
              AND i.indpred IS NULL AND n.nspname || '.' || t.relname = ANY($1::text[])
            """,
            list(tables),
        )
        return [(r[0], tuple(r[1])) for r in rows]


@asynccontextmanager
async def planning_session(
    db: Database, *, timeout_ms: int, generic_plans: bool
) -> AsyncIterator[PlanningSession]:
    """A `PlanningSession` whose statements each stop after `timeout_ms`; everything it did
    is rolled back, and its connection closed rather than returned to the pool.
    `generic_plans`: plan_cache_mode = force_generic_plan (for `generic_plan`); otherwise
    statements with values are planned for those values, as the app's first runs are."""
    async with db.engine.connect() as conn:
        raw = await raw_asyncpg_connection(conn)
        transaction = raw.transaction()
        await transaction.start()
        try:
            await raw.fetch(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            if generic_plans:
                await raw.fetch("SET LOCAL plan_cache_mode = force_generic_plan")
            else:
                await raw.fetch("SET LOCAL plan_cache_mode = force_custom_plan")
            yield PlanningSession(raw)
        finally:
            try:
                await transaction.rollback()
            finally:
                await conn.invalidate()


# ------------------------------------------------------------------ SQLite


async def sqlite_query_plan(db: Database, sql: str, parameters: Sequence[Any]) -> list[Any]:
    """EXPLAIN QUERY PLAN of a statement with its bound values (SQLite has no costs)."""
    try:
        async with db.engine.connect() as conn:
            result = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(parameters))
            rows: list[Any] = list(result.all())
        return [{"id": r[0], "parent": r[1], "detail": r[3]} for r in rows]
    except sa.exc.DBAPIError as error:
        raise PlanningError(str(error.orig).strip().splitlines()[0]) from None
