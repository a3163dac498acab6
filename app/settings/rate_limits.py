"""A rate limit setting is a `limits` expression: `600/minute`, `10/second;1000/hour`."""

from __future__ import annotations

from typing import Annotated

from limits import parse_many
from pydantic import AfterValidator


def _parses(value: str) -> str:
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items:
        raise ValueError(f"{value!r} is not a rate limit (examples: 600/minute, 10/second)")
    return value


RateLimit = Annotated[str, AfterValidator(_parses)]
