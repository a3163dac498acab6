"""The queue's own jobs: lease recovery and purging (periodic), and two probes.

- `jobs.recover-leases` (every minute): RUNNING jobs whose lease expired go back to
  RETRYING (or DEAD when their attempts are spent). Claims take such jobs too; this keeps
  `jobQueue`'s counts honest while no worker has a free slot.
- `jobs.purge` (hourly): SUCCEEDED jobs finished over a day ago but each kind's newest
  (its last success, which metrics report; in batches of 1,000),
  workers not heard from for an hour, periodic runs over 30 days old.
- `jobs.noop {}` and `jobs.sleep {"seconds": s}` (at most 300): operational probes, e.g. a
  health check that enqueues one and waits for it to finish, or a test that kills a worker
  mid-job.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from app.jobs.periodic import every_minutes, hourly
from app.jobs.registry import Job, JobRegistry
from app.settings import Settings
from db.engine import Database
from db.repositories import jobs as repo

logger = logging.getLogger("propintel.jobs")

SUCCEEDED_KEPT = timedelta(days=1)
WORKERS_KEPT = timedelta(hours=1)
PERIODS_KEPT = timedelta(days=30)
MAX_SLEEP_S = 300.0


def register(registry: JobRegistry, *, db: Database, settings: Settings) -> None:
    lease = timedelta(seconds=settings.job_lease_s)

    async def recover_leases(job: Job) -> None:
        retrying, dead = await repo.recover_leases(db)
        if retrying or dead:
            logger.warning(
                "lease recovery: %d job(s) of stopped workers queued again, %d dead-lettered",
                retrying,
                dead,
            )

    async def purge(job: Job) -> None:
        now = datetime.now(UTC)
        jobs, workers, periods = await repo.purge(
            db,
            succeeded_before=now - SUCCEEDED_KEPT,
            workers_before=now - WORKERS_KEPT,
            periods_before=now - PERIODS_KEPT,
        )
        logger.info(
            "purge: %d succeeded job(s), %d silent worker(s), %d old periodic run(s) deleted",
            jobs,
            workers,
            periods,
        )

    async def noop(job: Job) -> None:
        return None

    async def sleep(job: Job) -> None:
        seconds = float(job.payload.get("seconds", 1))
        await asyncio.sleep(min(max(seconds, 0.0), MAX_SLEEP_S))

    registry.register("jobs.recover-leases", recover_leases, lease=lease)
    registry.register("jobs.purge", purge, lease=max(lease, timedelta(minutes=5)))
    registry.register("jobs.noop", noop, lease=lease)
    registry.register("jobs.sleep", sleep, lease=lease)
    registry.every("jobs.recover-leases", "jobs.recover-leases", every_minutes(1))
    registry.every("jobs.purge", "jobs.purge", hourly)
