"""Logging policy for errors: domain errors are answers, not incidents."""

from __future__ import annotations

from graphql import GraphQLError
from strawberry import Schema
from strawberry.types import ExecutionContext

from app.errors import DomainError


class PropintelSchema(Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # A bad cursor or id is the client's mistake, reported to it with a code; logging a
        # traceback for each would bury the errors that are ours.
        unexpected = [e for e in errors if not isinstance(e.original_error, DomainError)]
        if unexpected:
            super().process_errors(unexpected, execution_context)
