"""Saved searches, watches and alerts: thin resolvers over app/alerts/service.py.

Everything here is the caller's own: anonymous is UNAUTHENTICATED (`Property.isWatched`
answers false), someone else's id is NOT_FOUND. Nested objects: `sale`, `property` and
`matchedSales` through the request's loaders (public rows, one statement per batch);
`savedSearch` and `isWatched` read the caller's rows directly (`Audience.CALLER`: one
owner-scoped query per batch, never through a cache shared by callers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import strawberry

from app.context import Context, Info
from app.errors import ForbiddenError, NotFoundError, UnauthenticatedError, UserInputError
from db.records import Page, PropertyRecord, SaleRecord
from db.repositories.alerts import (
    DIGEST_SALE_LIMIT,
    NEWEST_FIRST,
    AlertRecord,
    SavedSearchRecord,
    WatchRecord,
)
from db.repositories.properties import PropertyCriteria
from resolvers.fields import Audience, batched
from resolvers.filters import property_criteria
from resolvers.pagination import cursor_values, page_size
from schema.alert_inputs import CreateSavedSearchInput, UpdateSavedSearchInput
from schema.enums import PropertyNature
from schema.ids import expect_global_id, to_global_id


def caller(info: Info | Context) -> int:
    context = info if isinstance(info, Context) else info.context
    user_id = context.principal.user_id
    if user_id is None:
        raise UnauthenticatedError()
    return user_id


def _own(info: Info, root: Any) -> int:
    """The caller, who must be the user `root` is (these lists are visible only to the
    account itself, under `me`; not through a User another operation returns)."""
    user_id = caller(info)
    if root.record.id != user_id:
        raise ForbiddenError("Visible only to the signed-in account itself (under `me`).")
    return user_id


def _filter(value: Any) -> PropertyCriteria:
    return property_criteria(value)


# -- mutations -------------------------------------------------------------------------------


async def create_saved_search(info: Info, input: CreateSavedSearchInput) -> SavedSearchRecord:
    user_id = caller(info)
    return await info.context.alerts.create_saved_search(
        user_id,
        name=input.name,
        frequency=input.frequency.value,
        criteria=_filter(input.filter),
    )


async def update_saved_search(
    info: Info, id: strawberry.ID, input: UpdateSavedSearchInput
) -> SavedSearchRecord:
    user_id = caller(info)
    search_id = expect_global_id(id, "SavedSearch")
    return await info.context.alerts.update_saved_search(
        user_id,
        search_id,
        name=input.name,
        frequency=input.frequency.value if input.frequency is not None else None,
        criteria=_filter(input.filter) if input.filter is not None else None,
    )


async def delete_saved_search(info: Info, id: strawberry.ID) -> bool:
    """True once deleted (its alerts stay, without their saved search)."""
    user_id = caller(info)
    await info.context.alerts.delete_saved_search(user_id, expect_global_id(id, "SavedSearch"))
    return True


async def watch_property(
    info: Info,
    id: strawberry.ID,
    estimate_change_pct: float = 5.0,
) -> WatchRecord:
    """Watches the property (PROPERTY_SOLD when it sells, ESTIMATE_CHANGED when its estimate
    moves by more than `estimateChangePct` percent); again: sets the threshold."""
    user_id = caller(info)
    property_id = expect_global_id(id, "Property")
    if not 0 < estimate_change_pct <= 100:  # before the lookup: input first
        raise UserInputError(
            f"`estimateChangePct` must be above 0 and at most 100, got {estimate_change_pct}",
            argument="estimateChangePct",
        )
    if await info.context.loaders.property_by_id.load(property_id) is None:
        raise NotFoundError(f"no property {id!r}", argument="id")
    return await info.context.alerts.watch(user_id, property_id, estimate_change_pct)


async def unwatch_property(info: Info, id: strawberry.ID) -> bool:
    """True when the property was watched (false: it was not; nothing changes)."""
    user_id = caller(info)
    property_id = expect_global_id(id, "Property")
    removed = await info.context.alerts.unwatch(user_id, property_id)
    if not removed and await info.context.loaders.property_by_id.load(property_id) is None:
        raise NotFoundError(f"no property {id!r}", argument="id")
    return removed


async def mark_alerts_read(
    info: Info, ids: list[strawberry.ID] | None = None, all: bool | None = None
) -> int:
    """Marks the alerts of `ids`, or every alert with `all: true`, read; returns how many
    were unread. Give exactly one of the two."""
    user_id = caller(info)
    if (ids is None) == (not all):
        raise UserInputError("Give exactly one of `ids` and `all: true`.", argument="ids")
    alert_ids = None
    if ids is not None:
        alert_ids = [expect_global_id(i, "Alert", argument="ids") for i in ids]
    return await info.context.alerts.mark_read(user_id, alert_ids)


# -- me { savedSearches watches alerts } ---------------------------------------------------


async def saved_searches(root: Any, info: Info) -> list[SavedSearchRecord]:
    return await info.context.alerts.saved_searches(_own(info, root))


async def watches(root: Any, info: Info) -> list[WatchRecord]:
    return await info.context.alerts.watches(_own(info, root))


async def alerts(
    root: Any,
    info: Info,
    first: int = 20,
    after: str | None = None,
    unread_only: bool = False,
) -> Page[AlertRecord]:
    """Newest first (keyset pages: a cursor resumes after its alert however many arrive)."""
    user_id = _own(info, root)
    size = page_size(info.context, first)
    after_values = cursor_values(NEWEST_FIRST, after)
    return await info.context.alerts.alerts(
        user_id, first=size, after=after_values, unread_only=unread_only
    )


# -- fields ----------------------------------------------------------------------------------


@batched(Audience.CALLER)
async def is_watched(parents: list[PropertyRecord], context: Context) -> list[bool]:
    """Whether the caller watches it (false when anonymous): one query per batch, keyed by
    the caller, never cached."""
    user_id = context.principal.user_id
    if user_id is None or not parents:
        return [False] * len(parents)
    watched = await context.alerts.watched_among(user_id, [p.id for p in parents])
    return [p.id in watched for p in parents]


@batched(Audience.PUBLIC)
async def property_of(
    parents: list[AlertRecord | WatchRecord], context: Context
) -> list[PropertyRecord | None]:
    """None when the alert names no property, or the property was removed."""
    ids = [p.property_id for p in parents]
    found = await context.loaders.property_by_id.load_many([i for i in ids if i is not None])
    by_id = {record.id: record for record in found if record is not None}
    return [by_id.get(i) if i is not None else None for i in ids]


@batched(Audience.PUBLIC)
async def sale_of(parents: list[AlertRecord], context: Context) -> list[SaleRecord | None]:
    ids = [p.sale_id for p in parents]
    found = await context.loaders.sale_by_id.load_many([i for i in ids if i is not None])
    by_id = {record.id: record for record in found if record is not None}
    return [by_id.get(i) if i is not None else None for i in ids]


@batched(Audience.CALLER)
async def saved_search_of(
    parents: list[AlertRecord], context: Context
) -> list[SavedSearchRecord | None]:
    """The caller's own search (one owner-scoped query per batch); None once deleted."""
    ids = [p.saved_search_id for p in parents]
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return [None] * len(parents)
    found = await context.alerts.saved_searches_by_id(caller(context), wanted)
    return [found.get(i) if i is not None else None for i in ids]


