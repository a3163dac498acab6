"""Saved searches, watches and alerts: what the API does on a user's behalf.

Every statement runs in the user's `owner_scope` (db/repositories/alerts.py), so PostgreSQL's
row-level security backs the WHERE clauses. Someone else's id reads as missing: NOT_FOUND,
never FORBIDDEN, so ids tell nothing about other users.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

from app.errors import NotFoundError, UserInputError
from app.settings import Settings
from db.engine import Database
from db.records import Page
from db.repositories import alerts as repo
from db.repositories.alerts import AlertRecord, SavedSearchRecord, SearchColumns, WatchRecord
from db.repositories.properties import BoundingBox, PropertyCriteria

FREQUENCIES = ("INSTANT", "DAILY", "WEEKLY")
MAX_SEARCH_NAME = 100
TOO_BROAD = (
    "a saved search needs a place: filter.localityName, filter.postcode, filter.district "
    "or filter.bbox"
)


def _upper(value: str | None) -> str | None:
    return None if value is None else value.strip().upper()


def search_columns(criteria: PropertyCriteria) -> SearchColumns:
    """The columns matching compares, from a validated filter; BAD_USER_INPUT when it names
    no place (it would match every sale in the state)."""
    locality, district = _upper(criteria.locality_name), _upper(criteria.district)
    if locality is not None:
        anchor = f"L:{locality}"
    elif criteria.postcode is not None:
        anchor = f"P:{criteria.postcode}"
    elif district is not None:
        anchor = f"D:{district}"
    elif criteria.bbox is not None:
        anchor = "B"
    else:
        raise UserInputError(TOO_BROAD, argument="input.filter")
    box = criteria.bbox
    return SearchColumns(
        anchor=anchor,
        locality_name=locality,
        postcode=criteria.postcode,
        district=district,
        is_strata=criteria.is_strata,
        nature=criteria.nature,
        min_area_m2=criteria.min_area_m2,
        max_area_m2=criteria.max_area_m2,
        min_price=criteria.min_last_sale_price,
        max_price=criteria.max_last_sale_price,
        sold_after=criteria.sold_after,
        sold_before=criteria.sold_before,
        min_lat=box.min_lat if box else None,
        min_lon=box.min_lon if box else None,
        max_lat=box.max_lat if box else None,
        max_lon=box.max_lon if box else None,
    )


def filter_json(criteria: PropertyCriteria) -> str:
    """The filter as given (names as typed), to show it back: the columns are normalised."""
    values: dict[str, Any] = {
        name: value.isoformat() if isinstance(value, date) else value
        for name, value in asdict(criteria).items()
        if value is not None and name not in ("locality_id", "bbox")
    }
    if criteria.locality_name is not None:
        values["locality_name"] = criteria.locality_name.strip()
    if criteria.district is not None:
        values["district"] = criteria.district.strip()
    if criteria.bbox is not None:
        values["bbox"] = asdict(criteria.bbox)
    return json.dumps(values, sort_keys=True)


def criteria_of(record: SavedSearchRecord) -> PropertyCriteria:
    """A saved search's filter, rebuilt from its JSON."""
    values: dict[str, Any] = json.loads(record.filter)
    for name in ("sold_after", "sold_before"):
        if name in values:
            values[name] = date.fromisoformat(values[name])
    if "bbox" in values:
        values["bbox"] = BoundingBox(**values["bbox"])
    return PropertyCriteria(**values)


def _name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_SEARCH_NAME or "\x00" in name:
        raise UserInputError(
            f"`input.name` must be 1 to {MAX_SEARCH_NAME} characters", argument="input.name"
        )
    return name


def _frequency(frequency: str) -> str:
    if frequency not in FREQUENCIES:  # the enum type makes this unreachable over GraphQL
        raise UserInputError(
            f"`input.frequency` must be one of {', '.join(FREQUENCIES)}",
            argument="input.frequency",
        )
    return frequency


def _limit_message(what: str, limit: int, argument: str) -> UserInputError:
    return UserInputError(
        f"at most {limit} {what} per user (PROPINTEL_MAX_{what.upper().replace(' ', '_')}): "
        "delete one first",
        argument=argument,
    )


class AlertService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    # -- saved searches ------------------------------------------------------------------

    async def create_saved_search(
        self, user_id: int, *, name: str, frequency: str, criteria: PropertyCriteria
    ) -> SavedSearchRecord:
        columns = search_columns(criteria)
        limit = self.settings.max_saved_searches
        try:
            return await repo.create_saved_search(
                self.db,
                user_id,
                name=_name(name),
                frequency=_frequency(frequency),
                filter_json=filter_json(criteria),
                columns=columns,
                limit=limit,
            )
        except repo.LimitReached:
            raise _limit_message("saved searches", limit, "input") from None

    async def update_saved_search(
        self,
        user_id: int,
        search_id: int,
        *,
        name: str | None = None,
        frequency: str | None = None,
        criteria: PropertyCriteria | None = None,
    ) -> SavedSearchRecord:
        columns = search_columns(criteria) if criteria is not None else None
        updated = await repo.update_saved_search(
            self.db,
            user_id,
            search_id,
            name=_name(name) if name is not None else None,
            frequency=_frequency(frequency) if frequency is not None else None,
            filter_json=filter_json(criteria) if criteria is not None else None,
            columns=columns,
        )
        if updated is None:
            raise NotFoundError("no such saved search", argument="id")
        return updated

    async def delete_saved_search(self, user_id: int, search_id: int) -> None:
        if not await repo.delete_saved_search(self.db, user_id, search_id):
            raise NotFoundError("no such saved search", argument="id")

    async def saved_searches(self, user_id: int) -> list[SavedSearchRecord]:
        return await repo.saved_searches(self.db, user_id)

    async def saved_searches_by_id(
        self, user_id: int, search_ids: Sequence[int]
    ) -> dict[int, SavedSearchRecord]:
        return await repo.saved_searches_by_id(self.db, user_id, search_ids)

    # -- watches ---------------------------------------------------------------------------

    async def watch(self, user_id: int, property_id: int, change_pct: float) -> WatchRecord:
        """The caller has checked that the property exists (NOT_FOUND otherwise)."""
        if not 0 < change_pct <= 100:
            raise UserInputError(
                f"`estimateChangePct` must be above 0 and at most 100, got {change_pct}",
                argument="estimateChangePct",
            )
        limit = self.settings.max_watches
        try:
            return await repo.watch(
                self.db, user_id, property_id, change_pct=change_pct, limit=limit
            )
        except repo.LimitReached:
            raise _limit_message("watches", limit, "id") from None

    async def unwatch(self, user_id: int, property_id: int) -> bool:
        return await repo.unwatch(self.db, user_id, property_id)

    async def watches(self, user_id: int) -> list[WatchRecord]:
        return await repo.watches(self.db, user_id)

    async def watched_among(self, user_id: int, property_ids: Sequence[int]) -> set[int]:
        return await repo.watched_among(self.db, user_id, property_ids)

    # -- alerts ----------------------------------------------------------------------------

    async def alerts(
        self, user_id: int, *, first: int, after: Sequence[Any] | None, unread_only: bool
    ) -> Page[AlertRecord]:
        return await repo.alerts_page(
            self.db, user_id, first=first, after=after, unread_only=unread_only
        )

    async def mark_read(self, user_id: int, alert_ids: Sequence[int] | None) -> int:
        try:
            return await repo.mark_read(self.db, user_id, alert_ids)
        except repo.AlertsNotFound:
            raise NotFoundError("no such alert among `ids`", argument="ids") from None
