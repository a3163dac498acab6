"""Resolvers of Query.property/properties and of Property's fields that need a loader."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.context import Info
from db.keyset import build_page
from db.records import LocalityRecord, Page, PropertyRecord, SaleRecord
from db.repositories import properties as repository
from db.repositories.properties import PROPERTY_ORDERS
from db.repositories.sales import SALES_NEWEST_FIRST
from loaders.sales import SalesPageKey
from resolvers.filters import property_criteria
from resolvers.pagination import cursor_values, page_size
from schema.enums import PropertyNature, PropertyOrder
from schema.ids import expect_global_id, to_global_id
from schema.inputs import PropertyFilter


async def property_by_id(info: Info, id: strawberry.ID) -> PropertyRecord | None:
    return await info.context.loaders.property_by_id.load(expect_global_id(id, "Property"))


async def properties(
    info: Info,
    filter_: Annotated[PropertyFilter | None, strawberry.argument(name="filter")] = None,
    order_by: PropertyOrder = PropertyOrder.ID_ASC,
    first: int = 20,
    after: str | None = None,
) -> Page[PropertyRecord]:
    order = PROPERTY_ORDERS[order_by.value]
    size = page_size(info, first)
    records = await repository.properties_page(
        info.context.db,
        property_criteria(filter_),
        order=order,
        after=cursor_values(order, after),
        limit=size + 1,
    )
    info.context.loaders.property_by_id.prime_records(records[:size])
    return build_page(records, first=size, order=order, after=after)


def global_id(root: PropertyRecord) -> strawberry.ID:
    return to_global_id("Property", root.id)


def strata_lot(root: PropertyRecord) -> str | None:
    return root.strata_lot or None


def nature(root: PropertyRecord) -> PropertyNature | None:
    return PropertyNature(root.nature) if root.nature in {"R", "V", "3"} else None


async def address(root: PropertyRecord, info: Info) -> str:
    locality = await info.context.loaders.locality_by_id.load(root.locality_id)
    return format_address(root, locality)


def format_address(record: PropertyRecord, locality: LocalityRecord | None) -> str:
    """'12/34 KING ST, NEWTOWN NSW 2042': unit/house and street as the VG records them."""
    number = "/".join(part for part in (record.unit_number, record.house_number) if part)
    street = " ".join(part for part in (number, record.street_name) if part)
    street = street or record.property_name or ""
    place = f"{locality.name} {locality.state} {locality.postcode}" if locality else record.postcode
    return f"{street}, {place}" if street else place


async def locality(root: PropertyRecord, info: Info) -> LocalityRecord:
    found = await info.context.loaders.locality_by_id.load(root.locality_id)
    assert found is not None, "properties.locality_id is a foreign key"
    return found


async def last_sale(root: PropertyRecord, info: Info) -> SaleRecord | None:
    """The first sale of the newest-first history (the one last_sale_price/date describe)."""
    page = await info.context.loaders.sales_by_property.load(SalesPageKey(root.id, 1, None, None))
    return page.edges[0].node if page.edges else None


async def sales(
    root: PropertyRecord, info: Info, first: int = 10, after: str | None = None
) -> Page[SaleRecord]:
    key = SalesPageKey(
        root.id, page_size(info, first), after, cursor_values(SALES_NEWEST_FIRST, after)
    )
    return await info.context.loaders.sales_by_property.load(key)
