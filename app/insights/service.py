"""The database advisor: what `databaseInsights`, `explainOperation` and `propintel db-report`
report, from PostgreSQL's statistics (db/repositories/insights.py) judged by pghero's
thresholds (thresholds.py), with dexter's index suggestions (advice.py).

PostgreSQL only: on SQLite every report is empty and `Overview.reason` says so. A missing
extension is a notice naming it and how to enable it, never an error. The advisor creates no
extension of its own accord but HypoPG, and that only inside the transaction it rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.insights.advice import IndexSuggestion, suggest_indexes
from app.insights.thresholds import (
    INDEX_ADVICE_BUDGET_S,
    INDEX_ADVICE_STATEMENTS,
    PLANNING_TIMEOUT_MS,
    SEQUENCE_DANGER,
    SLOW_QUERY_CALLS,
    SLOW_QUERY_MS,
    UNUSED_INDEX_MAX_SCANS,
)
from db.engine import Database
from db.repositories import insights as repository
from db.repositories.insights import (
    ConnectionCounts,
    IndexRow,
    PlanningError,
    ServerFacts,
    StatementStats,
)

NOT_ON_SQLITE = (
    "The database advisor needs PostgreSQL (pg_stat_statements, its statistics views, "
    "HypoPG): not available on SQLite."
)
STAT_STATEMENTS = "pg_stat_statements"
HYPOPG = "hypopg"


@dataclass(frozen=True, slots=True)
class Notice:
    extension: str | None
    """The extension it is about (none: a note on the report itself)."""
    message: str
    how_to_enable: str | None


@dataclass(frozen=True, slots=True)
class Overview:
    available: bool
    reason: str | None
    notices: list[Notice]
    facts: ServerFacts | None

    @property
    def statements_readable(self) -> bool:
        f = self.facts
        return f is not None and f.stat_statements_installed and f.stat_statements_loaded

    @property
    def hypopg_usable(self) -> bool:
        f = self.facts
        return f is not None and (f.hypopg_installed or (f.hypopg_available and f.superuser))


@dataclass(frozen=True, slots=True)
class UnusedIndex:
    table: str
    index: str
    size_bytes: int
    scans: int


@dataclass(frozen=True, slots=True)
class DuplicateIndex:
    table: str
    index: str
    covered_by: str
    """The index whose leading columns are this one's: this one can go."""


@dataclass(frozen=True, slots=True)
class TableMaintenance:
    name: str
    live_rows: int
    dead_rows: int
    last_vacuum: datetime | None
    last_analyze: datetime | None
    vacuum_due: bool
    analyze_due: bool


@dataclass(frozen=True, slots=True)
class SequenceUsage:
    name: str
    percent_used: float


@dataclass(frozen=True, slots=True)
class Suggestions:
    suggestions: list[IndexSuggestion]
    notices: list[Notice] = field(default_factory=list)


def _name(schema: str, name: str) -> str:
    """Names as a search_path of `public` shows them."""
    return name if schema == "public" else f"{schema}.{name}"


def _notices(facts: ServerFacts) -> list[Notice]:
    database = facts.database
    notices = []
    if not (facts.stat_statements_installed and facts.stat_statements_loaded):
        steps = []
        if not facts.stat_statements_available:
            steps.append("install PostgreSQL's contrib modules on the server")
        if not facts.stat_statements_loaded:
            steps.append(
                "add pg_stat_statements to shared_preload_libraries in postgresql.conf and "
                "restart PostgreSQL"
            )
        if not facts.stat_statements_installed:
            steps.append(
                f"run CREATE EXTENSION pg_stat_statements; in database {database} (as a superuser)"
            )
        notices.append(
            Notice(
                extension=STAT_STATEMENTS,
                message="Slow queries and index suggestions need pg_stat_statements, which "
                f"is not enabled in database {database}: they are empty.",
                how_to_enable="; then ".join(steps),
            )
        )
    if not facts.hypopg_installed and not (facts.hypopg_available and facts.superuser):
        how = (
            f"as a superuser, run CREATE EXTENSION hypopg; in database {database}"
            if facts.hypopg_available
            else "install HypoPG on the server (Debian: apt-get install "
            f"postgresql-{facts.version_num // 10000}-hypopg), then, as a superuser, run "
            f"CREATE EXTENSION hypopg; in database {database}"
        )
        notices.append(
            Notice(
                extension=HYPOPG,
                message="Index suggestions need HypoPG's hypothetical indexes, which are not "
                f"available to this connection in database {database}: they are empty.",
                how_to_enable=how,
            )
        )
    return notices


def _covers(index: IndexRow, other: IndexRow) -> bool:
    """pghero `index_covers?`: `other` starts with `index`'s key columns (and operator
    classes: a text_pattern_ops index does not serve `=` comparisons the same way)."""
    n = len(index.keys)
    return other.keys[:n] == index.keys and other.classes[:n] == index.classes


def _plain(index: IndexRow) -> bool:
    return not index.expressions and not index.partial and index.valid


