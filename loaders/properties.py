from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from app.cache import Resource
from db.records import PropertyRecord
from db.repositories import properties
from loaders.base import ByIdLoader


class PropertyByIdLoader(ByIdLoader[int, PropertyRecord]):
    resource = Resource.PROPERTY

    def tags(self, key: int, value: PropertyRecord | None) -> Iterable[str]:
        return (f"property:{key}",)

    async def fetch(self, keys: Sequence[int]) -> Mapping[int, PropertyRecord]:
        return await properties.properties_by_id(self.db, keys)

    def prime_records(self, records: Sequence[PropertyRecord]) -> None:
        """Records fetched by a list query answer later `property(id)` lookups for free."""
        self.prime_many({record.id: record for record in records})
