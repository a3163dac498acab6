"""The database advisor's fields (admin): `databaseInsights` and `explainOperation`.

Anonymous callers get UNAUTHENTICATED, signed-in ones without the ADMIN role FORBIDDEN.
`databaseInsights` reads each part of its report only when it is selected; index
suggestions, the costly part, are worked out first when selected, so the notices they raise
are in the same answer.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from strawberry.scalars import JSON
from strawberry.types.graphql import OperationType as StrawberryOperationType
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from app.auth.principal import Via
from app.cache import PassThrough
from app.context import Context, Info
from app.errors import ForbiddenError, UnauthenticatedError, UserInputError
from app.insights.advice import IndexSuggestion
from app.insights.explain import ExplainedStatement, explain_statements
from app.insights.service import (
    DatabaseAdvisor,
    DuplicateIndex,
    Notice,
    Overview,
    SequenceUsage,
    TableMaintenance,
    UnusedIndex,
)
from app.insights.thresholds import DEFAULT_LIST, MAX_LIST
from db.engine import count_statements
from db.repositories.insights import ConnectionCounts, StatementStats
from loaders import create_loaders
from schema.extensions import SqlStatementCount

PASS_THROUGH = PassThrough()
_explaining: ContextVar[bool] = ContextVar("explaining", default=False)


def require_admin(info: Info) -> None:
    principal = info.context.principal
    if principal.is_admin:
        return
    if principal.via is Via.ANONYMOUS and not principal.bootstrap:
        raise UnauthenticatedError("Sign in first: the database advisor needs the ADMIN role.")
    raise ForbiddenError()


def _first(first: int) -> int:
    if not 0 <= first <= MAX_LIST:
        raise UserInputError(f"`first` must be 0 to {MAX_LIST}, got {first}", argument="first")
    return first


@dataclass(slots=True)
class Insights:
    """The root of `DatabaseInsights`."""

    advisor: DatabaseAdvisor
    overview: Overview
    suggestions: list[IndexSuggestion] | None
    notices: list[Notice]

    @property
    def available(self) -> bool:
        return self.overview.available

    @property
    def reason(self) -> str | None:
        return self.overview.reason


def _selects(selections: Iterable[Selection], name: str) -> bool:
    for selection in selections:
        if isinstance(selection, SelectedField) and selection.name == name:
            return True
        if isinstance(selection, FragmentSpread | InlineFragment | SelectedField) and _selects(
            selection.selections, name
        ):
            return True
    return False


async def database_insights(info: Info) -> Insights:
    require_admin(info)
    advisor = DatabaseAdvisor(info.context.db)
    overview = await advisor.overview()
    notices = list(overview.notices)
    suggestions = None
    if overview.available and _selects(info.selected_fields, "indexSuggestions"):
        found = await advisor.index_suggestions(overview, MAX_LIST)
        suggestions = found.suggestions
        notices += found.notices
    return Insights(advisor, overview, suggestions, notices)


async def slow_queries(root: Insights, first: int = DEFAULT_LIST) -> list[StatementStats]:
    first = _first(first)
    if not root.available:
        return []
    return await root.advisor.slow_queries(root.overview, first)


async def unused_indexes(root: Insights, first: int = DEFAULT_LIST) -> list[UnusedIndex]:
    first = _first(first)
    return await root.advisor.unused_indexes(first) if root.available else []


async def duplicate_indexes(root: Insights, first: int = DEFAULT_LIST) -> list[DuplicateIndex]:
    first = _first(first)
    return await root.advisor.duplicate_indexes(first) if root.available else []


async def index_suggestions(root: Insights, first: int = DEFAULT_LIST) -> list[IndexSuggestion]:
    first = _first(first)
    return (root.suggestions or [])[:first]


async def tables(root: Insights, first: int = DEFAULT_LIST) -> list[TableMaintenance]:
    first = _first(first)
    return await root.advisor.tables(first) if root.available else []


async def cache_hit_ratio(root: Insights) -> float | None:
    return await root.advisor.cache_hit_ratio() if root.available else None


async def connections(root: Insights) -> ConnectionCounts | None:
    return await root.advisor.connections() if root.available else None


async def sequences_near_limit(root: Insights, first: int = DEFAULT_LIST) -> list[SequenceUsage]:
    first = _first(first)
    return await root.advisor.sequences_near_limit(first) if root.available else []


async def transaction_id_age(root: Insights) -> int | None:
    return await root.advisor.transaction_id_age() if root.available else None


# ------------------------------------------------------------------ explainOperation


@dataclass(frozen=True, slots=True)
class ExplainedOperation:
    dialect: str
    data: Any
    errors: list[dict[str, Any]] | None
    statements: list[ExplainedStatement]


_quiet_schemas: weakref.WeakKeyDictionary[strawberry.Schema, strawberry.Schema] = (
    weakref.WeakKeyDictionary()
)


def _without_statement_count(schema: strawberry.Schema) -> strawberry.Schema:
    """The same schema without SqlStatementCount: that extension opens a statement log of
    its own for the operation, which would hide the statements from ours."""
    quiet = _quiet_schemas.get(schema)
    if quiet is None:
        quiet = copy.copy(schema)
        quiet.extensions = tuple(e for e in schema.extensions if e is not SqlStatementCount)
        _quiet_schemas[schema] = quiet
    return quiet


def _uncached(context: Context) -> Context:
    """The request's context with every cache bypassed: the operation's statements all run."""
    return dataclasses.replace(
        context,
        cache=PASS_THROUGH,
        caching=None,
        scope=None,
        loaders=create_loaders(context.db, PASS_THROUGH, None),
        field_batches={},
    )


def _check_query(query: str, operation_name: str | None) -> None:
    try:
        document = parse(query)
    except GraphQLError as error:
        raise UserInputError(f"`query` does not parse: {error.message}", argument="query") from None
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        if operation_name is not None:
            raise UserInputError(
                f"`query` has no operation named {operation_name!r}", argument="operationName"
            )
        raise UserInputError(
            "`query` must hold one operation (or give `operationName`)", argument="query"
        )
    if operation.operation is not OperationType.QUERY:
        raise UserInputError(
            f"`query` is a {operation.operation.value}: explainOperation runs queries only "
            "(a mutation would change data, a subscription never ends)",
            argument="query",
        )


async def explain_operation(
    info: Info,
    query: str,
    variables: JSON | None = None,
    operation_name: str | None = None,
) -> ExplainedOperation:
    """Runs the query operation `query` (the cache bypassed) and explains every SQL
    statement it sent: EXPLAIN (FORMAT JSON), with ANALYZE and BUFFERS for reads, inside a
    transaction that is rolled back, each under a 5 s statement timeout (PostgreSQL);
    EXPLAIN QUERY PLAN on SQLite (admin)."""
    require_admin(info)
    if _explaining.get():
        raise UserInputError("explainOperation cannot explain itself", argument="query")
    _check_query(query, operation_name)
    if variables is not None and not isinstance(variables, dict):
        raise UserInputError("`variables` must be a JSON object", argument="variables")
    schema = _without_statement_count(info.schema)
    token = _explaining.set(True)
    try:
        with count_statements(with_parameters=True) as log:
            result = await schema.execute(
                query,
                variable_values=variables,
                context_value=_uncached(info.context),
                operation_name=operation_name,
                allowed_operation_types=(StrawberryOperationType.QUERY,),
            )
    finally:
        _explaining.reset(token)
    db = info.context.db
    statements = await explain_statements(db, log.statements, log.parameters or [])
    errors = [dict(error.formatted) for error in result.errors or ()] or None
    return ExplainedOperation(db.dialect, result.data, errors, statements)
