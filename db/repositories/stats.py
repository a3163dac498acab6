"""Locality statistics over market sales: count, quartiles of price, median price per m².

Quartiles interpolate linearly between ranks (PostgreSQL's percentile_cont). SQLite has no
percentile aggregate, so there the prices come back sorted and the same formula runs here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from db import tables
from db.engine import Database
from db.records import LocalityStatsRecord
from db.repositories.batching import cached_statement, keys_param

s = tables.sales


@dataclass(frozen=True)
class StatsWindow:
    date_from: date | None = None
    date_to: date | None = None
    is_strata: bool | None = None


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as percentile_cont."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _conditions(db: Database, window: StatsWindow) -> list[sa.ColumnElement[bool]]:
    # `is_market_sale` bare (not `IS true`), so PostgreSQL matches the partial index.
    where: list[sa.ColumnElement[bool]] = [s.c.is_market_sale, keys_param(db, s.c.locality_id)]
    if window.date_from is not None:
        where.append(s.c.contract_date >= sa.bindparam("date_from", type_=sa.Date()))
    if window.date_to is not None:
        where.append(s.c.contract_date <= sa.bindparam("date_to", type_=sa.Date()))
    if window.is_strata is not None:
        where.append(s.c.is_strata == sa.bindparam("is_strata", type_=sa.Boolean()))
    return where


def _parameters(ids: Sequence[int], window: StatsWindow) -> dict[str, object]:
    return {
        "keys": list(ids),
        "date_from": window.date_from,
        "date_to": window.date_to,
        "is_strata": window.is_strata,
    }


def _shape(db: Database, window: StatsWindow) -> tuple[object, ...]:
    return (db.dialect, window.date_from is None, window.date_to is None, window.is_strata is None)


async def locality_stats(
    db: Database, locality_ids: Sequence[int], window: StatsWindow
) -> dict[int, LocalityStatsRecord]:
    if db.is_postgresql:
        return await _stats_in_database(db, locality_ids, window)
    return await _stats_in_process(db, locality_ids, window)


async def _stats_in_database(
    db: Database, ids: Sequence[int], window: StatsWindow
) -> dict[int, LocalityStatsRecord]:
    def build() -> sa.Select[Any]:
        def quantile(fraction: float) -> sa.ColumnElement[float]:
            return sa.func.percentile_cont(fraction).within_group(s.c.price)

        per_m2 = (
            sa.func.percentile_cont(0.5)
            .within_group(s.c.price / s.c.area_m2)
            .filter(s.c.area_m2 > 0)
        )
        return (
            sa.select(
                s.c.locality_id,
                sa.func.count(),
                quantile(0.5),
                quantile(0.25),
                quantile(0.75),
                per_m2,
            )
            .where(*_conditions(db, window))
            .group_by(s.c.locality_id)
        )

    statement = cached_statement(("locality_stats", *_shape(db, window)), build)
    rows = await db.fetch_all(statement, _parameters(ids, window), prepared=True)
    return {row[0]: LocalityStatsRecord(*row[1:]) for row in rows}


async def _stats_in_process(
    db: Database, ids: Sequence[int], window: StatsWindow
) -> dict[int, LocalityStatsRecord]:
    statement = cached_statement(
        ("locality_prices", *_shape(db, window)),
        lambda: (
            sa.select(s.c.locality_id, s.c.price, s.c.area_m2)
            .where(*_conditions(db, window))
            .order_by(s.c.locality_id, s.c.price)
        ),
    )
    prices: dict[int, list[float]] = defaultdict(list)
    per_m2: dict[int, list[float]] = defaultdict(list)
    for locality_id, price, area in await db.fetch_all(statement, _parameters(ids, window)):
        prices[locality_id].append(price)
        if area:
            per_m2[locality_id].append(price / area)
    result = {}
    for locality_id, values in prices.items():
        ratios = sorted(per_m2[locality_id])
        result[locality_id] = LocalityStatsRecord(
            sales_count=len(values),
            median_price=percentile(values, 0.5),
            p25_price=percentile(values, 0.25),
            p75_price=percentile(values, 0.75),
            median_price_per_m2=percentile(ratios, 0.5),
        )
    return result
