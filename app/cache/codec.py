"""Compact serialisation of cached values for Redis: records as JSON arrays, not pickles.

A value read back from Redis is data, never code (pickle would let anyone who can write to
Redis run code in the API). Records are encoded positionally with a type tag; dates travel as
ISO strings and are restored by position, so a cached page of 20 sales is ~2 KB.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from db.keyset import ORDERS
from db.records import (
    Edge,
    LocalityRecord,
    LocalityStatsRecord,
    Page,
    PageInfo,
    PropertyRecord,
    SaleRecord,
)

_RECORDS: dict[str, type[Any]] = {
    "P": PropertyRecord,
    "S": SaleRecord,
    "L": LocalityRecord,
    "T": LocalityStatsRecord,
}
_TAGS = {cls: tag for tag, cls in _RECORDS.items()}
_SCALARS = (str, int, float, bool)


def _date_positions(cls: type[Any]) -> tuple[int, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(
        position
        for position, field in enumerate(dataclasses.fields(cls))
        if date in (hints[field.name], *typing.get_args(hints[field.name]))
    )


_DATES = {tag: _date_positions(cls) for tag, cls in _RECORDS.items()}


def encode(value: Any) -> Any:
    if value is None:
        return None
    cls = type(value)
    if cls is Page:
        edges = value.edges
        order = edges[0].order.name if edges else ""
        return [
            "page",
            [encode(edge.node) for edge in edges],
            dataclasses.astuple(value.page_info),
            order,
        ]
    if cls is list:
        return ["list", [encode(item) for item in value]]
    if cls is dict or cls in _SCALARS:  # a GraphQL response (operation cache), a scalar
        return ["json", value]
    tag = _TAGS.get(cls)
    if tag is None:
        raise TypeError(f"cannot cache a {cls.__name__}")
    return [tag, [getattr(value, name) for name in cls.__slots__]]


def decode(encoded: Any) -> Any:
    if encoded is None:
        return None
    tag, body = encoded[0], encoded[1]
    if tag == "page":
        order = ORDERS[encoded[3]] if body else None
        return Page(
            edges=[Edge(decode(node), order) for node in body],  # type: ignore[arg-type]
            page_info=PageInfo(*encoded[2]),
        )
    if tag == "list":
        return [decode(item) for item in body]
    if tag == "json":
        return body
    for position in _DATES[tag]:
        if body[position] is not None:
            body[position] = date.fromisoformat(body[position])
    return _RECORDS[tag](*body)


def dumps(value: Any) -> bytes:
    return orjson.dumps(encode(value))


def loads(data: bytes) -> Any:
    return decode(orjson.loads(data))


Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]
