"""GraphQL input types."""

from __future__ import annotations

from datetime import date

import strawberry

from schema.enums import PropertyNature


@strawberry.input(description="A latitude/longitude rectangle (WGS84 degrees), edges included.")
class BoundingBox:
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float


@strawberry.input(description="Property filters; all given filters must hold.")
class PropertyFilter:
    locality_name: str | None = strawberry.field(
        default=None, description="Locality (suburb) name, case-insensitive, e.g. 'Newtown'."
    )
    postcode: str | None = strawberry.field(default=None, description="Four-digit postcode.")
    district: str | None = strawberry.field(
        default=None, description="Valuation district name, e.g. 'CITY OF SYDNEY'."
    )
    is_strata: bool | None = None
    nature: PropertyNature | None = None
    min_area_m2: float | None = None
    max_area_m2: float | None = None
    min_last_sale_price: int | None = None
    max_last_sale_price: int | None = None
    sold_after: date | None = strawberry.field(
        default=None, description="Last sale contracted on or after this date."
    )
    sold_before: date | None = strawberry.field(
        default=None, description="Last sale contracted on or before this date."
    )
    bbox: BoundingBox | None = None
