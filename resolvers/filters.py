"""Validation of filter arguments into repository criteria (BAD_USER_INPUT on nonsense)."""

from __future__ import annotations

from datetime import date
from typing import TypeVar

from app.errors import UserInputError
from db.repositories.properties import BoundingBox as BoxCriteria
from db.repositories.properties import PropertyCriteria
from db.repositories.stats import StatsWindow
from schema.inputs import BoundingBox, PropertyFilter

T = TypeVar("T", int, float, date)

MAX_NAME_LENGTH = 64


def check_range(low: T | None, high: T | None, *, low_name: str, high_name: str) -> None:
    if low is not None and high is not None and low > high:
        raise UserInputError(
            f"`{low_name}` ({low}) is greater than `{high_name}` ({high})", argument=low_name
        )


def check_not_negative(value: float | None, name: str) -> None:
    if value is not None and value < 0:
        raise UserInputError(f"`{name}` must not be negative, got {value}", argument=name)


def check_postcode(postcode: str | None, name: str = "postcode") -> str | None:
    if postcode is not None and not (len(postcode) == 4 and postcode.isdigit()):
        raise UserInputError(f"`{name}` must be four digits, got {postcode!r}", argument=name)
    return postcode


def check_name(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not value.strip() or len(value) > MAX_NAME_LENGTH or "\x00" in value:
        raise UserInputError(
            f"`{name}` must be 1 to {MAX_NAME_LENGTH} characters, got {value!r}", argument=name
        )
    return value


def _box(box: BoundingBox) -> BoxCriteria:
    for name, value, limit in (
        ("bbox.minLat", box.min_lat, 90),
        ("bbox.maxLat", box.max_lat, 90),
        ("bbox.minLon", box.min_lon, 180),
        ("bbox.maxLon", box.max_lon, 180),
    ):
        if not -limit <= value <= limit:
            raise UserInputError(f"`{name}` must be within ±{limit}°, got {value}", argument=name)
    check_range(box.min_lat, box.max_lat, low_name="bbox.minLat", high_name="bbox.maxLat")
    check_range(box.min_lon, box.max_lon, low_name="bbox.minLon", high_name="bbox.maxLon")
    return BoxCriteria(box.min_lat, box.min_lon, box.max_lat, box.max_lon)


def property_criteria(value: PropertyFilter | None) -> PropertyCriteria:
    if value is None:
        return PropertyCriteria()
    check_name(value.locality_name, "filter.localityName")
    check_name(value.district, "filter.district")
    check_postcode(value.postcode, "filter.postcode")
    for name, number in (
        ("filter.minAreaM2", value.min_area_m2),
        ("filter.maxAreaM2", value.max_area_m2),
        ("filter.minLastSalePrice", value.min_last_sale_price),
        ("filter.maxLastSalePrice", value.max_last_sale_price),
    ):
        check_not_negative(number, name)
    check_range(
        value.min_area_m2,
        value.max_area_m2,
        low_name="filter.minAreaM2",
        high_name="filter.maxAreaM2",
    )
    check_range(
        value.min_last_sale_price,
        value.max_last_sale_price,
        low_name="filter.minLastSalePrice",
        high_name="filter.maxLastSalePrice",
    )
    check_range(
        value.sold_after,
        value.sold_before,
        low_name="filter.soldAfter",
        high_name="filter.soldBefore",
    )
    return PropertyCriteria(
        locality_name=value.locality_name,
        postcode=value.postcode,
        district=value.district,
        is_strata=value.is_strata,
        nature=value.nature.value if value.nature is not None else None,
        min_area_m2=value.min_area_m2,
        max_area_m2=value.max_area_m2,
        min_last_sale_price=value.min_last_sale_price,
        max_last_sale_price=value.max_last_sale_price,
        sold_after=value.sold_after,
        sold_before=value.sold_before,
        bbox=_box(value.bbox) if value.bbox is not None else None,
    )


def stats_window(
    date_from: date | None, date_to: date | None, is_strata: bool | None
) -> StatsWindow:
    check_range(date_from, date_to, low_name="from", high_name="to")
    return StatsWindow(date_from, date_to, is_strata)
