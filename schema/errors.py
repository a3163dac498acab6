"""Logging policy for errors: domain errors are answers, not incidents."""

from __future__ import annotations

from graphql import GraphQLError
from strawberry import Schema
from strawberry.types import ExecutionContext


class PropintelSchema(Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # A bad cursor or id, a syntax or validation error, is the client's mistake,
        # reported to it with a code; logging each would bury the errors that are ours.
        unexpected = [
            e
            for e in errors
            # Domain errors and graphql-core's own (coercion) errors are GraphQLErrors.
            if e.original_error is not None and not isinstance(e.original_error, GraphQLError)
        ]
        if unexpected:
            super().process_errors(unexpected, execution_context)
