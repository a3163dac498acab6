"""Compiled execution of query documents (see plan.py and run.py); the standard executor
remains the reference and runs whatever a plan does not cover."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import strawberry
from graphql.validation import ASTValidationRule
from strawberry.extensions import AddValidationRules, ParserCache, SchemaExtension, ValidationCache
from strawberry.types import ExecutionResult

from app.context import Context
from app.graphql.plan import NoPlan, OperationPlan, compile_operation
from app.graphql.run import Fallback, execute_plan
from app.resilience.dependency import ServiceUnavailable
from app.telemetry import metrics
from app.telemetry.labels import BatchedCounter
from app.telemetry.request import current_request
from db.engine import count_statements
from schema.extensions import SqlStatementCount

logger = logging.getLogger("propintel.execution")

# Schema extensions whose effect a plan reproduces: caches of parsing and validation (pure),
# extra validation rules (a plan validates with them too), the statement count (a plan
# reports it itself). Any other extension may hook resolution or results, so a schema that
# has one is never planned.
_PLAN_SAFE_EXTENSIONS = (ParserCache, ValidationCache, AddValidationRules, SqlStatementCount)

COMPILED, FALLBACK, STANDARD = "compiled", "fallback", "standard"
_RAN = BatchedCounter(metrics.executor_operations)
"""`executor_operations` by path (a fixed set of three), written in batches
(app/telemetry/labels.py)."""


def ran(path: str) -> None:
    """Counts an operation by how it ran (`executor_operations`) and notes it in the
    request's record. The view reports STANDARD (Strawberry ran it without a plan); the
    compiled executor reports COMPILED and FALLBACK. Whole-operation cache hits ran nothing
    and are not counted."""
    _RAN.add(1, path)
    request = current_request.get()
    if request is not None:
        request.executor = path


@dataclass(slots=True)
class ExecutionCounts:
    compiled: int = 0
    """Operations answered by a plan."""
    fallbacks: int = 0
    """Operations a plan started and handed to the standard executor (errors included)."""
    unplanned: Counter[str] = field(default_factory=Counter)
    """Operations the standard executor ran without a plan, by the planner's reason."""


class CompiledExecutor:
    def __init__(
        self, schema: strawberry.Schema, *, report_statements: bool, plan_cache_size: int = 512
    ) -> None:
        self.schema = schema
        self.report_statements = report_statements
        self.counts = ExecutionCounts()
        rules, refused = _plan_validation_rules(schema.get_extensions())
        if refused:
            logger.warning("compiled plans are off: schema extension %s is not plan-safe", refused)

        # Keyed by the document text: clients send the same few documents over and over.
        @lru_cache(maxsize=plan_cache_size)
        def plan(query: str, operation_name: str | None) -> OperationPlan | NoPlan:
            if refused:
                return NoPlan(f"schema extension {refused}")
            return compile_operation(schema, query, operation_name, rules)

        self._plan = plan

    def plan(self, query: str, operation_name: str | None) -> OperationPlan | None:
        """The document's plan; None (counted, with the reason) when Strawberry must run it."""
        found = self._plan(query, operation_name)
        if isinstance(found, NoPlan):
            self.counts.unplanned[found.reason] += 1
            return None
        return found

    async def execute(
        self, plan: OperationPlan, context: Context, variables: dict[str, Any] | None
    ) -> ExecutionResult | None:
        """The result, or None when the standard executor must run the operation."""
        try:
            if not self.report_statements:
                data = await execute_plan(plan, self.schema, context, variables)
                self.counts.compiled += 1
                ran(COMPILED)
                return ExecutionResult(data=data, errors=None)
            with count_statements() as log:
                data = await execute_plan(plan, self.schema, context, variables)
            self.counts.compiled += 1
            ran(COMPILED)
            return ExecutionResult(data=data, errors=None, extensions={"sqlStatements": log.count})
        except ServiceUnavailable as error:
            # A dependency is down or slow: running the operation again would only wait
            # again. Answer now, with the code and the retry hint.
            self.counts.compiled += 1
            ran(COMPILED)
            return ExecutionResult(data=None, errors=[error])
        except Exception as error:  # the standard executor reports it, with its path and code
            self.counts.fallbacks += 1
            ran(FALLBACK)
            if not isinstance(error, Fallback):
                logger.debug("compiled plan fell back: %r", error)
            return None


def _plan_validation_rules(
    extensions: Sequence[SchemaExtension],
) -> tuple[list[type[ASTValidationRule]], str | None]:
    """The validation rules extensions add, and the first extension a plan cannot honour
    (Strawberry's own directive extension included: a schema with custom directives)."""
    rules: list[type[ASTValidationRule]] = []
    for extension in extensions:
        if not isinstance(extension, _PLAN_SAFE_EXTENSIONS):
            return [], type(extension).__name__
        if isinstance(extension, AddValidationRules):
            rules.extend(extension.validation_rules)
    return rules, None
