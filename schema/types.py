"""GraphQL object types.

The types read their fields from the records db/ returns (duck typing: a resolver returns a
PropertyRecord where the schema says Property), so plain columns cost no resolver call and no
copy. Fields that need a loader or a conversion name their resolver in resolvers/; such a
field is annotated with what its resolver returns (a record) and `graphql_type=` names the
GraphQL type.
`is_type_of` tells GraphQL which type a record is when it comes through the Node interface.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import strawberry

from db.records import LocalityRecord, LocalityStatsRecord, Page, PropertyRecord, SaleRecord
from db.repositories.stats import PeriodStatsRecord
from loaders.properties import EXACT_COUNT_LIMIT
from resolvers import alerts as alert_resolvers
from resolvers import estimates as estimate_resolvers
from resolvers import localities as locality_resolvers
from resolvers import properties as property_resolvers
from resolvers import sales as sale_resolvers
from resolvers import stats_series as stats_series_resolvers
from schema.enums import NonMarketReason, PropertyNature
from schema.estimates import PriceEstimate
from schema.stats_series import LocalityPeriodStats


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID


@strawberry.type(description="Relay page information (forward pagination).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="Suburb-level statistics over market sales (see Sale.isMarketSale).")
class LocalityStats:
    sales_count: int
    median_price: float | None
    p25_price: float | None = strawberry.field(description="First quartile of price.")
    p75_price: float | None = strawberry.field(description="Third quartile of price.")
    median_price_per_m2: float | None = strawberry.field(
        description="Median of price / land area, over sales with a recorded land area."
    )

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, LocalityStatsRecord)


@strawberry.type(description="A suburb: a locality name with its postcode.")
class Locality(Node):
    id: strawberry.ID = strawberry.field(resolver=locality_resolvers.global_id)
    name: str
    postcode: str
    state: str
    district: str | None
    latitude: float | None = strawberry.field(description="GeoNames centroid (WGS84).")
    longitude: float | None
    stats: LocalityStatsRecord = strawberry.field(
        resolver=locality_resolvers.stats, graphql_type=LocalityStats
    )
    stats_series: list[PeriodStatsRecord] = strawberry.field(
        resolver=stats_series_resolvers.stats_series,
        graphql_type=list[LocalityPeriodStats],
        description="Statistics per quarter or year over market sales (as `stats`), oldest "
        "first; periods without a market sale in the window are left out.",
    )
    properties: Page[PropertyRecord] = strawberry.field(
        resolver=locality_resolvers.properties,
        graphql_type=Annotated["PropertyConnection", strawberry.lazy("schema.types")],
    )

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, LocalityRecord)


@strawberry.type(description="A recorded sale (NSW Valuer General PSI).")
class Sale(Node):
    id: strawberry.ID = strawberry.field(resolver=sale_resolvers.global_id)
    contract_date: date
    settlement_date: date | None
    price: int = strawberry.field(description="AUD, whole dollars.")
    dealing_number: str = strawberry.field(description="NSW LRS registration number.")
    sale_code: str | None
    interest_pct: float = strawberry.field(description="0 = the whole property changed hands.")
    area_m2: float | None = strawberry.field(description="Land area recorded with this sale.")
    parcels_in_sale: int
    is_market_sale: bool = strawberry.field(
        description="Whole-interest, single-parcel, price >= $1,000, plausible dates."
    )
    non_market_reasons: list[NonMarketReason] = strawberry.field(
        resolver=sale_resolvers.non_market_reasons, graphql_type=list[NonMarketReason]
    )
    property: PropertyRecord | None = strawberry.field(
        resolver=sale_resolvers.property_of_sale,
        graphql_type=Annotated["Property", strawberry.lazy("schema.types")] | None,
    )

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, SaleRecord)


@strawberry.type(description="A parcel (VG property id), or one strata lot of it.")
class Property(Node):
    id: strawberry.ID = strawberry.field(resolver=property_resolvers.global_id)
    vg_property_id: int = strawberry.field(description="Valuer General property id.")
    strata_lot: str | None = strawberry.field(resolver=property_resolvers.strata_lot)
    address: str = strawberry.field(resolver=property_resolvers.address)
    property_name: str | None
    unit_number: str | None
    house_number: str | None
    street_name: str | None
    postcode: str
    district: str | None
    area_m2: float | None
    zoning: str | None = strawberry.field(description="Planning zone code as published.")
    nature: PropertyNature | None = strawberry.field(
        resolver=property_resolvers.nature, graphql_type=PropertyNature | None
    )
    primary_purpose: str | None
    is_strata: bool
    latitude: float | None = strawberry.field(description="Locality centroid (WGS84).")
    longitude: float | None
    last_sale_price: int
    last_sale_date: date
    locality: LocalityRecord = strawberry.field(
        resolver=property_resolvers.locality, graphql_type=Locality
    )
    last_sale: SaleRecord | None = strawberry.field(
        resolver=property_resolvers.last_sale, graphql_type=Sale | None
    )
    sales: Page[SaleRecord] = strawberry.field(
        resolver=property_resolvers.sales,
        graphql_type=Annotated["SaleConnection", strawberry.lazy("schema.types")],
        description="Price history, newest contract first.",
    )
    estimate: PriceEstimate = strawberry.field(
        resolver=estimate_resolvers.estimate,
        description="What the active price model says it is worth, with an 80% interval.",
    )
    comparable_sales: list[SaleRecord] = strawberry.field(
        resolver=estimate_resolvers.comparable_sales,
        graphql_type=list[Annotated["Sale", strawberry.lazy("schema.types")]],
        description="Recent market sales in its locality, of its kind, nearest in land area.",
    )
    is_watched: bool = strawberry.field(
        resolver=alert_resolvers.is_watched,
        description="Whether you watch it (watchProperty); false when anonymous.",
    )

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, PropertyRecord)


@strawberry.type
class PropertyEdge:
    cursor: str
    node: Property


@strawberry.type
class PropertyConnection:
    edges: list[PropertyEdge]
    page_info: PageInfo
    nodes: list[Property]
    total_count: int = strawberry.field(
        resolver=property_resolvers.total_count,
        description="How many properties the whole list holds (every page, with its filter). "
        "Exact for a locality's properties (`Locality.properties`) and for `Query.properties` "
        "filtered by `localityName` or `postcode`. Otherwise exact up to "
        f"{EXACT_COUNT_LIMIT:,}; past that, on PostgreSQL, the planner's estimate from the "
        "table's statistics (typically within a few percent, never below "
        f"{EXACT_COUNT_LIMIT + 1:,}): such a count above {EXACT_COUNT_LIMIT:,} is approximate. "
        "Counted only when selected.",
    )


@strawberry.type
class SaleEdge:
    cursor: str
    node: Sale


@strawberry.type
class SaleConnection:
    edges: list[SaleEdge]
    page_info: PageInfo
    nodes: list[Sale]
    total_count: int = strawberry.field(
        resolver=sale_resolvers.total_count,
        description="How many sales the whole history holds (every page); exact. Counted "
        "only when selected.",
    )


@strawberry.type
class LocalityEdge:
    cursor: str
    node: Locality


@strawberry.type
class LocalityConnection:
    edges: list[LocalityEdge]
    page_info: PageInfo
    nodes: list[Locality]
    total_count: int = strawberry.field(
        resolver=locality_resolvers.localities_total_count,
        description="How many localities the whole list holds (every page, with its search); "
        "exact. Counted only when selected.",
    )
