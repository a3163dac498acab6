"""Background work of alerts: matching recorded sales, and the DAILY/WEEKLY digests.

- `sales.recorded {"first_sale_id", "last_sale_id"}` (the outbox of recordSale): matches
  the range (db/repositories/alerts.py `match_sales`, one transaction that also makes the
  webhook deliveries and the `estimates.check` job), then wakes the users' subscriptions.
- `alerts.digest-daily` (once per UTC day, for the day before) and `alerts.digest-weekly`
  (once per ISO week, for the week before): one DIGEST alert per search with matches in that
  period.

Both are idempotent (dedupe keys), as at-least-once jobs must be.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from app.jobs import periodic
from app.jobs.registry import Job, JobRegistry, RunAgain
from app.settings import Settings
from app.streams.broker import AlertBroker
from db.engine import Database
from db.repositories import alerts as repo
from db.repositories.alerts import DigestResult, MatchResult

logger = logging.getLogger("propintel.alerts")

SALES_RECORDED = "sales.recorded"
DIGEST_DAILY = "alerts.digest-daily"
DIGEST_WEEKLY = "alerts.digest-weekly"
MATCH_RETENTION = timedelta(days=15)
"""Gathered matches are kept this long (past the weekly digest that reads them)."""


@dataclass(frozen=True, slots=True)
class DigestPeriod:
    label: str
    """'2026-11-30' or '2026-W48': in the alerts' dedupe keys and data."""
    start: datetime
    end: datetime


DIGEST_GRACE = timedelta(minutes=10)
"""Longer than any match transaction (a load batch's takes seconds; a job's lease is 60 s)."""


def previous_day(period: str) -> DigestPeriod:
    """The UTC day before `period` ('2026-12-01' -> 2026-11-30)."""
    day = date.fromisoformat(period) - timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return DigestPeriod(day.isoformat(), start, start + timedelta(days=1))


def previous_week(period: str) -> DigestPeriod:
    """The ISO week before `period` ('2026-W49' -> 2026-W48, Monday to Monday, UTC)."""
    year, week = period.split("-W")
    monday = date.fromisocalendar(int(year), int(week), 1) - timedelta(days=7)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    return DigestPeriod(periodic.iso_week(start), start, start + timedelta(days=7))


class AlertTasks:
    def __init__(self, db: Database, broker: AlertBroker) -> None:
        self.db = db
        self.broker = broker

    async def match(self, first_sale_id: int, last_sale_id: int) -> MatchResult:
        async with self.db.begin() as conn:
            result = await repo.match_sales(conn, first_sale_id, last_sale_id)
        if result.user_ids:
            await self.broker.publish(result.user_ids)  # after commit; best effort
        return result

    async def digest(self, frequency: str, period: DigestPeriod) -> DigestResult:
        async with self.db.begin() as conn:
            result = await repo.make_digests(
                conn,
                frequency=frequency,
                period=period.label,
                start=period.start,
                end=period.end,
            )
            await repo.purge_matches(conn, datetime.now(UTC) - MATCH_RETENTION)
        if result.user_ids:
            await self.broker.publish(result.user_ids)
        return result

    async def run_sales_recorded(self, job: Job) -> RunAgain | None:
        first, last = int(job.payload["first_sale_id"]), int(job.payload["last_sale_id"])
        result = await self.match(first, last)
        if result.alert_ids:
            logger.info(
                "sales %d..%d: %d alerts, %d digest matches, %d deliveries",
                first,
                last,
                len(result.alert_ids),
                result.digest_matches,
                result.deliveries,
            )
        return None

    async def run_daily_digest(self, job: Job) -> RunAgain | None:
        await self.digest("DAILY", previous_day(str(job.payload["period"])))
        return None

    async def run_weekly_digest(self, job: Job) -> RunAgain | None:
        await self.digest("WEEKLY", previous_week(str(job.payload["period"])))
        return None


def register(
    registry: JobRegistry, *, db: Database, settings: Settings, broker: AlertBroker
) -> AlertTasks:
    """Adds `sales.recorded` and the two digest periodics; returns their handlers."""
    del settings  # nothing to configure yet; the signature is every domain's
    tasks = AlertTasks(db, broker)
    lease = timedelta(minutes=5)  # a load's worth of matching, with room
    registry.register(SALES_RECORDED, tasks.run_sales_recorded, lease=lease)
    registry.register(DIGEST_DAILY, tasks.run_daily_digest, lease=lease)
    registry.register(DIGEST_WEEKLY, tasks.run_weekly_digest, lease=lease)
    # A period's digest starts DIGEST_GRACE after it ends: a match that began just before
    # midnight (its matched_at) commits within that, so the digest's read includes it.
    registry.every(DIGEST_DAILY, DIGEST_DAILY, lambda now: periodic.daily(now - DIGEST_GRACE))
    registry.every(DIGEST_WEEKLY, DIGEST_WEEKLY, lambda now: periodic.iso_week(now - DIGEST_GRACE))
    return tasks
