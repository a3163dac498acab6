"""Locality statistics over market sales: count, quartiles of price, median price per m².

Quartiles interpolate linearly between ranks (PostgreSQL's percentile_cont). SQLite has no
percentile aggregate, so there the prices come back sorted and the same formula runs here.

On PostgreSQL the default window (all market sales) is served from `locality_stats_summary`
while the row's `stats_version` equals its locality's: every write that changes a locality's
market sales moves that version in its own transaction (`bump_stats_versions`; the
ingest's `BUMP_STAGED_STATS_VERSIONS` in db/ingest/merge_sql.py), so a summary row is
served only for the sales it was computed from. SQLite keeps computing every time (its
embedded data is small and it has one writer).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

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


DEFAULT_WINDOW = StatsWindow()

# The live figures of the requested localities whose summary is missing or stale, stored with
# the version read in the same statement (so in the same snapshot as the sales), and every
# requested locality's figures returned: one statement, as before. A concurrent write that
# commits after this snapshot has moved the version, so what this stores is stale by version
# and never served; the upsert never replaces a row computed at a newer version. Rows are
# written in locality order so two concurrent fills lock their rows in the same order.
SUMMARISED_STATS = sa.text(
    """
WITH wanted AS (
    SELECT id, stats_version FROM localities WHERE id = ANY(:keys)
),
fresh AS (
    SELECT m.locality_id, m.sales_count, m.median_price, m.p25_price, m.p75_price,
        m.median_price_per_m2
    FROM wanted w
    JOIN locality_stats_summary m
        ON m.locality_id = w.id AND m.stats_version = w.stats_version
),
live AS (
    SELECT w.id AS locality_id, w.stats_version, count(s.price) AS sales_count,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY s.price) AS median_price,
        percentile_cont(0.25) WITHIN GROUP (ORDER BY s.price) AS p25_price,
        percentile_cont(0.75) WITHIN GROUP (ORDER BY s.price) AS p75_price,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY s.price / s.area_m2)
            FILTER (WHERE s.area_m2 > 0) AS median_price_per_m2
    FROM wanted w
    LEFT JOIN sales s ON s.locality_id = w.id AND s.is_market_sale
    WHERE w.id NOT IN (SELECT locality_id FROM fresh)
    GROUP BY w.id, w.stats_version
),
stored AS (
    INSERT INTO locality_stats_summary AS m (
        locality_id, stats_version, sales_count, median_price, p25_price, p75_price,
        median_price_per_m2
    )
    SELECT locality_id, stats_version, sales_count, median_price, p25_price, p75_price,
        median_price_per_m2
    FROM live
    ORDER BY locality_id
    ON CONFLICT (locality_id) DO UPDATE SET
        stats_version = excluded.stats_version, sales_count = excluded.sales_count,
        median_price = excluded.median_price, p25_price = excluded.p25_price,
        p75_price = excluded.p75_price, median_price_per_m2 = excluded.median_price_per_m2
    WHERE m.stats_version < excluded.stats_version
)
SELECT * FROM fresh
UNION ALL
SELECT locality_id, sales_count, median_price, p25_price, p75_price, median_price_per_m2
FROM live
"""
).bindparams(sa.bindparam("keys", type_=ARRAY(sa.BigInteger())))

_BUMP = sa.text(
    "UPDATE localities SET stats_version = stats_version + 1 WHERE id = ANY(:keys)"
).bindparams(sa.bindparam("keys", type_=ARRAY(sa.BigInteger())))


async def bump_stats_versions(conn: AsyncConnection, locality_ids: Sequence[int]) -> None:
    """In the transaction of a write that changes these localities' market sales."""
    ids = sorted(set(locality_ids))  # one lock order for concurrent writers
    if conn.dialect.name == "postgresql":
        await conn.execute(_BUMP, {"keys": ids})
    else:
        localities = tables.localities
        await conn.execute(
            sa.update(localities)
            .where(localities.c.id.in_(ids))
            .values(stats_version=localities.c.stats_version + 1)
        )


async def locality_stats(
    db: Database, locality_ids: Sequence[int], window: StatsWindow
) -> dict[int, LocalityStatsRecord]:
    if db.is_postgresql:
        if window == DEFAULT_WINDOW:
            return await _stats_summarised(db, locality_ids)
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


