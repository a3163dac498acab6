"""Errors clients can act on. Each carries `extensions.code`; anything else is a bug and is
reported as INTERNAL_SERVER_ERROR (with its message hidden in the prod profile)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from graphql import GraphQLError


class ErrorCode(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RATE_LIMITED = "RATE_LIMITED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


CLIENT_FAULTS = frozenset(
    {
        ErrorCode.BAD_USER_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.CONFLICT,
        ErrorCode.FORBIDDEN,
        ErrorCode.UNAUTHENTICATED,
        ErrorCode.RATE_LIMITED,
        ErrorCode.QUERY_TOO_COMPLEX,
        ErrorCode.GRAPHQL_PARSE_FAILED,
        ErrorCode.GRAPHQL_VALIDATION_FAILED,
    }
)
"""Codes the request caused: the same request would fail again however well we run.
The rest (INTERNAL_SERVER_ERROR, SERVICE_UNAVAILABLE, and any code not listed here yet)
are our fault: they page (propintel_graphql_requests_total{outcome="error"})."""


def server_side(code: str) -> bool:
    """Whether an error with this `extensions.code` is ours rather than the request's."""
    return code not in CLIENT_FAULTS


class DomainError(GraphQLError):
    code: ErrorCode = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": self.code.value, **extensions})


class UserInputError(DomainError):
    """The request asked for something impossible: a bad cursor, id, range or page size."""

    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        if argument is None:
            super().__init__(message)
        else:
            super().__init__(message, argument=argument)


class NotFoundError(DomainError):
    code = ErrorCode.NOT_FOUND


class ConflictError(DomainError):
    """The write contradicts what is stored (e.g. a dealing already recorded)."""

    code = ErrorCode.CONFLICT


class ForbiddenError(DomainError):
    code = ErrorCode.FORBIDDEN

    def __init__(self, message: str = "This operation needs the ADMIN role.") -> None:
        super().__init__(message)


class UnauthenticatedError(DomainError):
    """The operation needs a signed-in user (or the credential given is not valid)."""

    code = ErrorCode.UNAUTHENTICATED

    def __init__(self, message: str = "Sign in first: this operation needs a user.") -> None:
        super().__init__(message)
