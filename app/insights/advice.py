"""Index suggestions by dexter's method (ankane/dexter, lib/dexter/indexer.rb), on the
statements pg_stat_statements ranks highest.

For each statement, normalised with `$n` for its constants: its generic plan and cost
(`PlanningSession.generic_plan`); the columns its plan filters, joins, sorts or groups on
(dexter reads them from the parsed query; here they come from the plan's conditions, which
EXPLAIN VERBOSE qualifies with their table's alias, so no SQL parser is needed); then, as
dexter does, hypothetical indexes (HypoPG) on every candidate column, the plans again, then
two-column indexes of the columns a statement uses together, the plans again. A statement
keeps the hypothetical index its cheaper plan uses when it cuts the cost by at least half,
unless an existing btree index already starts with those columns. Each kept index is then
checked alone (dexter's third pass): the costs reported are of the statement with that one
hypothetical index and no other.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.insights.thresholds import (
    INDEX_MIN_COST_SAVINGS,
    INDEX_MIN_STATEMENT_COST,
    INDEX_MIN_TWO_COLUMN_COST,
)
from db.repositories.insights import (
    PlanningError,
    PlanningSession,
    StatementStats,
    index_statement,
)

Column = tuple[str, str]
"""(schema.table, column)"""
Index = tuple[str, tuple[str, ...]]
"""(schema.table, columns)"""

_CONDITIONS = (
    "Filter",
    "Index Cond",
    "Recheck Cond",
    "Hash Cond",
    "Merge Cond",
    "Join Filter",
    "Sort Key",
    "Presorted Key",
    "Group Key",
)
_IDENTIFIER = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_REFERENCE = re.compile(rf"({_IDENTIFIER})\.({_IDENTIFIER})")
_UNINDEXABLE_TYPES = frozenset({"json", "jsonb"})
"""dexter: no btree index for JSON columns."""


@dataclass(frozen=True, slots=True)
class IndexSuggestion:
    table: str
    columns: tuple[str, ...]
    create_statement: str
    cost_before: float
    """Sum of the plan costs of `queries` as they are..."""
    cost_after: float
    """...and with this index alone (hypothetical)."""
    queries: list[str]


@dataclass
class _Statement:
    stats: StatementStats
    cost: float
    columns: set[Column]
    passes: list[Any] = field(default_factory=list)
    """Plans of pass 1 (single-column indexes) and pass 2 (two-column ones too)."""


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def _nodes(plan: Any) -> Iterator[dict[str, Any]]:
    if isinstance(plan, dict):
        yield plan
        for child in plan.get("Plans") or ():
            yield from _nodes(child)


def referenced_columns(plan: dict[str, Any]) -> set[Column]:
    """(schema.table, column) the plan's conditions and keys mention: the candidates. The
    caller drops those that are no table's column (a function's name, a string's text)."""
    root = plan["Plan"]
    tables: dict[str, set[str]] = {}
    for node in _nodes(root):
        if "Relation Name" in node and "Alias" in node:
            table = f"{node.get('Schema', 'public')}.{node['Relation Name']}"
            tables.setdefault(node["Alias"], set()).add(table)
    found: set[Column] = set()
    for node in _nodes(root):
        for key in _CONDITIONS:
            value = node.get(key)
            texts = value if isinstance(value, list) else [value] if value else []
            for text in texts:
                for alias, column in _REFERENCE.findall(str(text)):
                    for table in tables.get(_unquote(alias), ()):
                        found.add((table, _unquote(column)))
    return found


def _cost(plan: Any) -> float:
    return float(plan["Plan"]["Total Cost"])


def _index_names(plan: Any) -> set[str]:
    return {n["Index Name"] for n in _nodes(plan["Plan"]) if "Index Name" in n}


class _Budget:
    def __init__(self, seconds: float) -> None:
        self._until = time.monotonic() + seconds
        self.exhausted = False

    def spent(self) -> bool:
        if time.monotonic() > self._until:
            self.exhausted = True
        return self.exhausted


async def _plan(session: PlanningSession, query: str) -> Any | None:
    try:
        return await session.generic_plan(query)
    except PlanningError:
        return None  # no longer plans (a dropped table, a type it cannot infer): skip


async def _hypothetical(session: PlanningSession, index: Index) -> str | None:
    try:
        return await session.hypothetical_index(*index)
    except PlanningError:
        return None  # a type btree cannot index (a point, an array of rows): no candidate


