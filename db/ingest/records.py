"""One sale record, from either source format, validated into the tuple the loader stages.

The two formats carry the same fields: the CSV files in ../shared/data (parsed from the VG
weekly/yearly files, with derived columns) and the raw VG "B" records inside the weekly
zip/DAT files. Both go through `build_sale`, so the market-sale rules live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class NonMarketReason(StrEnum):
    """Why a recorded sale is kept but left out of statistics and models."""

    PART_INTEREST = "PART_INTEREST"  # the price bought a share, not the whole property
    PRICE_BELOW_1000 = "PRICE_BELOW_1000"  # nominal transfers, family deals, price 0 rows
    DATE_ERROR = "DATE_ERROR"  # contract before 1990, after registration, or after settlement
    MULTI_PARCEL = "MULTI_PARCEL"  # the full price is repeated on every parcel of the dealing


EARLIEST_PLAUSIBLE_CONTRACT = date(1990, 1, 1)


class RowError(ValueError):
    """A field that cannot be read; the loader reports it with file and line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


# Column order of the staging table and of the tuples `build_sale` returns.
STAGE_COLUMNS: tuple[str, ...] = (
    "district_code",
    "vg_property_id",
    "strata_lot",
    "downloaded_at",
    "property_name",
    "unit_number",
    "house_number",
    "street_name",
    "locality_id",
    "postcode",
    "area_m2",
    "contract_date",
    "settlement_date",
    "price",
    "zoning",
    "nature",
    "primary_purpose",
    "sale_code",
    "interest_pct",
    "dealing_number",
    "parcels_in_sale",
    "is_market_sale",
    "non_market_reasons",
    "source_file",
    "district",
)
LOCALITY_SLOT = STAGE_COLUMNS.index("locality_id")


@dataclass(frozen=True, slots=True)
class RawSale:
    """The fields of one sale as text, exactly as either format spells them."""

    district_code: str
    property_id: str
    download_datetime: str  # YYYYMMDD HH:MM
    property_name: str
    unit_number: str
    house_number: str
    street_name: str
    locality: str
    postcode: str
    area: str
    area_type: str
    contract_date: str  # YYYY-MM-DD (CSV) or YYYYMMDD (DAT)
    settlement_date: str
    price: str
    zoning: str
    nature: str
    primary_purpose: str
    strata_lot: str
    sale_code: str
    interest_pct: str
    dealing_number: str
    source_file: str


def parse_date(value: str, field: str) -> date:
    try:
        if len(value) == 8 and value.isdigit():
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        return date.fromisoformat(value)
    except ValueError:
        raise RowError(field, f"not a date: {value!r}") from None


def parse_download_time(value: str) -> datetime:
    # "20240101 01:07"; strptime is ten times slower than slicing on millions of rows.
    try:
        return datetime(
            int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]), int(value[12:14])
        )
    except ValueError:
        raise RowError("download_datetime", f"not YYYYMMDD HH:MM: {value!r}") from None


def area_in_m2(area: str, area_type: str) -> float | None:
    if not area:
        return None
    try:
        value = float(area)
    except ValueError:
        raise RowError("area", f"not a number: {area!r}") from None
    if area_type == "H":
        return value * 10_000
    if area_type == "M":
        return value
    return None  # a number without a unit: unknown, rather than guessed


def non_market_reasons(
    *,
    interest_pct: float,
    price: int,
    contract: date,
    settlement: date | None,
    registered: datetime,
    parcels: int,
) -> list[NonMarketReason]:
    reasons: list[NonMarketReason] = []
    if interest_pct != 0:
        reasons.append(NonMarketReason.PART_INTEREST)
    if price < 1000:
        reasons.append(NonMarketReason.PRICE_BELOW_1000)
    if (
        contract < EARLIEST_PLAUSIBLE_CONTRACT
        or contract > registered.date()
        or (settlement is not None and settlement < contract)
    ):
        reasons.append(NonMarketReason.DATE_ERROR)
    if parcels > 1:
        reasons.append(NonMarketReason.MULTI_PARCEL)
    return reasons


def build_sale(
    raw: RawSale,
    *,
    parcels_in_sale: int,
    locality: object,
    district: str | None,
) -> tuple[Any, ...]:
    """Validate `raw` and return its staging tuple (in STAGE_COLUMNS order).

    `locality` fills the locality_id slot: the loader stages the (name, postcode) key and
    swaps in the id once the locality exists (see LOCALITY_SLOT)."""
    if not raw.property_id:
        raise RowError("property_id", "missing (the sale cannot be linked to a property)")
    try:
        vg_property_id = int(raw.property_id)
    except ValueError:
        raise RowError("property_id", f"not a number: {raw.property_id!r}") from None
    if not raw.dealing_number:
        raise RowError("dealing_number", "missing")
    if not raw.price:
        raise RowError("purchase_price", "missing")
    try:
        price = int(raw.price)
    except ValueError:
        raise RowError("purchase_price", f"not whole dollars: {raw.price!r}") from None
    if price < 0:
        raise RowError("purchase_price", f"negative: {price}")
    if not raw.contract_date:
        raise RowError("contract_date", "missing")
    contract = parse_date(raw.contract_date, "contract_date")
    settlement = parse_date(raw.settlement_date, "settlement_date") if raw.settlement_date else None
    registered = parse_download_time(raw.download_datetime)
    try:
        interest = float(raw.interest_pct) if raw.interest_pct else 0.0
    except ValueError:
        raise RowError("interest_of_sale_pct", f"not a number: {raw.interest_pct!r}") from None
    reasons = non_market_reasons(
        interest_pct=interest,
        price=price,
        contract=contract,
        settlement=settlement,
        registered=registered,
        parcels=parcels_in_sale,
    )
    return (
        raw.district_code,
        vg_property_id,
        raw.strata_lot,
        registered,
        raw.property_name or None,
        raw.unit_number or None,
        raw.house_number or None,
        raw.street_name or None,
        locality,
        raw.postcode,
        area_in_m2(raw.area, raw.area_type),
        contract,
        settlement,
        price,
        raw.zoning or None,
        raw.nature or None,
        raw.primary_purpose or None,
        raw.sale_code or None,
        interest,
        raw.dealing_number,
        parcels_in_sale,
        not reasons,
        ",".join(reasons),
        raw.source_file,
        district,
    )
