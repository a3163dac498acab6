"""Query.node: any object by its global id."""

from __future__ import annotations

import strawberry

from app.context import Context
from db.records import LocalityRecord, PropertyRecord, SaleRecord
from resolvers.fields import Audience, batched
from schema.ids import from_global_id

NodeRecord = PropertyRecord | SaleRecord | LocalityRecord


@batched(Audience.PUBLIC)
async def node(parents: list[None], context: Context, id: strawberry.ID) -> list[NodeRecord | None]:
    type_name, pk = from_global_id(id)
    loaders = context.loaders
    found: NodeRecord | None
    if type_name == "Property":
        found = await loaders.property_by_id.load(pk)
    elif type_name == "Sale":
        found = await loaders.sale_by_id.load(pk)
    else:
        found = await loaders.locality_by_id.load(pk)
    return [found] * len(parents)