def _data(root: AlertRecord) -> dict[str, Any]:
    if not root.data:
        return {}
    value = json.loads(root.data)
    return value if isinstance(value, dict) else {}


def match_count(root: AlertRecord) -> int | None:
    if root.kind != "DIGEST":
        return None
    count = _data(root).get("matchCount")
    return int(count) if isinstance(count, int) else None


@batched(Audience.PUBLIC)
async def matched_sales(parents: list[AlertRecord], context: Context) -> list[list[SaleRecord]]:
    """A DIGEST's sales (its first DIGEST_SALE_LIMIT), in the order they were recorded;
    empty for other kinds. One statement for every digest of the batch."""
    wanted: list[list[int]] = []
    for parent in parents:
        ids = _data(parent).get("saleIds") if parent.kind == "DIGEST" else None
        wanted.append([int(i) for i in ids[:DIGEST_SALE_LIMIT]] if isinstance(ids, list) else [])
    every = sorted({i for ids in wanted for i in ids})
    found = await context.loaders.sale_by_id.load_many(every) if every else []
    by_id = {record.id: record for record in found if record is not None}
    return [[by_id[i] for i in ids if i in by_id] for ids in wanted]


@dataclass(frozen=True, slots=True)
class EstimateChangeRecord:
    previous: int
    current: int
    change_pct: float


def estimate_change(root: AlertRecord) -> EstimateChangeRecord | None:
    if root.kind != "ESTIMATE_CHANGED":
        return None
    data = _data(root)
    try:
        return EstimateChangeRecord(
            int(data["previous"]), int(data["current"]), float(data["changePct"])
        )
    except (KeyError, TypeError, ValueError):
        return None


def alert_id(root: AlertRecord) -> strawberry.ID:
    return to_global_id("Alert", root.id)


def saved_search_id(root: SavedSearchRecord) -> strawberry.ID:
    return to_global_id("SavedSearch", root.id)


def watch_id(root: WatchRecord) -> strawberry.ID:
    return to_global_id("Watch", root.id)


def nature(root: PropertyCriteria) -> PropertyNature | None:
    return PropertyNature(root.nature) if root.nature is not None else None
