"""Loader base classes over strawberry's DataLoader.

`ByIdLoader` covers "one record per key" (missing keys resolve to None). `GroupedLoader` covers
keys that carry arguments (a page size, a cursor, a date window): keys with equal arguments
share one statement, so the usual case (every key in the batch has the same arguments) costs
exactly one.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from typing import Generic, TypeVar

from strawberry.dataloader import DataLoader

from db.engine import Database

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
A = TypeVar("A", bound=Hashable)


class ByIdLoader(DataLoader[K, V | None], Generic[K, V]):
    def __init__(self, db: Database) -> None:
        super().__init__(load_fn=self._load)
        self.db = db

    @abstractmethod
    async def fetch(self, keys: Sequence[K]) -> Mapping[K, V]: ...

    async def _load(self, keys: list[K]) -> list[V | None]:
        found = await self.fetch(keys)
        return [found.get(key) for key in keys]


class GroupedLoader(DataLoader[K, V], Generic[K, A, V]):
    def __init__(self, db: Database) -> None:
        super().__init__(load_fn=self._load)
        self.db = db

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
            values = await self.fetch([keys[i] for i in positions], arguments)
            for position, value in zip(positions, values, strict=True):
                results[position] = value
        return results  # type: ignore[return-value]  # every position was filled above
