"""Caching: the two-tier entity cache (tiered.py) and the whole-operation cache (operations.py).

`Cache` is what loaders and resolvers call; `PassThrough` stands in when caching is off
(`PROPINTEL_CACHE_ENABLED=false`), so the read path has one shape either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from app.cache.resources import Resource
from app.cache.tiered import Loader, RequestScope, Tagger, TieredCache


class Cache(Protocol):
    async def fetch_many(
        self,
        resource: Resource,
        keys: Sequence[str],
        load: Loader,
        tags: Tagger,
        scope: RequestScope | None = None,
    ) -> list[Any]: ...


class PassThrough:
    async def fetch_many(
        self,
        resource: Resource,
        keys: Sequence[str],
        load: Loader,
        tags: Tagger,
        scope: RequestScope | None = None,
    ) -> list[Any]:
        return await load(list(range(len(keys))))


__all__ = ["Cache", "PassThrough", "RequestScope", "Resource", "TieredCache"]
