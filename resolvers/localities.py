"""Resolvers of Query.locality/localities and of Locality's fields that need a loader.

Each loader-backed field is one batch function over its parents, declared with `@batched`
(resolvers/fields.py): the one-parent Strawberry resolver is derived from it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from app.cache import Resource
from app.context import Context
from db.keyset import build_page
from db.records import LocalityRecord, LocalityStatsRecord, Page, PropertyRecord
from db.repositories import localities as repository
from db.repositories.localities import LOCALITIES_BY_NAME
from db.repositories.properties import PROPERTY_ORDERS
from loaders.localities import LocalityPropertiesKey
from loaders.properties import PropertyCountKey
from loaders.stats import LocalityStatsKey
from resolvers.fields import Audience, batched
from resolvers.filters import check_name, check_postcode, property_criteria, stats_window
from resolvers.pagination import cursor_values, page_size
from schema.enums import PropertyOrder
from schema.ids import to_global_id
from schema.inputs import PropertyFilter


def global_id(root: LocalityRecord) -> strawberry.ID:
    return to_global_id("Locality", root.id)


@batched(Audience.PUBLIC)
async def locality_by_name(
    parents: list[None],
    context: Context,
    name: Annotated[
        str, strawberry.argument(description="Locality name, case-insensitive, e.g. 'Newtown'.")
    ],
    postcode: Annotated[str, strawberry.argument(description="Four-digit postcode.")],
) -> list[LocalityRecord | None]:
    check_name(name, "name")
    check_postcode(postcode)
    found = await context.loaders.locality_by_name.load((name.strip().upper(), postcode))
    return [found] * len(parents)


@batched(Audience.PUBLIC)
async def localities(
    parents: list[None],
    context: Context,
    search: Annotated[
        str | None, strawberry.argument(description="Name prefix, case-insensitive.")
    ] = None,
    first: int = 20,
    after: str | None = None,
) -> list[Page[LocalityRecord]]:
    if search:  # an empty search means no filter
        check_name(search, "search")
    size = page_size(context, first)
    after_values = cursor_values(LOCALITIES_BY_NAME, after)

    async def load(_positions: list[int]) -> list[Page[LocalityRecord]]:
        records = await repository.localities_page(
            context.db, search=search, after=after_values, limit=size + 1
        )
        return [build_page(records, first=size, order=LOCALITIES_BY_NAME, after=after)]

    prefix = (search or "").strip().upper()
    (page,) = await context.cache.fetch_many(
        Resource.LIST,
        [f"localities:{prefix}:{size}:{after or ''}"],
        load,
        lambda _position, _page: ["list:localities"],
        context.scope,
    )
    return [page.counting(prefix)] * len(parents)


@batched(Audience.PUBLIC)
async def localities_total_count(
    parents: list[Page[LocalityRecord]], context: Context
) -> list[int]:
    """LocalityConnection.totalCount: exact (a few thousand localities), one statement per
    distinct search."""
    prefixes = sorted({str(page.counted) for page in parents})

    async def load(positions: list[int]) -> list[int]:
        return [
            await repository.count_localities(context.db, search=prefixes[p]) for p in positions
        ]

    counts = await context.cache.fetch_many(
        Resource.LIST,
        [f"count:localities:{prefix}" for prefix in prefixes],
        load,
        lambda _position, _count: ["list:localities"],
        context.scope,
    )
    by_prefix = dict(zip(prefixes, counts, strict=True))
    return [by_prefix[str(page.counted)] for page in parents]


@batched(Audience.PUBLIC)
async def stats(
    parents: list[LocalityRecord],
    context: Context,
    from_: Annotated[
        date | None, strawberry.argument(name="from", description="Contracts on or after.")
    ] = None,
    to: Annotated[date | None, strawberry.argument(description="Contracts on or before.")] = None,
    is_strata: bool | None = None,
) -> list[LocalityStatsRecord]:
    window = stats_window(from_, to, is_strata)
    return await context.loaders.locality_stats.load_many(
        [LocalityStatsKey(p.id, window) for p in parents]
    )


@batched(Audience.PUBLIC)
async def properties(
    parents: list[LocalityRecord],
    context: Context,
    first: int = 20,
    after: str | None = None,
    order_by: PropertyOrder = PropertyOrder.ID_ASC,
    filter_: Annotated[
        PropertyFilter | None,
        strawberry.argument(
            name="filter", description="The filters of `Query.properties`, in this locality."
        ),
    ] = None,
) -> list[Page[PropertyRecord]]:
    order = PROPERTY_ORDERS[order_by.value]
    size = page_size(context, first)
    criteria = property_criteria(filter_)
    after_values = cursor_values(order, after)
    pages = await context.loaders.properties_by_locality.load_many(
        [
            LocalityPropertiesKey(p.id, order.name, size, after, after_values, criteria)
            for p in parents
        ]
    )
    return [
        page.counting(PropertyCountKey(criteria, p.id))
        for p, page in zip(parents, pages, strict=True)
    ]
