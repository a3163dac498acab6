"""Query.node: any object by its global id."""

from __future__ import annotations

import strawberry

from app.context import Info
from db.records import LocalityRecord, PropertyRecord, SaleRecord
from schema.ids import from_global_id


async def node(
    info: Info, id: strawberry.ID
) -> PropertyRecord | SaleRecord | LocalityRecord | None:
    type_name, pk = from_global_id(id)
    loaders = info.context.loaders
    if type_name == "Property":
        return await loaders.property_by_id.load(pk)
    if type_name == "Sale":
        return await loaders.sale_by_id.load(pk)
    return await loaders.locality_by_id.load(pk)
