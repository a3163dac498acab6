"""Caching: the two-tier entity cache and the whole-operation cache.

`Cache` is what loaders and resolvers call; `PassThrough` stands in when caching is off
(`PROPINTEL_CACHE_ENABLED=false`), so the read path has one shape either way.

Modules: tiered.py, the read path (L1, then L2, then the source); entry.py, a cached value
and its encoding (codec.py) in Redis; memory.py, L1; redis_client.py, L2's connection;
keys.py, the Redis key layout; redis_scripts.py, the Lua scripts that store and invalidate
in L2; leases.py, one load per key across processes; invalidation.py, tags, pub/sub and the
tickets that keep a load which overlapped a write from storing; operations.py, the
whole-operation cache; report.py and stats.py, what `cacheStats` reports; resources.py, the
resource types (and so the TTLs); service.py, CacheService, what the app holds.
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
