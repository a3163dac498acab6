"""Resolvers of Sale's fields."""

from __future__ import annotations

import strawberry

from app.context import Context
from db.ingest.records import NonMarketReason
from db.records import Page, PropertyRecord, SaleRecord
from resolvers.fields import Audience, batched
from schema.ids import to_global_id


def global_id(root: SaleRecord) -> strawberry.ID:
    return to_global_id("Sale", root.id)


def non_market_reasons(root: SaleRecord) -> list[NonMarketReason]:
    return [NonMarketReason(r) for r in root.non_market_reasons.split(",") if r]


@batched(Audience.PUBLIC)
async def property_of_sale(
    parents: list[SaleRecord], context: Context
) -> list[PropertyRecord | None]:
    """None once the property has been soft-deleted."""
    return await context.loaders.property_by_id.load_many([p.property_id for p in parents])


@batched(Audience.PUBLIC)
async def total_count(parents: list[Page[SaleRecord]], context: Context) -> list[int]:
    """SaleConnection.totalCount (of `Property.sales`): exact, one statement per batch."""
    counts = await context.loaders.sales_count.load_many([page.counted for page in parents])
    return [count or 0 for count in counts]
