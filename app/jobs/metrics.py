"""The worker's metrics: propintel_jobs_total{job,outcome}, propintel_job_duration_seconds.

Outcomes of a run: succeeded; rescheduled (the handler asked to run again later, not a
failure); retrying (it raised, attempts are left); dead (dead-lettered: attempts spent, or
a kind nobody handles); failed (the run ended but its outcome could not be recorded: its
lease had passed to another worker, which runs the job again). Runs cut short by a stop are
given back and not counted.

`job` is a registered kind; anything else (a kind enqueued by a newer release, a typo) is
`other`, so the queue's content cannot grow the number of series.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.metrics import Counter, Histogram

from app.jobs.periodic import period_seconds
from app.jobs.registry import JobRegistry
from app.telemetry import metrics

OUTCOMES = ("succeeded", "rescheduled", "retrying", "dead", "failed")
OTHER = "other"


class JobMetrics:
    def __init__(self, kinds: Iterable[str]) -> None:
        """Every (kind, outcome) series is made here, at 0, so dashboards and alerts see
        each job before its first run."""
        names = [*sorted(set(kinds)), OTHER]
        self._runs: dict[tuple[str, str], Counter] = {
            (name, outcome): metrics.jobs.labels(name, outcome)
            for name in names
            for outcome in OUTCOMES
        }
        self._duration: dict[str, Histogram] = {
            name: metrics.job_duration.labels(name) for name in names
        }

    def ran(self, kind: str, outcome: str, seconds: float) -> None:
        name = kind if kind in self._duration else OTHER
        self._runs[name, outcome].inc()
        self._duration[name].observe(seconds)


@dataclass(frozen=True, slots=True)
class JobCatalogue:
    """The job kinds a deployment knows and the period of each periodic one (seconds), for
    the series made at start and the scrape-time job families (app/http/metrics.py)."""

    kinds: tuple[str, ...]
    periods: dict[str, float]

    @classmethod
    def of(cls, registry: JobRegistry) -> JobCatalogue:
        periods: dict[str, float] = {}
        for task in registry.periodic:
            seconds = period_seconds(task.period_of)
            periods[task.kind] = min(seconds, periods.get(task.kind, seconds))
        return cls(kinds=tuple(sorted(registry.kinds)), periods=periods)
