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


@strawberry.input(description="A sale to add to a property's history (admin).")
class RecordSaleInput:
    property_id: strawberry.ID
    contract_date: date
    price: int = strawberry.field(description="AUD, whole dollars; below $1,000 is kept, flagged.")
    dealing_number: str = strawberry.field(description="NSW LRS dealing number, e.g. 'AU123456'.")
    settlement_date: date | None = None
    sale_code: str | None = None
    interest_pct: float = strawberry.field(
        default=0.0, description="0 = the whole property changed hands."
    )
    area_m2: float | None = None
    parcels_in_sale: int = 1


@strawberry.input(description="Property fields an admin may correct; omitted fields are kept.")
class UpdatePropertyInput:
    zoning: str | None = strawberry.UNSET
    primary_purpose: str | None = strawberry.UNSET
    area_m2: float | None = strawberry.UNSET
    property_name: str | None = strawberry.UNSET
    nature: PropertyNature | None = strawberry.UNSET