async def suggest_indexes(
    session: PlanningSession, statements: Sequence[StatementStats], *, budget_s: float
) -> tuple[list[IndexSuggestion], bool]:
    """Suggestions, best saving first, and whether the time budget cut the work short.
    Needs HypoPG in the session's database."""
    budget = _Budget(budget_s)
    await session.reset_hypothetical()
    candidates: list[_Statement] = []
    for stats in statements:
        if budget.spent():
            break
        plan = await _plan(session, stats.query)
        if plan is None or _cost(plan) < INDEX_MIN_STATEMENT_COST:
            continue
        candidates.append(_Statement(stats, _cost(plan), referenced_columns(plan)))
    tables = sorted({table for c in candidates for table, _ in c.columns})
    if not tables:
        return [], budget.exhausted
    indexable = {
        (row.table, row.column)
        for row in await session.columns(tables)
        if row.type not in _UNINDEXABLE_TYPES
    }
    for candidate in candidates:
        candidate.columns &= indexable
    candidates = [c for c in candidates if c.columns]

    names: dict[str, Index] = {}
    singles = sorted({(t, (c,)) for s in candidates for t, c in s.columns})
    pairs = sorted(
        {
            (a[0], (a[1], b[1]))
            for s in candidates
            for a, b in itertools.permutations(sorted(s.columns), 2)
            if a[0] == b[0]
        }
    )
    for round_indexes in (singles, pairs):
        for index in round_indexes:
            name = await _hypothetical(session, index)
            if name is not None:
                names[name] = index
        for candidate in candidates:
            if budget.spent():
                break
            candidate.passes.append(await _plan(session, candidate.stats.query))

    covered: set[Index] = set()
    for table, columns in await session.btree_indexes(tables):
        covered.update({(table, columns[:1]), (table, columns[:2])})
    chosen = [(c, _chosen(c, names, covered)) for c in candidates]
    await session.reset_hypothetical()
    return _confirmed(await _alone(session, chosen, budget)), budget.exhausted


def _used(plan: Any, names: dict[str, Index], covered: set[Index]) -> list[Index]:
    if plan is None:
        return []
    used = [names[n] for n in sorted(_index_names(plan)) if n in names]
    return [index for index in dict.fromkeys(used) if index not in covered]


def _chosen(candidate: _Statement, names: dict[str, Index], covered: set[Index]) -> list[Index]:
    """dexter's determine_indexes: the hypothetical indexes worth trying for a statement."""
    if len(candidate.passes) < 2 or None in candidate.passes:
        return []
    cost1, cost2 = (_cost(p) for p in candidate.passes)
    ratio = 1 - INDEX_MIN_COST_SAVINGS
    single = cost1 < candidate.cost * ratio
    double = cost1 > INDEX_MIN_TWO_COLUMN_COST and cost2 < cost1 * ratio
    used = _used(candidate.passes[1 if double else 0], names, covered)
    if double and len(used) > 1:  # likely a bad suggestion: try the single-column ones
        used, double = _used(candidate.passes[0], names, covered), False
    return used if single or double else []


async def _alone(
    session: PlanningSession, chosen: list[tuple[_Statement, list[Index]]], budget: _Budget
) -> list[tuple[_Statement, Index, float]]:
    """dexter's third pass, for every statement: each index it would use, alone; the
    cheapest wins."""
    results: list[tuple[_Statement, Index, float]] = []
    for candidate, indexes in chosen:
        best: tuple[float, Index] | None = None
        for index in indexes:
            if budget.spent():
                return results
            if await _hypothetical(session, index) is None:
                continue
            plan = await _plan(session, candidate.stats.query)
            await session.reset_hypothetical()
            if plan is not None and (best is None or _cost(plan) < best[0]):
                best = (_cost(plan), index)
        if best is not None:
            results.append((candidate, best[1], best[0]))
    return results


def _confirmed(results: list[tuple[_Statement, Index, float]]) -> list[IndexSuggestion]:
    by_index: dict[Index, list[tuple[_Statement, float]]] = {}
    for candidate, index, cost in results:
        if cost <= candidate.cost * (1 - INDEX_MIN_COST_SAVINGS):
            by_index.setdefault(index, []).append((candidate, cost))
    # dexter: a two-column suggestion covers the single-column one on its first column.
    prefixes = {(table, columns[:1]) for table, columns in by_index if len(columns) > 1}
    suggestions = []
    for (table, columns), uses in by_index.items():
        if (table, columns) in prefixes:
            continue
        uses.sort(key=lambda u: -u[0].stats.total_ms)
        suggestions.append(
            IndexSuggestion(
                table=table.removeprefix("public."),  # as a search_path of public shows it
                columns=columns,
                create_statement=index_statement(table, columns, concurrently=True),
                cost_before=sum(u[0].cost for u in uses),
                cost_after=sum(u[1] for u in uses),
                queries=[u[0].stats.query for u in uses],
            )
        )
    suggestions.sort(key=lambda s: (s.cost_after - s.cost_before, s.table, s.columns))
    return suggestions
