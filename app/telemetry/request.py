"""What one request did, for its access-log line, its metrics and its span.

The HTTP edge (app/http/observe.py) opens a record per request; the gate, the view and the
executor fill in what they learn (role, operation, cache result, errors); the database
handle counts statements into it. A context variable carries it, so nothing in between
passes it along. Outside a request (jobs, the CLI) there is no record and writes are no-ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar

UNKNOWN = "unknown"


class RequestRecord:
    """Made once per request on the hot path: a plain class whose defaults live on the class,
    so making one sets four attributes (a slotted dataclass set all twelve, ~1,000 more
    instructions per request)."""

    role: str | None = None
    operation_type: str | None = None
    """query, mutation or subscription (None: not a GraphQL request, or not parsed)."""
    operation_name: str | None = None
    """As the client named it (logs); metrics name it only when it is allow-listed."""
    outcome: str | None = None
    """ok (no errors); error (an error is ours: app/errors.py `server_side`, e.g.
    INTERNAL_SERVER_ERROR, SERVICE_UNAVAILABLE); client_error (errors, all caused by the
    request: bad input, not found, forbidden...); rejected (refused before execution: the
    gate's limits, credentials); None: not a GraphQL request."""
    cache: str | None = None
    """hit, miss or stale: the whole-operation cache's answer, when it was asked."""
    executor: str | None = None
    """compiled, fallback or standard."""
    cost: int | None = None
    sql_statements: int = 0
    error_codes: Sequence[str] = ()
    """The errors' codes, in order: a shared empty tuple until `note_errors` (most requests
    have none, and a list per request costs an allocation on the hot path)."""

    def __init__(self, request_id: bytes, method: str, path: str) -> None:
        """`request_id`: ASCII, as the response's `X-Request-ID` carries it (app/http/observe.py:
        only safe characters), kept as bytes: the header and the JSON access line take it as
        is; a line rendered through structlog decodes it."""
        self.request_id = request_id
        self.method = method
        self.path = path

    def note_errors(self, *codes: str) -> None:
        self.error_codes = [*self.error_codes, *codes]

    def __repr__(self) -> str:
        return f"RequestRecord({', '.join(f'{name}={getattr(self, name)!r}' for name in FIELDS)})"


FIELDS = (
    "request_id",
    "method",
    "path",
    "role",
    "operation_type",
    "operation_name",
    "outcome",
    "cache",
    "executor",
    "error_codes",
    "cost",
    "sql_statements",
)
"""Every field of a record, in the access line's order."""


current_request: ContextVar[RequestRecord | None] = ContextVar("current_request", default=None)


def record() -> RequestRecord | None:
    return current_request.get()


def count_statement() -> None:
    request = current_request.get()
    if request is not None:
        request.sql_statements += 1
