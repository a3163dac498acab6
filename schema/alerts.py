"""Types of saved searches, watches and alerts (read from the records of
db/repositories/alerts.py; fields that need a loader or a conversion name resolvers/alerts.py).

schema/types.py does not import this module (`Property.isWatched` is a resolver of
resolvers/alerts.py, which reads only schema/alert_inputs.py), so Sale and Property come in
directly."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from app.alerts.service import criteria_of
from db.records import Page, PropertyRecord, SaleRecord
from db.repositories.alerts import DIGEST_SALE_LIMIT, AlertRecord, SavedSearchRecord
from db.repositories.properties import BoundingBox, PropertyCriteria
from resolvers import alerts as resolvers
from schema.alert_inputs import AlertKind, Frequency
from schema.enums import PropertyNature
from schema.types import PageInfo, Property, Sale


@strawberry.type(name="SavedSearchBoundingBox", description="A saved search's rectangle.")
class SavedSearchBox:
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float


def _criteria(root: SavedSearchRecord) -> PropertyCriteria:
    return criteria_of(root)


def _box(root: PropertyCriteria) -> BoundingBox | None:
    return root.bbox


@strawberry.type(
    description="A saved search's filter as it was given (PropertyFilter's fields), read "
    "against each new sale: minLastSalePrice/maxLastSalePrice bound the sale's price and "
    "soldAfter/soldBefore its contract date; the other fields are the sold property's."
)
class SavedSearchFilter:
    locality_name: str | None
    postcode: str | None
    district: str | None
    is_strata: bool | None
    nature: PropertyNature | None = strawberry.field(resolver=resolvers.nature)
    min_area_m2: float | None
    max_area_m2: float | None
    min_last_sale_price: int | None
    max_last_sale_price: int | None
    sold_after: date | None
    sold_before: date | None
    bbox: BoundingBox | None = strawberry.field(resolver=_box, graphql_type=SavedSearchBox | None)


def _frequency(root: SavedSearchRecord) -> Frequency:
    return Frequency(root.frequency)


@strawberry.type(
    name="SavedSearch",
    description="A filter that alerts its owner to new sales matching it. Every recorded sale "
    "is matched, market sale or not (use the price bounds to leave out nominal transfers).",
)
class SavedSearch:
    id: strawberry.ID = strawberry.field(resolver=resolvers.saved_search_id)
    name: str
    filter: PropertyCriteria = strawberry.field(resolver=_criteria, graphql_type=SavedSearchFilter)
    frequency: Frequency = strawberry.field(resolver=_frequency)
    created_at: datetime
    last_matched_at: datetime | None = strawberry.field(
        description="When a sale last matched it (null: never yet)."
    )


@strawberry.type(name="Watch", description="A property you watch.")
class Watch:
    id: strawberry.ID = strawberry.field(resolver=resolvers.watch_id)
    property: PropertyRecord | None = strawberry.field(
        resolver=resolvers.property_of,
        graphql_type=Property | None,
        description="Null once the property is removed.",
    )
    estimate_change_pct: float = strawberry.field(
        description="ESTIMATE_CHANGED when the estimate moves by more than this many percent."
    )
    created_at: datetime


@strawberry.type(description="How a watched property's estimate moved (ESTIMATE_CHANGED).")
class EstimateChange:
    previous: int = strawberry.field(description="AUD, the estimate the change is measured from.")
    current: int = strawberry.field(description="AUD, the new estimate.")
    change_pct: float = strawberry.field(description="(current - previous) / previous, in %.")


@strawberry.type(
    name="Alert",
    description="Something you asked to be told: a sale matching a saved search, a watched "
    "property sold or re-estimated, a digest of a period's matches.",
)
class Alert:
    id: strawberry.ID = strawberry.field(resolver=resolvers.alert_id)
    kind: AlertKind
    created_at: datetime
    read_at: datetime | None = strawberry.field(description="Null while unread.")
    sale: SaleRecord | None = strawberry.field(
        resolver=resolvers.sale_of,
        graphql_type=Sale | None,
        description="The sale (SALE_MATCHED, PROPERTY_SOLD).",
    )
    property: PropertyRecord | None = strawberry.field(
        resolver=resolvers.property_of,
        graphql_type=Property | None,
        description="The property (SALE_MATCHED, PROPERTY_SOLD, ESTIMATE_CHANGED).",
    )
    saved_search: SavedSearchRecord | None = strawberry.field(
        resolver=resolvers.saved_search_of,
        graphql_type=SavedSearch | None,
        description="The saved search (SALE_MATCHED, DIGEST); null once deleted.",
    )
    match_count: int | None = strawberry.field(
        resolver=resolvers.match_count,
        description="DIGEST: how many sales matched in its period (null for other kinds).",
    )
    matched_sales: list[SaleRecord] = strawberry.field(
        resolver=resolvers.matched_sales,
        graphql_type=list[Sale],
        description=f"DIGEST: its matched sales, the first {DIGEST_SALE_LIMIT} in the order "
        "they were recorded (matchCount counts them all); empty for other kinds.",
    )
    estimate_change: resolvers.EstimateChangeRecord | None = strawberry.field(
        resolver=resolvers.estimate_change,
        graphql_type=EstimateChange | None,
        description="ESTIMATE_CHANGED: the move (null for other kinds).",
    )

    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return isinstance(obj, AlertRecord)


@strawberry.type
class AlertEdge:
    cursor: str
    node: Alert


@strawberry.type
class AlertConnection:
    edges: list[AlertEdge]
    page_info: PageInfo
    nodes: list[Alert]


AlertPage = Page[AlertRecord]
