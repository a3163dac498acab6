"""Per-request DataLoaders: one SQL statement per batch, results in key order.

`Loaders` is built by the request context getter, never at module level, so a loader's cache
lives exactly as long as one GraphQL operation.
"""

from __future__ import annotations

from functools import cached_property

from app.cache import Cache, RequestScope
from app.estimates.service import ModelRegistry
from db.engine import Database
from loaders.estimates import EstimateLoader
from loaders.json import PropertyJsonLoader
from loaders.localities import LocalityByIdLoader, LocalityByNameLoader, PropertiesByLocalityLoader
from loaders.properties import PropertyByIdLoader, PropertyCountLoader
from loaders.sales import (
    RecentMarketSalesLoader,
    SaleByIdLoader,
    SalesByPropertyLoader,
    SalesCountLoader,
)
from loaders.stats import LocalityStatsLoader
from loaders.stats_series import StatsSeriesLoader


class Loaders:
    """The request's loaders, each built on first use (a request touches two or three of
    them; building all eight cost ~5% of a simple query)."""

    def __init__(self, db: Database, cache: Cache, scope: RequestScope | None) -> None:
        self._arguments = (db, cache, scope)
        self._estimates: EstimateLoader | None = None

    def estimates(self, registry: ModelRegistry, version: int) -> EstimateLoader:
        """The estimate loader of the model version this request started with."""
        if self._estimates is None or self._estimates.version != version:
            self._estimates = EstimateLoader(*self._arguments, registry, version)
        return self._estimates

    @cached_property
    def property_by_id(self) -> PropertyByIdLoader:
        return PropertyByIdLoader(*self._arguments)

    @cached_property
    def sale_by_id(self) -> SaleByIdLoader:
        return SaleByIdLoader(*self._arguments)

    @cached_property
    def sales_by_property(self) -> SalesByPropertyLoader:
        return SalesByPropertyLoader(*self._arguments)

    @cached_property
    def sales_count(self) -> SalesCountLoader:
        return SalesCountLoader(*self._arguments)

    @cached_property
    def property_count(self) -> PropertyCountLoader:
        return PropertyCountLoader(*self._arguments)

    @cached_property
    def locality_by_id(self) -> LocalityByIdLoader:
        return LocalityByIdLoader(*self._arguments)

    @cached_property
    def locality_by_name(self) -> LocalityByNameLoader:
        return LocalityByNameLoader(*self._arguments)

    @cached_property
    def properties_by_locality(self) -> PropertiesByLocalityLoader:
        return PropertiesByLocalityLoader(*self._arguments)

    @cached_property
    def locality_stats(self) -> LocalityStatsLoader:
        return LocalityStatsLoader(*self._arguments)

    @cached_property
    def stats_series(self) -> StatsSeriesLoader:
        return StatsSeriesLoader(*self._arguments)

    @cached_property
    def property_json(self) -> PropertyJsonLoader:
        return PropertyJsonLoader(*self._arguments)

    @cached_property
    def recent_market_sales(self) -> RecentMarketSalesLoader:
        return RecentMarketSalesLoader(*self._arguments)


def create_loaders(db: Database, cache: Cache, scope: RequestScope | None = None) -> Loaders:
    return Loaders(db, cache, scope)
