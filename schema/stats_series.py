"""Locality.statsSeries: a locality's market-sale statistics per quarter or year."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Any

import strawberry

from db.repositories.stats import PeriodStatsRecord


@strawberry.enum(description="The length of a statistics period.")
class StatsInterval(Enum):
    QUARTER = "QUARTER"
    YEAR = "YEAR"


@strawberry.type(
    description="A period's statistics over market sales (as LocalityStats: quartiles "
    "interpolate linearly between ranks, PostgreSQL's percentile_cont)."
)
class LocalityPeriodStats:
    period: str = strawberry.field(description="'2024-Q1' (QUARTER) or '2024' (YEAR).")
    period_start: date = strawberry.field(description="The period's first day.")
    sales_count: int
    median_price: float | None
    p25_price: float | None = strawberry.field(description="First quartile of price.")
    p75_price: float | None = strawberry.field(description="Third quartile of price.")

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, PeriodStatsRecord)
