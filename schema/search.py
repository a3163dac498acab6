"""Address search results (Query.searchAddresses, Query.suggestLocalities)."""

from __future__ import annotations

from typing import Any

import strawberry

from db.records import LocalityRecord, PropertyRecord
from db.repositories.search import AddressHit, LocalityHit
from schema.types import Locality, Property

SCORE = (
    "How well it matches, higher is better: comparable within one answer (the exact address "
    "scores highest), not across queries."
)


@strawberry.type(description="A property whose address matches what was typed.")
class AddressMatch:
    property: PropertyRecord = strawberry.field(graphql_type=Property)
    score: float = strawberry.field(description=SCORE)

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, AddressHit)


@strawberry.type(description="A locality whose name or postcode matches what was typed.")
class LocalityMatch:
    locality: LocalityRecord = strawberry.field(graphql_type=Locality)
    score: float = strawberry.field(description=SCORE)

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, LocalityHit)
