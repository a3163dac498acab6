"""Writes: recordSale and updateProperty (admin). Each commits, then invalidates every cached
entry the change can alter (app/cache/service.py `property_tags`) before it returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import strawberry

from app.context import Info
from app.errors import ConflictError, NotFoundError, UserInputError
from db.ingest.records import EARLIEST_PLAUSIBLE_CONTRACT
from db.records import PropertyRecord, SaleRecord
from db.repositories import writes
from resolvers.admin import require_admin
from schema.ids import expect_global_id
from schema.inputs import RecordSaleInput, UpdatePropertyInput

MAX_PRICE = 2**31 - 1  # Sale.price is a GraphQL Int
TEXT_LIMITS = {"zoning": 16, "primary_purpose": 64, "property_name": 128, "sale_code": 8}


def _text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > TEXT_LIMITS[field]:
        raise UserInputError(
            f"`input.{field}` must be 1 to {TEXT_LIMITS[field]} characters",
            argument=f"input.{field}",
        )
    return value


def _area(value: float | None) -> float | None:
    if value is not None and not 0 < value <= 100_000_000:
        raise UserInputError(
            f"`input.areaM2` must be above 0 and at most 100,000,000 m², got {value}",
            argument="input.areaM2",
        )
    return value


def new_sale(input: RecordSaleInput) -> writes.NewSale:
    today = datetime.now(UTC).date()
    property_id = expect_global_id(input.property_id, "Property", argument="input.propertyId")
    if not EARLIEST_PLAUSIBLE_CONTRACT <= input.contract_date <= today:
        raise UserInputError(
            f"`input.contractDate` must be between {EARLIEST_PLAUSIBLE_CONTRACT} and today",
            argument="input.contractDate",
        )
    settlement = input.settlement_date
    if settlement is not None and not input.contract_date <= settlement <= today + timedelta(
        days=366
    ):
        raise UserInputError(
            "`input.settlementDate` must be on or after the contract date, within a year of today",
            argument="input.settlementDate",
        )
    if not 0 <= input.price <= MAX_PRICE:
        raise UserInputError(f"`input.price` must be 0 to {MAX_PRICE}", argument="input.price")
    dealing = input.dealing_number.strip().upper()
    if not (1 <= len(dealing) <= 32 and dealing.isalnum()):
        raise UserInputError(
            "`input.dealingNumber` must be 1 to 32 letters and digits",
            argument="input.dealingNumber",
        )
    if not 0 <= input.interest_pct <= 100:
        raise UserInputError("`input.interestPct` must be 0 to 100", argument="input.interestPct")
    if not 1 <= input.parcels_in_sale <= 1000:
        raise UserInputError(
            "`input.parcelsInSale` must be 1 to 1000", argument="input.parcelsInSale"
        )
    return writes.NewSale(
        property_id=property_id,
        contract_date=input.contract_date,
        settlement_date=settlement,
        price=input.price,
        dealing_number=dealing,
        sale_code=_text(input.sale_code, "sale_code"),
        interest_pct=input.interest_pct,
        area_m2=_area(input.area_m2),
        parcels_in_sale=input.parcels_in_sale,
    )


async def record_sale(info: Info, input: RecordSaleInput) -> SaleRecord:
    require_admin(info)
    sale = new_sale(input)
    try:
        recorded = await writes.record_sale(info.context.db, sale)
    except writes.PropertyNotFound:
        raise NotFoundError(
            f"no property {input.property_id!r}", argument="input.propertyId"
        ) from None
    except writes.DuplicateSale:
        raise ConflictError(
            f"dealing {sale.dealing_number} is already recorded for this property",
            argument="input.dealingNumber",
        ) from None
    if info.context.caching is not None:
        await info.context.caching.invalidate_property(recorded.property_id, recorded.locality_id)
    return recorded


def property_changes(input: UpdatePropertyInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if input.zoning is not strawberry.UNSET:
        changes["zoning"] = _text(input.zoning, "zoning")
    if input.primary_purpose is not strawberry.UNSET:
        changes["primary_purpose"] = _text(input.primary_purpose, "primary_purpose")
    if input.property_name is not strawberry.UNSET:
        changes["property_name"] = _text(input.property_name, "property_name")
    if input.area_m2 is not strawberry.UNSET:
        changes["area_m2"] = _area(input.area_m2)
    if input.nature is not strawberry.UNSET:
        changes["nature"] = input.nature.value if input.nature is not None else None
    if not changes:
        raise UserInputError("`input` changes nothing: give at least one field", argument="input")
    return changes


async def update_property(
    info: Info, id: strawberry.ID, input: UpdatePropertyInput
) -> PropertyRecord:
    require_admin(info)
    property_id = expect_global_id(id, "Property")
    changes = property_changes(input)
    try:
        updated = await writes.update_property(info.context.db, property_id, changes)
    except writes.PropertyNotFound:
        raise NotFoundError(f"no property {id!r}", argument="id") from None
    if info.context.caching is not None:
        await info.context.caching.invalidate_property(updated.id, updated.locality_id)
    return updated
