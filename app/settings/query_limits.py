"""Per-role query limits as settings: `PROPINTEL_QUERY_LIMITS_<ROLE>` holds a JSON object of the
limits to change (`{"max_depth": 12}`); the others keep the role's defaults."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

RoleName = Literal["anonymous", "user", "admin"]

MAX_VALIDATION_ERRORS = 20
"""Validation stops after this many errors of one operation and adds one saying so
(graphql-core's `max_errors`), so one request's answer holds at most this many + 1 per
operation of its batch, however many mistakes its document makes."""


class QueryLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_depth: int = Field(ge=1, le=200)
    """Nesting of selection sets (fragments followed)."""
    max_aliases: int = Field(ge=0, le=100_000)
    max_tokens: int = Field(ge=10, le=1_000_000)
    """Lexical tokens of the document; the parser stops counting past it."""
    max_fields: int = Field(ge=1, le=1_000_000)
    """Field selections, duplicates included (field duplication attacks)."""
    max_directives: int = Field(ge=0, le=100_000)
    """Directives, counted twice against it: every `@` of the document (unknown directives,
    those on variable definitions and in fragments or operations that do not run included:
    validation reports an error for each), and those the chosen operation applies with its
    fragments inlined."""
    max_batch: int = Field(ge=1, le=100)
    """Operations in one HTTP request (a JSON array is a batch)."""
    max_cost: int = Field(ge=1, le=100_000_000)
    """Objects a query may ask for: each field costs the product of the page sizes (`first`)
    of the connections above it, so `properties(first: 100) { sales(first: 50) }` costs
    100 + 100 x 50."""
    max_query_bytes: int = Field(ge=100, le=10_000_000)

    @classmethod
    def for_role(cls, role: RoleName) -> QueryLimits:
        return DEFAULTS[role]


# Directives: the schema's only executable directives are @include and @skip, one per field a
# client shows or hides, so an honest document needs a few (a form with many optional parts is
# better sent as the queries it needs). Every role stays below 10, the count of graphql-cop's
# directive-overloading probes (`__typename @aa x 10`, and `@skip(if: true)` x 10 upwards), so
# each is refused with one QUERY_TOO_COMPLEX error, never answered with one error per directive.
DEFAULTS: dict[RoleName, QueryLimits] = {
    "anonymous": QueryLimits(
        max_depth=10,
        max_aliases=30,
        max_tokens=2_000,
        max_fields=400,
        max_directives=4,
        max_batch=5,
        max_cost=10_000,
        max_query_bytes=20_000,
    ),
    "user": QueryLimits(
        max_depth=12,
        max_aliases=60,
        max_tokens=5_000,
        max_fields=800,
        max_directives=6,
        max_batch=10,
        max_cost=50_000,
        max_query_bytes=50_000,
    ),
    "admin": QueryLimits(
        max_depth=15,
        max_aliases=200,
        max_tokens=20_000,
        max_fields=2_000,
        max_directives=8,
        max_batch=20,
        max_cost=500_000,
        max_query_bytes=200_000,
    ),
}


def _merged_onto(role: RoleName) -> Any:
    def merge(value: Any) -> Any:
        if isinstance(value, str | bytes):
            value = json.loads(value)
        if isinstance(value, dict):
            return {**DEFAULTS[role].model_dump(), **value}
        return value

    return BeforeValidator(merge)


AnonymousLimits = Annotated[QueryLimits, _merged_onto("anonymous")]
UserLimits = Annotated[QueryLimits, _merged_onto("user")]
AdminLimits = Annotated[QueryLimits, _merged_onto("admin")]
