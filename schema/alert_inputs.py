"""Enums and inputs of saved searches and alerts (apart from schema/alerts.py, whose types
name resolvers: resolvers/alerts.py reads these without importing those)."""

from __future__ import annotations

from enum import Enum

import strawberry

from schema.inputs import PropertyFilter


@strawberry.enum(
    name="SavedSearchFrequency",
    description="How a saved search tells its matches: each as it is recorded, or one DIGEST "
    "alert per UTC day (DAILY) or ISO week (WEEKLY) listing them.",
)
class Frequency(Enum):
    INSTANT = "INSTANT"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"


@strawberry.enum(name="AlertKind", description="What an alert tells.")
class AlertKind(Enum):
    SALE_MATCHED = strawberry.enum_value(
        "SALE_MATCHED", description="A new sale matches an INSTANT saved search."
    )
    PROPERTY_SOLD = strawberry.enum_value(
        "PROPERTY_SOLD", description="A watched property sold (any recorded transfer)."
    )
    ESTIMATE_CHANGED = strawberry.enum_value(
        "ESTIMATE_CHANGED",
        description="A watched property's estimate moved past its threshold (after a sale "
        "or a new price model).",
    )
    DIGEST = strawberry.enum_value(
        "DIGEST", description="A DAILY or WEEKLY saved search's matches of one period."
    )


@strawberry.input(description="A new saved search.")
class CreateSavedSearchInput:
    name: str = strawberry.field(description="1 to 100 characters.")
    filter: PropertyFilter = strawberry.field(
        description="What a new sale must satisfy, read against the sale: "
        "minLastSalePrice/maxLastSalePrice bound its price and soldAfter/soldBefore its "
        "contract date; the other fields are the sold property's. It must name a place "
        "(localityName, postcode, district or bbox)."
    )
    frequency: Frequency = Frequency.INSTANT


@strawberry.input(description="Changes to a saved search; omitted fields are kept.")
class UpdateSavedSearchInput:
    name: str | None = None
    filter: PropertyFilter | None = strawberry.field(
        default=None, description="Replaces the whole filter (same rules as on creation)."
    )
    frequency: Frequency | None = None
