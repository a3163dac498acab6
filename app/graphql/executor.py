"""Compiled execution of query documents (see plan.py and run.py); the standard executor
remains the reference and runs whatever a plan does not cover."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import strawberry
from strawberry.types import ExecutionResult

from app.context import Context
from app.graphql.plan import OperationPlan, compile_operation
from app.graphql.run import Fallback, execute_plan
from app.resilience.dependency import ServiceUnavailable
from db.engine import count_statements

logger = logging.getLogger("propintel.execution")


@dataclass(slots=True)
class ExecutionCounts:
    compiled: int = 0
    """Operations answered by a plan."""
    fallbacks: int = 0
    """Operations a plan started and handed to the standard executor (errors included)."""


class CompiledExecutor:
    def __init__(
        self, schema: strawberry.Schema, *, report_statements: bool, plan_cache_size: int = 512
    ) -> None:
        self.schema = schema
        self.report_statements = report_statements
        self.counts = ExecutionCounts()

        # Keyed by the document text: clients send the same few documents over and over.
        @lru_cache(maxsize=plan_cache_size)
        def plan(query: str, operation_name: str | None) -> OperationPlan | None:
            return compile_operation(schema, query, operation_name)

        self.plan = plan

    async def execute(
        self, plan: OperationPlan, context: Context, variables: dict[str, Any] | None
    ) -> ExecutionResult | None:
        """The result, or None when the standard executor must run the operation."""
        try:
            if not self.report_statements:
                data = await execute_plan(plan, self.schema, context, variables)
                self.counts.compiled += 1
                return ExecutionResult(data=data, errors=None)
            with count_statements() as log:
                data = await execute_plan(plan, self.schema, context, variables)
            self.counts.compiled += 1
            return ExecutionResult(data=data, errors=None, extensions={"sqlStatements": log.count})
        except ServiceUnavailable as error:
            # A dependency is down or slow: running the operation again would only wait
            # again. Answer now, with the code and the retry hint.
            self.counts.compiled += 1
            return ExecutionResult(data=None, errors=[error])
        except Exception as error:  # the standard executor reports it, with its path and code
            self.counts.fallbacks += 1
            if not isinstance(error, Fallback):
                logger.debug("compiled plan fell back: %r", error)
            return None
