"""The whole-operation cache: responses of planned queries, keyed by document, operation name,
variables and role, and stored under every tag the operation read (its RequestScope), so a
write invalidates them exactly as it invalidates the entries they were built from."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

from app.cache.invalidation import LoadTicket
from app.cache.resources import Resource
from app.cache.tiered import MISSING, RequestScope, TieredCache


def operation_key(
    query: str, operation_name: str | None, variables: dict[str, Any] | None, role: str
) -> str:
    try:
        material = orjson.dumps(
            [query, operation_name, variables or {}, role], option=orjson.OPT_SORT_KEYS
        )
    except TypeError:
        # orjson refuses integers past 64 bits; the standard library does not (such a
        # variable is refused by coercion anyway, but the key comes first).
        material = json.dumps(
            [query, operation_name, variables or {}, role], sort_keys=True, default=repr
        ).encode()
    return hashlib.blake2b(material, digest_size=20).hexdigest()


class OperationCache:
    def __init__(self, tiered: TieredCache) -> None:
        self.tiered = tiered

    async def get(self, key: str) -> dict[str, Any] | None:
        value = await self.tiered.get(Resource.OPERATION, key)
        self.tiered.statistics.count_operation("miss" if value is MISSING else "hit")
        return None if value is MISSING else value

    async def get_stale(self, key: str) -> tuple[dict[str, Any], float] | None:
        """A cached response past its TTL (stale-if-error), with its age past the TTL."""
        value, age = await self.tiered.get_stale(Resource.OPERATION, key)
        if value is MISSING:
            return None
        self.tiered.statistics.count_operation("stale")  # served in place of an error
        return value, age

    def ticket(self) -> LoadTicket:
        """Taken before running the operation: `store` refuses its response if an
        invalidation came in between (the response may predate the write)."""
        return self.tiered.ticket()

    async def store(
        self, key: str, data: dict[str, Any], scope: RequestScope, ticket: LoadTicket
    ) -> None:
        await self.tiered.put(Resource.OPERATION, key, data, scope.tags, ticket)
