"""Types of the database advisor (admin): `databaseInsights` and `explainOperation`.

Their roots are app/insights records; the lists are plain lists capped by `first` (at most
100): ranked, bounded reports an operator reads whole, not collections to page through.
Counts and sizes that can pass 2^31 (calls, rows, bytes) are Floats: GraphQL's Int is 32 bits.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.insights.advice import IndexSuggestion as IndexSuggestionRecord
from app.insights.thresholds import DEFAULT_LIST
from db.repositories.insights import ConnectionCounts as ConnectionCountsRecord
from db.repositories.insights import StatementStats
from resolvers import insights as insight_resolvers


@strawberry.type(
    description="A statement pg_stat_statements counted (normalised: `$n` for "
    "its constants), since its statistics were last reset."
)
class SlowQuery:
    query: str
    calls: float
    mean_ms: float = strawberry.field(description="Mean execution time, milliseconds.")
    total_ms: float
    share_of_time: float | None = strawberry.field(
        description="Its share of the database's execution time, 0 to 1."
    )
    rows: float = strawberry.field(description="Rows returned or affected, all calls.")
    hit_ratio: float | None = strawberry.field(
        description="Share of its blocks found in shared buffers, 0 to 1."
    )


@strawberry.type(
    description="A non-unique index scanned at most 50 times since the "
    "statistics were reset (pghero's test): a cost on every write, of no use."
)
class UnusedIndex:
    table: str
    index: str
    size_bytes: float
    scans: float


@strawberry.type(
    description="An index whose columns lead another index (`coveredBy`) of "
    "the same table and method: that one serves its queries too."
)
class DuplicateIndex:
    table: str
    index: str
    covered_by: str


@strawberry.type(
    description="An index HypoPG's hypothetical version of which at least "
    "halves the plan cost of `queries` (dexter's method; nothing was built)."
)
class IndexSuggestion:
    table: str
    columns: list[str]
    create_statement: str
    cost_before: float = strawberry.field(description="Plan cost of `queries` now...")
    cost_after: float = strawberry.field(description="...and with this index.")
    queries: list[str]


@strawberry.type(
    description="A table's rows and maintenance (times are the later of manual and autovacuum's)."
)
class TableMaintenance:
    name: str
    live_rows: float
    dead_rows: float
    last_vacuum: datetime | None
    last_analyze: datetime | None
    vacuum_due: bool = strawberry.field(
        description="Past autovacuum's threshold (dead or inserted rows): a vacuum is due."
    )
    analyze_due: bool = strawberry.field(
        description="Rows changed since the last analyze are past autovacuum's threshold."
    )


@strawberry.type(description="Client connections to the server.")
class ConnectionCounts:
    active: int
    idle: int
    idle_in_transaction: int
    max: int = strawberry.field(description="max_connections.")


@strawberry.type(description="A sequence past 90% of its column's maximum (pghero's test).")
class SequenceUsage:
    name: str
    percent_used: float


@strawberry.type(description="What the report could not cover, and how to enable it.")
class InsightNotice:
    extension: str | None = strawberry.field(
        description="The PostgreSQL extension it is about (null: a note on the report)."
    )
    message: str
    how_to_enable: str | None


@strawberry.type(
    description="The database advisor's report (PostgreSQL; pghero's "
    "thresholds). On SQLite `available` is false and every list is empty."
)
class DatabaseInsights:
    available: bool
    reason: str | None = strawberry.field(description="Why the report is not available.")
    notices: list[InsightNotice]
    slow_queries: list[StatementStats] = strawberry.field(
        resolver=insight_resolvers.slow_queries,
        graphql_type=list[SlowQuery],
        description=f"Mean >= 20 ms over >= 100 calls, most total time first (first: "
        f"default {DEFAULT_LIST}, at most 100).",
    )
    unused_indexes: object = strawberry.field(
        resolver=insight_resolvers.unused_indexes,
        graphql_type=list[UnusedIndex],
        description="Largest first.",
    )
    duplicate_indexes: object = strawberry.field(
        resolver=insight_resolvers.duplicate_indexes, graphql_type=list[DuplicateIndex]
    )
    index_suggestions: list[IndexSuggestionRecord] = strawberry.field(
        resolver=insight_resolvers.index_suggestions,
        graphql_type=list[IndexSuggestion],
        description="From the 50 reads with the most total time; biggest saving first.",
    )
    tables: object = strawberry.field(
        resolver=insight_resolvers.tables,
        graphql_type=list[TableMaintenance],
        description="Most dead rows first.",
    )
    cache_hit_ratio: float | None = strawberry.field(
        resolver=insight_resolvers.cache_hit_ratio,
        description="Share of table blocks read from shared buffers, 0 to 1 (pghero wants "
        ">= 0.99).",
    )
    connections: ConnectionCountsRecord | None = strawberry.field(
        resolver=insight_resolvers.connections, graphql_type=ConnectionCounts | None
    )
    sequences_near_limit: object = strawberry.field(
        resolver=insight_resolvers.sequences_near_limit, graphql_type=list[SequenceUsage]
    )
    transaction_id_age: int | None = strawberry.field(
        resolver=insight_resolvers.transaction_id_age,
        description="Age of the oldest unfrozen transaction id of the server; PostgreSQL "
        "stops near 2,146,483,648 (pghero warns 10 million before).",
    )


@strawberry.type(description="A SQL statement the operation ran, and its plan.")
class ExplainedStatement:
    sql: str
    parameters: JSON | None = strawberry.field(description="Its bound values, in order.")
    plan: JSON | None = strawberry.field(
        description="PostgreSQL: EXPLAIN (FORMAT JSON)'s plan (with ANALYZE and BUFFERS for "
        "reads); SQLite: EXPLAIN QUERY PLAN's rows. Null when it could not be explained."
    )
    analyzed: bool = strawberry.field(
        description="The plan has actual times (a read, run "
        "again in a transaction that was rolled back)."
    )
    total_cost: float | None
    actual_ms: float | None = strawberry.field(description="ANALYZE's execution time.")
    error: str | None = strawberry.field(
        description="Why it could not be explained (or, with a plan, analyzed: "
        "ANALYZE past the 5 s timeout gives the plan without it)."
    )


@strawberry.type(description="An operation run for its statements (the cache bypassed).")
class ExplainedOperation:
    dialect: str = strawberry.field(description="postgresql or sqlite.")
    data: JSON | None = strawberry.field(description="The operation's own answer.")
    errors: JSON | None = strawberry.field(description="The operation's own errors.")
    statements: list[ExplainedStatement]
