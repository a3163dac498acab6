"""Loader base classes over strawberry's DataLoader, reading through the cache.

`ByIdLoader` covers "one record per key" (missing keys resolve to None). `GroupedLoader` covers
keys that carry arguments (a page size, a cursor, a date window): keys with equal arguments
share one statement, so the usual case (every key in the batch has the same arguments) costs
exactly one. Both ask the cache first (app/cache): only the keys it misses reach `fetch`, and
what `fetch` returns is stored under the loader's resource type with the tags of the entities
it contains.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import ClassVar, Generic, TypeVar

from strawberry.dataloader import DataLoader

from app.cache import Cache, RequestScope, Resource
from db.engine import Database

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
A = TypeVar("A", bound=Hashable)


class CachedLoader(DataLoader[K, V], Generic[K, V]):
    resource: ClassVar[Resource]

    def __init__(self, db: Database, cache: Cache, scope: RequestScope | None = None) -> None:
        super().__init__(load_fn=self._load)
        self.db = db
        self.read_through = cache
        self.scope = scope

    def cache_key(self, key: K) -> str:
        return str(key)

    @abstractmethod
    def tags(self, key: K, value: V) -> Iterable[str]:
        """The entities `value` contains: a write to any of them invalidates it."""

    @abstractmethod
    async def _load(self, keys: list[K]) -> list[V]: ...

    async def _through_cache(
        self, keys: Sequence[K], fetch: Callable[[list[K]], Awaitable[list[V]]]
    ) -> list[V]:
        async def load(positions: list[int]) -> list[V]:
            return await fetch([keys[p] for p in positions])

        return await self.read_through.fetch_many(
            self.resource,
            [self.cache_key(key) for key in keys],
            load,
            lambda position, value: self.tags(keys[position], value),
            self.scope,
        )


class ByIdLoader(CachedLoader[K, V | None], Generic[K, V]):
    @abstractmethod
    async def fetch(self, keys: Sequence[K]) -> Mapping[K, V]: ...

    async def _fetch_in_order(self, keys: list[K]) -> list[V | None]:
        found = await self.fetch(keys)
        return [found.get(key) for key in keys]

    async def _load(self, keys: list[K]) -> list[V | None]:
        return await self._through_cache(keys, self._fetch_in_order)


class GroupedLoader(CachedLoader[K, V], Generic[K, A, V]):
    @staticmethod
    @abstractmethod
    def arguments(key: K) -> A: ...

    @abstractmethod
    async def fetch(self, keys: Sequence[K], arguments: A) -> list[V]:
        """Results for `keys` (all with these arguments), in key order."""

    async def _load(self, keys: list[K]) -> list[V]:
        groups: dict[A, list[int]] = defaultdict(list)
        for position, key in enumerate(keys):
            groups[self.arguments(key)].append(position)
        results: list[V | None] = [None] * len(keys)
        for arguments, positions in groups.items():

            async def fetch(subset: list[K], arguments: A = arguments) -> list[V]:
                return await self.fetch(subset, arguments)

            values = await self._through_cache([keys[i] for i in positions], fetch)
            for position, value in zip(positions, values, strict=True):
                results[position] = value
        return results  # type: ignore[return-value]  # every position was filled above
