"""Per-request loaders of JSON built by PostgreSQL (db/repositories/json_pages.py), through the
cache like every loader: one statement per batch of parents, values stored per (shape, page
arguments, parent) with the tags the records' own loaders give them.

A value is the JSON text of one parent: bytes as the driver returned them when nothing
stores them (caching off), else str (the cache's codec stores strings, not bytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.cache import PassThrough, Resource
from db.repositories import json_pages
from db.repositories.json_pages import JsonQuery, PageParams
from loaders.base import GroupedLoader

JsonValue = bytes | str | None


@dataclass(eq=False, slots=True)
class JsonRequest:
    """One batch's shape and page arguments (compared by identity: one per batch call)."""

    query: JsonQuery
    nested: Mapping[int, PageParams]
    prefix: str
    """The cache key's prefix: the shape's fingerprint and the page arguments."""


@dataclass(frozen=True, slots=True)
class JsonKey:
    request: JsonRequest
    parent: int


class _JsonLoader(GroupedLoader[JsonKey, JsonRequest, JsonValue]):
    def cache_key(self, key: JsonKey) -> str:
        return f"{key.request.prefix}:{key.parent}"

    def tags(self, key: JsonKey, value: JsonValue) -> Iterable[str]:
        # The property and its sales: every write to either invalidates `property:<id>`.
        return (f"property:{key.parent}",)

    @staticmethod
    def arguments(key: JsonKey) -> JsonRequest:
        return key.request

    def _values(self, keys: Sequence[JsonKey], found: Mapping[int, bytes]) -> list[JsonValue]:
        if isinstance(self.read_through, PassThrough):
            return [found.get(key.parent) for key in keys]
        values: list[JsonValue] = []
        for key in keys:
            raw = found.get(key.parent)
            values.append(None if raw is None else raw.decode())
        return values


class PropertyJsonLoader(_JsonLoader):
    """Live properties by id, each with what the shape selects (its sales pages too)."""

    resource = Resource.PROPERTY

    async def fetch(self, keys: Sequence[JsonKey], arguments: JsonRequest) -> list[JsonValue]:
        found = await json_pages.properties_json_by_id(
            self.db, arguments.query, [k.parent for k in keys], arguments.nested
        )
        return self._values(keys, found)
