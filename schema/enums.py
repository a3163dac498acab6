"""GraphQL enums."""

from __future__ import annotations

from enum import Enum

import strawberry

from db.ingest.records import NonMarketReason


@strawberry.enum(description="Orders of a property list; each is a keyset order (id breaks ties).")
class PropertyOrder(Enum):
    ID_ASC = "ID_ASC"
    LAST_SALE_PRICE_ASC = "LAST_SALE_PRICE_ASC"
    LAST_SALE_PRICE_DESC = "LAST_SALE_PRICE_DESC"
    LAST_SALE_DATE_DESC = "LAST_SALE_DATE_DESC"


@strawberry.enum(description="Nature of the property as the Valuer General records it.")
class PropertyNature(Enum):
    RESIDENCE = "R"
    VACANT_LAND = "V"
    OTHER = "3"


# Registers the ingest's enum as is (strawberry.enum returns the class it decorates), so the
# loader and the API share one definition of the reasons.
strawberry.enum(
    NonMarketReason,
    name="NonMarketReason",
    description="Why a sale is kept but excluded from statistics.",
)
__all__ = ["NonMarketReason", "PropertyNature", "PropertyOrder"]
