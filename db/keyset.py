"""Keyset pagination: orders, opaque cursors, and the WHERE clause that resumes after one.

A cursor is base64url(JSON [order name, sort values...]). It names its order, so a cursor from
one ordering used with another is refused instead of silently skipping rows. No OFFSET anywhere:
every page is an index range scan that starts where the last one ended.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar

import orjson
import sqlalchemy as sa

from db.records import Edge, Page, PageInfo

R = TypeVar("R")


ORDERS: dict[str, KeysetOrder[Any]] = {}
"""Every order by name (cursors and cached pages name their order)."""


class InvalidCursor(ValueError):
    pass


INT64 = (-(2**63), 2**63 - 1)
"""Every integer a cursor carries is a BIGINT column's (ids, prices): past these the driver
refuses the parameter, so such a cursor was never issued."""


def _parse_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCursor("expected an integer")
    if not INT64[0] <= value <= INT64[1]:
        raise InvalidCursor("an integer out of range")
    return value


def _parse_date(value: Any) -> date:
    if not isinstance(value, str):
        raise InvalidCursor("expected a date")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidCursor("expected a date") from None


def _parse_str(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidCursor("expected a string")
    return value


PARSERS: dict[type, Callable[[Any], Any]] = {int: _parse_int, date: _parse_date, str: _parse_str}


@dataclass(frozen=True)
class KeysetOrder(Generic[R]):
    """A total order over rows: columns (all ascending or all descending, last one unique),
    the record attributes holding the same values, and their types for cursor checks."""

    name: str
    columns: Sequence[sa.ColumnElement[Any]]
    attributes: Sequence[str]
    types: Sequence[type]
    descending: bool = False

    def order_by(self) -> list[sa.ColumnElement[Any]]:
        return [c.desc() if self.descending else c.asc() for c in self.columns]

    def after(self, values: Sequence[Any]) -> sa.ColumnElement[bool]:
        """Rows strictly after `values` in this order (a row-value comparison the index serves)."""
        left = sa.tuple_(*self.columns)
        right = sa.tuple_(*[sa.literal(v) for v in values])
        return left < right if self.descending else left > right

    def after_parameters(self) -> sa.ColumnElement[bool]:
        """`after` with bind parameters (after_0, after_1, ...), for statements built once."""
        left = sa.tuple_(*self.columns)
        right = sa.tuple_(
            *[sa.bindparam(f"after_{i}", type_=c.type) for i, c in enumerate(self.columns)]
        )
        return left < right if self.descending else left > right

    def parameter_values(self, values: Sequence[Any]) -> dict[str, Any]:
        return {f"after_{i}": value for i, value in enumerate(values)}

    def values_of(self, record: R) -> list[Any]:
        return [getattr(record, attribute) for attribute in self.attributes]

    def __post_init__(self) -> None:
        if ORDERS.setdefault(self.name, self) is not self:
            raise ValueError(f"two keyset orders named {self.name!r}")

    def encode(self, record: R) -> str:
        # orjson writes dates as ISO strings, compactly, as json.dumps with separators would.
        raw = orjson.dumps([self.name, *self.values_of(record)])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, cursor: str) -> list[Any]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            payload = json.loads(raw)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidCursor("not a cursor this API issued") from None
        if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
            raise InvalidCursor("not a cursor this API issued")
        if payload[0] != self.name:
            raise InvalidCursor(f"this cursor belongs to order {payload[0]!r}, not {self.name!r}")
        if len(payload) != len(self.types) + 1:
            raise InvalidCursor("not a cursor this API issued")
        return [PARSERS[t](v) for t, v in zip(self.types, payload[1:], strict=True)]


def build_page(
    records: Sequence[R], *, first: int, order: KeysetOrder[R], after: str | None
) -> Page[R]:
    """`records` holds up to first + 1 rows: the extra one only tells there is a next page."""
    shown = records[:first]
    edges = [Edge(r, order) for r in shown]
    return Page(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(records) > first,
            # Forward-only pagination: a page fetched after a cursor has rows before it.
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