def duplicate_indexes(rows: Sequence[IndexRow]) -> list[DuplicateIndex]:
    """pghero `duplicate_indexes`: a plain, non-unique index whose columns lead another
    index of the same table and method. Of two identical ones, the later name is reported."""
    found = []
    for index in rows:
        if index.primary or index.unique or not _plain(index):
            continue
        for other in rows:
            if (
                other.name != index.name
                and (other.schema, other.table) == (index.schema, index.table)
                and other.method == index.method
                and _plain(other)
                and _covers(index, other)
                and (other.keys != index.keys or index.name > other.name)
            ):
                found.append(
                    DuplicateIndex(
                        table=_name(index.schema, index.table),
                        index=_name(index.schema, index.name),
                        covered_by=_name(other.schema, other.name),
                    )
                )
                break
    return sorted(found, key=lambda d: (d.table, d.index))


def _vacuum_due(row: repository.TableRow) -> bool:
    """Autovacuum's own test (PostgreSQL's autovacuum.c): dead rows past threshold + scale
    factor x rows, or (PostgreSQL 13+) rows inserted since the last vacuum past the insert
    threshold + scale factor x rows; -1 switches the insert test off."""
    dead = row.dead_rows > row.vacuum_threshold + row.vacuum_scale_factor * row.reltuples
    inserted = row.insert_threshold >= 0 and (
        row.inserted_since_vacuum > row.insert_threshold + row.insert_scale_factor * row.reltuples
    )
    return dead or inserted


def _analyze_due(row: repository.TableRow) -> bool:
    return (
        row.modified_since_analyze
        > row.analyze_threshold + row.analyze_scale_factor * row.reltuples
    )


class DatabaseAdvisor:
    """Reports on the database behind `db`. Every method but `overview` and
    `explain_statements` expects `overview().available` (PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def overview(self) -> Overview:
        if not self.db.is_postgresql:
            return Overview(available=False, reason=NOT_ON_SQLITE, notices=[], facts=None)
        facts = await repository.server_facts(self.db)
        return Overview(available=True, reason=None, notices=_notices(facts), facts=facts)

    async def slow_queries(self, overview: Overview, first: int) -> list[StatementStats]:
        """pghero's slow queries: mean >= SLOW_QUERY_MS over at least SLOW_QUERY_CALLS
        calls, most total time first."""
        if not overview.statements_readable:
            return []
        return await repository.statement_stats(
            self.db,
            limit=first,
            min_calls=SLOW_QUERY_CALLS,
            min_mean_ms=SLOW_QUERY_MS,
            reads_only=False,
        )

    async def unused_indexes(self, first: int) -> list[UnusedIndex]:
        rows = [
            r
            for r in await repository.indexes(self.db)
            if not r.unique and r.scans <= UNUSED_INDEX_MAX_SCANS
        ]
        rows.sort(key=lambda r: (-r.size_bytes, r.table, r.name))
        return [
            UnusedIndex(_name(r.schema, r.table), _name(r.schema, r.name), r.size_bytes, r.scans)
            for r in rows[:first]
        ]

    async def duplicate_indexes(self, first: int) -> list[DuplicateIndex]:
        return duplicate_indexes(await repository.indexes(self.db))[:first]

    async def tables(self, first: int) -> list[TableMaintenance]:
        """Most dead rows first."""
        return [
            TableMaintenance(
                name=_name(r.schema, r.name),
                live_rows=r.live_rows,
                dead_rows=r.dead_rows,
                last_vacuum=r.last_vacuum,
                last_analyze=r.last_analyze,
                vacuum_due=_vacuum_due(r),
                analyze_due=_analyze_due(r),
            )
            for r in (await repository.tables(self.db))[:first]
        ]

    async def cache_hit_ratio(self) -> float | None:
        return await repository.table_hit_ratio(self.db)

    async def connections(self) -> ConnectionCounts:
        return await repository.connections(self.db)

    async def sequences_near_limit(self, first: int) -> list[SequenceUsage]:
        """pghero `sequence_danger`: sequences past SEQUENCE_DANGER of their maximum."""
        near = [
            SequenceUsage(s.name, round(100 * s.last_value / s.max_value, 2))
            for s in await repository.sequences(self.db)
            if s.last_value is not None and s.last_value / s.max_value > SEQUENCE_DANGER
        ]
        return sorted(near, key=lambda s: -s.percent_used)[:first]

    async def transaction_id_age(self) -> int:
        return await repository.transaction_id_age(self.db)

    async def index_suggestions(self, overview: Overview, first: int) -> Suggestions:
        """dexter's method over the INDEX_ADVICE_STATEMENTS reads with the most total time."""
        if not (overview.statements_readable and overview.hypopg_usable):
            return Suggestions([])
        assert overview.facts is not None
        statements = await repository.statement_stats(
            self.db, limit=INDEX_ADVICE_STATEMENTS, reads_only=True
        )
        if not statements:
            return Suggestions([])
        async with repository.planning_session(
            self.db, timeout_ms=PLANNING_TIMEOUT_MS, generic_plans=True
        ) as session:
            if not overview.facts.hypopg_installed:
                try:
                    await session.enable_hypopg()
                except PlanningError as error:
                    notice = Notice(
                        HYPOPG,
                        f"HypoPG could not be enabled: {error}",
                        "as a superuser, run CREATE EXTENSION hypopg;",
                    )
                    return Suggestions([], [notice])
            found, cut_short = await suggest_indexes(
                session, statements, budget_s=INDEX_ADVICE_BUDGET_S
            )
        notices = []
        if cut_short:
            notices.append(
                Notice(
                    None,
                    f"Index advice stopped after {INDEX_ADVICE_BUDGET_S:g} s: the statements "
                    "with the most total time were considered, not all of them.",
                    None,
                )
            )
        return Suggestions(found[:first], notices)
