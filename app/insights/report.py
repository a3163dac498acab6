"""`propintel db-report`: the advisor's findings (what `databaseInsights` answers) as text,
one section per finding, columns aligned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.insights.advice import IndexSuggestion
from app.insights.service import (
    DatabaseAdvisor,
    DuplicateIndex,
    Notice,
    Overview,
    SequenceUsage,
    TableMaintenance,
    UnusedIndex,
)
from app.insights.thresholds import (
    CACHE_HIT_RATE_THRESHOLD,
    MAX_LIST,
    TRANSACTION_ID_DANGER,
    TRANSACTION_ID_WRAPAROUND,
)
from db.repositories.insights import ConnectionCounts, StatementStats

QUERY_CHARS = 100
"""Statements are cut to this many characters on a line (the whole text is in the API)."""


@dataclass(frozen=True, slots=True)
class Report:
    overview: Overview
    notices: list[Notice]
    slow_queries: list[StatementStats]
    unused_indexes: list[UnusedIndex]
    duplicate_indexes: list[DuplicateIndex]
    index_suggestions: list[IndexSuggestion]
    tables: list[TableMaintenance]
    cache_hit_ratio: float | None
    connections: ConnectionCounts
    sequences_near_limit: list[SequenceUsage]
    transaction_id_age: int


async def collect(advisor: DatabaseAdvisor, first: int = MAX_LIST) -> Report | Overview:
    """Everything, or the overview alone when the advisor is not available (SQLite)."""
    overview = await advisor.overview()
    if not overview.available:
        return overview
    suggestions = await advisor.index_suggestions(overview, first)
    return Report(
        overview=overview,
        notices=[*overview.notices, *suggestions.notices],
        slow_queries=await advisor.slow_queries(overview, first),
        unused_indexes=await advisor.unused_indexes(first),
        duplicate_indexes=await advisor.duplicate_indexes(first),
        index_suggestions=suggestions.suggestions,
        tables=await advisor.tables(first),
        cache_hit_ratio=await advisor.cache_hit_ratio(),
        connections=await advisor.connections(),
        sequences_near_limit=await advisor.sequences_near_limit(first),
        transaction_id_age=await advisor.transaction_id_age(),
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str) -> list[str]:
    """Aligned columns: text left, numbers right."""
    if not rows:
        return [f"  ({empty})"]
    cells = [[f"{v:,}" if isinstance(v, int) else str(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return ("  " + "  ".join(parts)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)]


def _short(query: str) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= QUERY_CHARS else flat[: QUERY_CHARS - 3] + "..."


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "never"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB"):
        if value < 1024:
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"


def render(found: Report | Overview) -> str:
    if isinstance(found, Overview):
        return f"Database report: not available. {found.reason}\n"
    r = found
    facts = r.overview.facts
    assert facts is not None
    out = [f"Database report: {facts.database} (PostgreSQL {facts.version_num // 10000})", ""]
    if r.notices:
        out.append("Notices")
        for notice in r.notices:
            about = f"[{notice.extension}] " if notice.extension else ""
            out.append(f"  {about}{notice.message}")
            if notice.how_to_enable:
                out.append(f"    to enable: {notice.how_to_enable}")
        out.append("")
    out.append("Slow queries (mean >= 20 ms, >= 100 calls; pghero)")
    out += _table(
        ["calls", "mean ms", "total ms", "share", "rows", "hit", "query"],
        [
            [
                q.calls,
                round(q.mean_ms, 1),
                round(q.total_ms),
                _ratio(q.share_of_time),
                q.rows,
                _ratio(q.hit_ratio),
                _short(q.query),
            ]
            for q in r.slow_queries
        ],
        empty="none",
    )
    out += ["", "Index suggestions (HypoPG: plan cost at least halved; dexter)"]
    out += _table(
        ["table", "columns", "cost before", "cost after"],
        [
            [s.table, ", ".join(s.columns), round(s.cost_before, 1), round(s.cost_after, 1)]
            for s in r.index_suggestions
        ],
        empty="none",
    )
    for s in r.index_suggestions:
        out += [f"  {s.create_statement} helps:"] + [f"    {_short(q)}" for q in s.queries]
    out += ["", "Unused indexes (<= 50 scans, not unique; pghero)"]
    out += _table(
        ["table", "index", "size", "scans"],
        [[u.table, u.index, _size(u.size_bytes), u.scans] for u in r.unused_indexes],
        empty="none",
    )
    out += ["", "Duplicate indexes"]
    out += _table(
        ["table", "index", "covered by"],
        [[d.table, d.index, d.covered_by] for d in r.duplicate_indexes],
        empty="none",
    )
    out += ["", "Tables (most dead rows first)"]
    out += _table(
        ["table", "live rows", "dead rows", "last vacuum", "last analyze", "vacuum", "analyze"],
        [
            [
                t.name,
                t.live_rows,
                t.dead_rows,
                _when(t.last_vacuum),
                _when(t.last_analyze),
                "due" if t.vacuum_due else "ok",
                "due" if t.analyze_due else "ok",
            ]
            for t in r.tables
        ],
        empty="no tables",
    )
    c = r.connections
    hit = r.cache_hit_ratio
    low = hit is not None and hit < CACHE_HIT_RATE_THRESHOLD
    left = TRANSACTION_ID_WRAPAROUND - r.transaction_id_age
    danger = f"  (DANGER: {left:,} left before wraparound)" if left < TRANSACTION_ID_DANGER else ""
    out += [
        "",
        "Server",
        f"  cache hit ratio     {_ratio(hit)}{'  (below 99%: low)' if low else ''}",
        f"  connections         {c.active} active, {c.idle} idle, "
        f"{c.idle_in_transaction} idle in transaction, of {c.max}",
        f"  transaction id age  {r.transaction_id_age:,}{danger}",
        "",
        "Sequences near their limit (> 90%; pghero)",
    ]
    out += _table(
        ["sequence", "used"],
        [[s.name, f"{s.percent_used:.1f}%"] for s in r.sequences_near_limit],
        empty="none",
    )
    return "\n".join(out) + "\n"
