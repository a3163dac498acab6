"""Resolvers of Query.property/properties and of Property's fields that need a loader.

Each loader-backed field is one batch function over its parents, declared with `@batched`
(resolvers/fields.py): the one-parent Strawberry resolver is derived from it.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.cache import Resource
from app.context import Context
from db.keyset import build_page
from db.records import LocalityRecord, Page, PropertyRecord, SaleRecord
from db.repositories import properties as repository
from db.repositories.properties import PROPERTY_ORDERS
from db.repositories.sales import SALES_NEWEST_FIRST
from loaders.properties import PropertyCountKey
from loaders.sales import SalesPageKey
from resolvers.fields import Audience, batched
from resolvers.filters import property_criteria
from resolvers.pagination import cursor_values, page_size
from schema.enums import PropertyNature, PropertyOrder
from schema.ids import expect_global_id, to_global_id
from schema.inputs import PropertyFilter


@batched(Audience.PUBLIC)
async def property_by_id(
    parents: list[None], context: Context, id: strawberry.ID
) -> list[PropertyRecord | None]:
    found = await context.loaders.property_by_id.load(expect_global_id(id, "Property"))
    return [found] * len(parents)


@batched(Audience.PUBLIC)
async def properties(
    parents: list[None],
    context: Context,
    filter_: Annotated[PropertyFilter | None, strawberry.argument(name="filter")] = None,
    order_by: PropertyOrder = PropertyOrder.ID_ASC,
    first: int = 20,
    after: str | None = None,
) -> list[Page[PropertyRecord]]:
    order = PROPERTY_ORDERS[order_by.value]
    size = page_size(context, first)
    criteria = property_criteria(filter_)
    after_values = cursor_values(order, after)

    async def load(_positions: list[int]) -> list[Page[PropertyRecord]]:
        records = await repository.properties_page(
            context.db, criteria, order=order, after=after_values, limit=size + 1
        )
        return [build_page(records, first=size, order=order, after=after)]

    (page,) = await context.cache.fetch_many(
        Resource.LIST,
        [f"properties:{criteria!r}:{order.name}:{size}:{after or ''}"],
        load,
        _list_tags,
        context.scope,
    )
    context.loaders.property_by_id.prime_records(page.nodes)
    return [page.counting(PropertyCountKey(criteria))] * len(parents)


@batched(Audience.PUBLIC)
async def total_count(parents: list[Page[PropertyRecord]], context: Context) -> list[int]:
    """PropertyConnection.totalCount: one count per distinct list (and filters), a batch of
    localities' lists in one statement."""
    keys = [page.counted for page in parents]
    assert all(isinstance(key, PropertyCountKey) for key in keys), "set by the list resolvers"
    return await context.loaders.property_count.load_many(keys)


def _list_tags(_position: int, page: Page[PropertyRecord]) -> list[str]:
    # A write to any property can move it into or out of a filtered list: every property
    # list carries `list:properties`, which every property write invalidates.
    return ["list:properties", *(f"property:{edge.node.id}" for edge in page.edges)]


def global_id(root: PropertyRecord) -> strawberry.ID:
    return to_global_id("Property", root.id)


def strata_lot(root: PropertyRecord) -> str | None:
    return root.strata_lot or None


def nature(root: PropertyRecord) -> PropertyNature | None:
    return PropertyNature(root.nature) if root.nature in {"R", "V", "3"} else None


@batched(Audience.PUBLIC)
async def address(parents: list[PropertyRecord], context: Context) -> list[str]:
    found = await context.loaders.locality_by_id.load_many([p.locality_id for p in parents])
    return [format_address(p, locality) for p, locality in zip(parents, found, strict=True)]


def format_address(record: PropertyRecord, locality: LocalityRecord | None) -> str:
    """'12/34 KING ST, NEWTOWN NSW 2042': unit/house and street as the VG records them."""
    number = "/".join(part for part in (record.unit_number, record.house_number) if part)
    street = " ".join(part for part in (number, record.street_name) if part)
    street = street or record.property_name or ""
    place = f"{locality.name} {locality.state} {locality.postcode}" if locality else record.postcode
    return f"{street}, {place}" if street else place


@batched(Audience.PUBLIC)
async def locality(parents: list[PropertyRecord], context: Context) -> list[LocalityRecord]:
    found = await context.loaders.locality_by_id.load_many([p.locality_id for p in parents])
    localities = [locality for locality in found if locality is not None]
    assert len(localities) == len(found), "properties.locality_id is a foreign key"
    return localities


@batched(Audience.PUBLIC)
async def last_sale(parents: list[PropertyRecord], context: Context) -> list[SaleRecord | None]:
    """The first sale of each newest-first history (the one last_sale_price/date describe)."""
    pages = await context.loaders.sales_by_property.load_many(
        [SalesPageKey(p.id, 1, None, None) for p in parents]
    )
    return [page.edges[0].node if page.edges else None for page in pages]


@batched(Audience.PUBLIC)
async def sales(
    parents: list[PropertyRecord], context: Context, first: int = 10, after: str | None = None
) -> list[Page[SaleRecord]]:
    size = page_size(context, first)
    after_values = cursor_values(SALES_NEWEST_FIRST, after)
    pages = await context.loaders.sales_by_property.load_many(
        [SalesPageKey(p.id, size, after, after_values) for p in parents]
    )
    return [page.counting(p.id) for p, page in zip(parents, pages, strict=True)]
