"""Locality.statsSeries: one batch function over the localities of a level."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from app.context import Context
from db.records import LocalityRecord
from db.repositories.stats import PeriodStatsRecord
from loaders.stats_series import StatsSeriesKey
from resolvers.fields import Audience, batched
from resolvers.filters import stats_window
from schema.stats_series import StatsInterval


@batched(Audience.PUBLIC)
async def stats_series(
    parents: list[LocalityRecord],
    context: Context,
    interval: StatsInterval = StatsInterval.QUARTER,
    from_: Annotated[
        date | None, strawberry.argument(name="from", description="Contracts on or after.")
    ] = None,
    to: Annotated[date | None, strawberry.argument(description="Contracts on or before.")] = None,
    is_strata: bool | None = None,
) -> list[list[PeriodStatsRecord]]:
    """The periods with at least one market sale in the window, oldest first."""
    window = stats_window(from_, to, is_strata)
    return await context.loaders.stats_series.series(
        [StatsSeriesKey(p.id, window, interval.value) for p in parents]
    )
