"""Resolvers of Query.locality/localities and of Locality's fields that need a loader."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from app.context import Info
from db.keyset import build_page
from db.records import LocalityRecord, LocalityStatsRecord, Page, PropertyRecord
from db.repositories import localities as repository
from db.repositories.localities import LOCALITIES_BY_NAME
from db.repositories.properties import PROPERTY_ORDERS
from loaders.localities import LocalityPropertiesKey
from loaders.stats import LocalityStatsKey
from resolvers.filters import check_name, check_postcode, stats_window
from resolvers.pagination import cursor_values, page_size
from schema.enums import PropertyOrder
from schema.ids import to_global_id


def global_id(root: LocalityRecord) -> strawberry.ID:
    return to_global_id("Locality", root.id)


async def locality_by_name(info: Info, name: str, postcode: str) -> LocalityRecord | None:
    check_name(name, "name")
    check_postcode(postcode)
    return await info.context.loaders.locality_by_name.load((name.strip().upper(), postcode))


async def localities(
    info: Info,
    search: Annotated[
        str | None, strawberry.argument(description="Name prefix, case-insensitive.")
    ] = None,
    first: int = 20,
    after: str | None = None,
) -> Page[LocalityRecord]:
    if search:  # an empty search means no filter
        check_name(search, "search")
    size = page_size(info, first)
    records = await repository.localities_page(
        info.context.db,
        search=search,
        after=cursor_values(LOCALITIES_BY_NAME, after),
        limit=size + 1,
    )
    return build_page(records, first=size, order=LOCALITIES_BY_NAME, after=after)


async def stats(
    root: LocalityRecord,
    info: Info,
    from_: Annotated[
        date | None, strawberry.argument(name="from", description="Contracts on or after.")
    ] = None,
    to: Annotated[date | None, strawberry.argument(description="Contracts on or before.")] = None,
    is_strata: bool | None = None,
) -> LocalityStatsRecord:
    key = LocalityStatsKey(root.id, stats_window(from_, to, is_strata))
    return await info.context.loaders.locality_stats.load(key)


async def properties(
    root: LocalityRecord,
    info: Info,
    first: int = 20,
    after: str | None = None,
    order_by: PropertyOrder = PropertyOrder.ID_ASC,
) -> Page[PropertyRecord]:
    order = PROPERTY_ORDERS[order_by.value]
    key = LocalityPropertiesKey(
        root.id, order.name, page_size(info, first), after, cursor_values(order, after)
    )
    return await info.context.loaders.properties_by_locality.load(key)