async def _stats_summarised(db: Database, ids: Sequence[int]) -> dict[int, LocalityStatsRecord]:
    rows = await db.fetch_all(SUMMARISED_STATS, {"keys": list(ids)}, prepared=True)
    # A locality without market sales is left out, as the live statement leaves it out.
    return {row[0]: LocalityStatsRecord(*row[1:]) for row in rows if row[1]}


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


# -- statistics per period (Locality.statsSeries) --------------------------------------------


@dataclass(slots=True)
class PeriodStatsRecord:
    """One period of a locality's market sales, quartiles as in LocalityStats."""

    period: str
    period_start: date
    sales_count: int
    median_price: float | None
    p25_price: float | None
    p75_price: float | None


INTERVALS = ("QUARTER", "YEAR")


def period_of(day: date, interval: str) -> tuple[str, date]:
    """'2024-Q1' and its first day, or '2024' and its first day."""
    if interval == "YEAR":
        return str(day.year), date(day.year, 1, 1)
    quarter = (day.month - 1) // 3 + 1
    return f"{day.year}-Q{quarter}", date(day.year, 3 * quarter - 2, 1)


async def locality_stats_series(
    db: Database, locality_ids: Sequence[int], window: StatsWindow, interval: str
) -> dict[int, list[PeriodStatsRecord]]:
    """The periods with at least one market sale in the window, oldest first, per locality:
    one statement for all of them."""
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}")
    if db.is_postgresql:
        return await _series_in_database(db, locality_ids, window, interval)
    return await _series_in_process(db, locality_ids, window, interval)


async def _series_in_database(
    db: Database, ids: Sequence[int], window: StatsWindow, interval: str
) -> dict[int, list[PeriodStatsRecord]]:
    def build() -> sa.Select[Any]:
        # A timestamp without time zone, so the period does not depend on the session's zone.
        start = sa.cast(
            sa.func.date_trunc(
                sa.literal_column(f"'{interval.lower()}'"), sa.cast(s.c.contract_date, sa.DateTime)
            ),
            sa.Date,
        ).label("period_start")

        def quantile(fraction: float) -> sa.ColumnElement[float]:
            return sa.func.percentile_cont(fraction).within_group(s.c.price)

        return (
            sa.select(
                s.c.locality_id,
                start,
                sa.func.count(),
                quantile(0.5),
                quantile(0.25),
                quantile(0.75),
            )
            .where(*_conditions(db, window))
            .group_by(s.c.locality_id, start)
            .order_by(s.c.locality_id, start)
        )

    statement = cached_statement(("locality_stats_series", interval, *_shape(db, window)), build)
    result: dict[int, list[PeriodStatsRecord]] = defaultdict(list)
    for locality_id, start, count, median, p25, p75 in await db.fetch_all(
        statement, _parameters(ids, window), prepared=True
    ):
        label, _ = period_of(start, interval)
        result[locality_id].append(PeriodStatsRecord(label, start, count, median, p25, p75))
    return result


async def _series_in_process(
    db: Database, ids: Sequence[int], window: StatsWindow, interval: str
) -> dict[int, list[PeriodStatsRecord]]:
    statement = cached_statement(
        ("locality_series_prices", *_shape(db, window)),
        lambda: (
            sa.select(s.c.locality_id, s.c.contract_date, s.c.price)
            .where(*_conditions(db, window))
            .order_by(s.c.locality_id, s.c.price)
        ),
    )
    # Rows come sorted by price, so each period's list is sorted as it fills.
    prices: dict[int, dict[tuple[str, date], list[float]]] = defaultdict(lambda: defaultdict(list))
    for locality_id, contract_date, price in await db.fetch_all(
        statement, _parameters(ids, window)
    ):
        prices[locality_id][period_of(contract_date, interval)].append(price)
    return {
        locality_id: [
            PeriodStatsRecord(
                label,
                start,
                len(values),
                percentile(values, 0.5),
                percentile(values, 0.25),
                percentile(values, 0.75),
            )
            for (label, start), values in sorted(periods.items(), key=lambda item: item[0][1])
        ]
        for locality_id, periods in prices.items()
    }
