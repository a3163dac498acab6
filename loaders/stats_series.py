"""Locality.statsSeries: per-period statistics of a batch of localities, one statement."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.cache import Resource
from db.repositories import stats
from db.repositories.stats import PeriodStatsRecord, StatsWindow
from loaders.base import GroupedLoader

Encoded = list[list[Any]]
"""A series as the cache holds it: [period, ISO first day, count, median, p25, p75] rows (the
cache's codec knows the shared records, not this one)."""


@dataclass(frozen=True, slots=True)
class StatsSeriesKey:
    locality_id: int
    window: StatsWindow
    interval: str


class StatsSeriesLoader(GroupedLoader[StatsSeriesKey, tuple[StatsWindow, str], Encoded]):
    resource = Resource.STATS

    def cache_key(self, key: StatsSeriesKey) -> str:
        window = key.window
        return (
            f"series:{key.interval}:{key.locality_id}:{window.date_from}:{window.date_to}:"
            f"{window.is_strata}"
        )

    def tags(self, key: StatsSeriesKey, value: Encoded) -> Iterable[str]:
        return (f"locality:{key.locality_id}",)

    @staticmethod
    def arguments(key: StatsSeriesKey) -> tuple[StatsWindow, str]:
        return key.window, key.interval

    async def fetch(
        self, keys: Sequence[StatsSeriesKey], arguments: tuple[StatsWindow, str]
    ) -> list[Encoded]:
        window, interval = arguments
        found = await stats.locality_stats_series(
            self.db, [k.locality_id for k in keys], window, interval
        )
        return [
            [
                [r.period, r.period_start.isoformat(), r.sales_count, *_prices(r)]
                for r in found.get(k.locality_id, [])
            ]
            for k in keys
        ]

    async def series(self, keys: Sequence[StatsSeriesKey]) -> list[list[PeriodStatsRecord]]:
        encoded = await self.load_many(keys)
        return [
            [
                PeriodStatsRecord(period, date.fromisoformat(start), count, median, p25, p75)
                for period, start, count, median, p25, p75 in rows
            ]
            for rows in encoded
        ]


def _prices(record: PeriodStatsRecord) -> list[float | None]:
    return [record.median_price, record.p25_price, record.p75_price]
