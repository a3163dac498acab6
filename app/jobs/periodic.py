"""Names of periods, for `JobRegistry.every(name, kind, period_of)`.

A periodic task runs once per distinct name its `period_of(now)` returns (workers race to
insert the (task, period) row; one wins). The names sort in time order and are at most 32
characters (periodic_runs.period).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _utc(now: datetime) -> datetime:
    return now.astimezone(UTC) if now.tzinfo is not None else now.replace(tzinfo=UTC)


def daily(now: datetime) -> str:
    """'2026-12-01' (UTC days)."""
    return _utc(now).date().isoformat()


def iso_week(now: datetime) -> str:
    """'2026-W49' (ISO weeks, Monday to Sunday, UTC)."""
    year, week, _ = _utc(now).isocalendar()
    return f"{year}-W{week:02d}"


def hourly(now: datetime) -> str:
    """'2026-12-01T13' (UTC hours)."""
    return _utc(now).strftime("%Y-%m-%dT%H")


def every_minutes(n: int) -> Callable[[datetime], str]:
    """Periods of `n` minutes counted from midnight UTC ('2026-12-01T13:05' for the one
    starting then); `n` divides a day so that every day has the same periods."""
    if not 1 <= n <= 1440 or 1440 % n:
        raise ValueError(f"every_minutes takes a divisor of 1440 (a day's minutes), got {n}")

    def period_of(now: datetime) -> str:
        moment = _utc(now)
        minute = (moment.hour * 60 + moment.minute) // n * n
        return f"{moment:%Y-%m-%d}T{minute // 60:02d}:{minute % 60:02d}"

    return period_of


def every_seconds(n: int) -> Callable[[datetime], str]:
    """Periods of `n` seconds counted from the epoch (for short operational periods and
    tests); '2026-12-01T13:05:30' for the one starting then."""
    if n < 1:
        raise ValueError(f"every_seconds takes a positive number of seconds, got {n}")

    def period_of(now: datetime) -> str:
        start = int(_utc(now).timestamp()) // n * n
        return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%S")

    return period_of


def period_seconds(period_of: Callable[[datetime], str], *, at: datetime | None = None) -> float:
    """How long the periods `period_of` names last (for propintel_job_period_seconds): the
    time between the two boundaries after `at`, found where the name changes (names sort in
    time order, so a binary search finds each boundary). Works for any `period_of`, offsets
    (a digest's grace) included."""
    start = _utc(at or datetime.now(UTC))
    first = _next_boundary(period_of, start)
    second = _next_boundary(period_of, first)
    return float(round((second - first).total_seconds()))


def _next_boundary(period_of: Callable[[datetime], str], after: datetime) -> datetime:
    name = period_of(after)
    step = timedelta(seconds=1)
    while period_of(after + step) == name:
        step *= 2
        if step > timedelta(days=800):
            raise ValueError("period_of names the same period for over two years")
    low, high = after, after + step  # low in `name`'s period, high past it
    while high - low > timedelta(milliseconds=1):
        middle = low + (high - low) / 2
        if period_of(middle) == name:
            low = middle
        else:
            high = middle
    return high
