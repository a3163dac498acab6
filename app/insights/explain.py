"""Plans of the statements an operation ran (`explainOperation`).

On PostgreSQL every statement gets `EXPLAIN (FORMAT JSON)` with the values it was bound to;
reads get `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`, so they run again, inside a transaction
that is rolled back, each under a statement timeout. Statements are planned for their
values (plan_cache_mode = force_custom_plan), as the app's first executions of them are.
On SQLite: `EXPLAIN QUERY PLAN` (no costs, no timings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from app.insights.thresholds import PLANNING_TIMEOUT_MS
from db.engine import Database
from db.repositories import insights as repository
from db.repositories.insights import PlanningError

_READ = re.compile(r"^\s*(select|with|values|table)\b", re.IGNORECASE)
_WRITE = re.compile(
    r"\b(insert|update|delete|merge)\b|\bfor\s+(no\s+key\s+)?(update|share|key\s+share)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ExplainedStatement:
    sql: str
    parameters: list[Any] | None
    """The bound values, made JSON (dates in ISO 8601, decimals and UUIDs as strings)."""
    plan: Any
    analyzed: bool
    total_cost: float | None
    actual_ms: float | None
    error: str | None


def is_read(sql: str) -> bool:
    """A statement ANALYZE may run again: a SELECT (or WITH) that writes and locks nothing."""
    return bool(_READ.match(sql)) and not _WRITE.search(sql)


def json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [json_value(v) for v in value]
    return str(value)


def _positional(parameters: Any) -> list[Any] | None:
    """A statement's values as a list, or None when they are not one statement's
    positional values (an executemany's list of rows, named values)."""
    if parameters is None:
        return []
    if isinstance(parameters, Mapping):
        return None
    values = list(parameters)
    if values and all(isinstance(v, tuple | Mapping) for v in values):
        return None  # executemany
    return values


async def explain_statements(
    db: Database, statements: Sequence[str], parameters: Sequence[Any]
) -> list[ExplainedStatement]:
    if db.is_postgresql:
        return await _explain_postgresql(db, statements, parameters)
    return await _explain_sqlite(db, statements, parameters)


async def _explain_postgresql(
    db: Database, statements: Sequence[str], parameters: Sequence[Any]
) -> list[ExplainedStatement]:
    explained = []
    async with repository.planning_session(
        db, timeout_ms=PLANNING_TIMEOUT_MS, generic_plans=False
    ) as session:
        for sql, bound in zip(statements, parameters, strict=True):
            values = _positional(bound)
            shown = json_value(values) if values is not None else None
            if values is None:
                explained.append(
                    ExplainedStatement(
                        sql,
                        shown,
                        None,
                        False,
                        None,
                        None,
                        "not one statement's positional values: not explained",
                    )
                )
                continue
            analyze = is_read(sql)
            note = None
            try:
                plan = await session.explain(sql, values, analyze=analyze)
            except PlanningError as error:
                if not analyze:
                    explained.append(
                        ExplainedStatement(sql, shown, None, False, None, None, str(error))
                    )
                    continue
                # ANALYZE ran out of time (or failed running): the plan without it.
                note, analyze = f"not analyzed: {error}", False
                try:
                    plan = await session.explain(sql, values, analyze=False)
                except PlanningError as second:
                    explained.append(
                        ExplainedStatement(sql, shown, None, False, None, None, str(second))
                    )
                    continue
            explained.append(
                ExplainedStatement(
                    sql=sql,
                    parameters=shown,
                    plan=plan,
                    analyzed=analyze,
                    total_cost=float(plan["Plan"]["Total Cost"]),
                    actual_ms=float(plan["Execution Time"]) if analyze else None,
                    error=note,
                )
            )
    return explained


async def _explain_sqlite(
    db: Database, statements: Sequence[str], parameters: Sequence[Any]
) -> list[ExplainedStatement]:
    """EXPLAIN QUERY PLAN plans a statement without running it: every statement."""
    explained = []
    for sql, bound in zip(statements, parameters, strict=True):
        values = _positional(bound)
        shown = json_value(values) if values is not None else None
        plan, error = None, None
        if values is None:
            error = "not one statement's positional values: not explained"
        else:
            try:
                plan = await repository.sqlite_query_plan(db, sql, values)
            except PlanningError as failure:
                error = str(failure)
        explained.append(ExplainedStatement(sql, shown, plan, False, None, None, error))
    return explained
