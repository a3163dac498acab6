from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.cache import Resource
from db.records import EMPTY_STATS, LocalityStatsRecord
from db.repositories import stats
from db.repositories.stats import StatsWindow
from loaders.base import GroupedLoader


@dataclass(frozen=True, slots=True)
class LocalityStatsKey:
    locality_id: int
    window: StatsWindow


class LocalityStatsLoader(GroupedLoader[LocalityStatsKey, StatsWindow, LocalityStatsRecord]):
    resource = Resource.STATS

    def cache_key(self, key: LocalityStatsKey) -> str:
        window = key.window
        return f"{key.locality_id}:{window.date_from}:{window.date_to}:{window.is_strata}"

    def tags(self, key: LocalityStatsKey, value: LocalityStatsRecord) -> Iterable[str]:
        return (f"locality:{key.locality_id}",)

    @staticmethod
    def arguments(key: LocalityStatsKey) -> StatsWindow:
        return key.window

    async def fetch(
        self, keys: Sequence[LocalityStatsKey], arguments: StatsWindow
    ) -> list[LocalityStatsRecord]:
        found = await stats.locality_stats(self.db, [k.locality_id for k in keys], arguments)
        return [found.get(k.locality_id, EMPTY_STATS) for k in keys]
