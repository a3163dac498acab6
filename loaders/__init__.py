"""Per-request DataLoaders: one SQL statement per batch, results in key order.

`Loaders` is built by the request context getter, never at module level, so a loader's cache
lives exactly as long as one GraphQL operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.cache import Cache, RequestScope
from db.engine import Database
from loaders.localities import LocalityByIdLoader, LocalityByNameLoader, PropertiesByLocalityLoader
from loaders.properties import PropertyByIdLoader
from loaders.sales import SaleByIdLoader, SalesByPropertyLoader
from loaders.stats import LocalityStatsLoader


@dataclass(frozen=True, slots=True)
class Loaders:
    property_by_id: PropertyByIdLoader
    sale_by_id: SaleByIdLoader
    sales_by_property: SalesByPropertyLoader
    locality_by_id: LocalityByIdLoader
    locality_by_name: LocalityByNameLoader
    properties_by_locality: PropertiesByLocalityLoader
    locality_stats: LocalityStatsLoader


def create_loaders(db: Database, cache: Cache, scope: RequestScope | None = None) -> Loaders:
    return Loaders(
        property_by_id=PropertyByIdLoader(db, cache, scope),
        sale_by_id=SaleByIdLoader(db, cache, scope),
        sales_by_property=SalesByPropertyLoader(db, cache, scope),
        locality_by_id=LocalityByIdLoader(db, cache, scope),
        locality_by_name=LocalityByNameLoader(db, cache, scope),
        properties_by_locality=PropertiesByLocalityLoader(db, cache, scope),
        locality_stats=LocalityStatsLoader(db, cache, scope),
    )
