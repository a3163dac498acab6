"""The job queue as the API sees it: enqueue outside a write, and its state (`jobQueue`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.settings import Settings
from db.engine import Database
from db.repositories import jobs as repo
from db.repositories.jobs import QueueStats

WORKER_SEEN_LEASES = 3
"""A worker counts as alive while its last heartbeat is younger than this many leases."""


class JobQueue:
    def __init__(self, db: Database, settings: Settings | None = None) -> None:
        self.db = db
        self.settings = settings

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        run_at: datetime | None = None,
        max_attempts: int = repo.DEFAULT_MAX_ATTEMPTS,
        dedupe_key: str | None = None,
    ) -> bool:
        """A job on its own (no write to go with it); False when `dedupe_key` was taken.
        A job that belongs with a change is enqueued in that change's transaction
        (`db.repositories.jobs.enqueue`)."""
        async with self.db.begin() as conn:
            return await repo.enqueue(
                conn, kind, payload, run_at=run_at, max_attempts=max_attempts, dedupe_key=dedupe_key
            )

    async def stats(self) -> QueueStats:
        lease_s = self.settings.job_lease_s if self.settings is not None else 60.0
        since = datetime.now(UTC).timestamp() - WORKER_SEEN_LEASES * lease_s
        return await repo.stats(self.db, workers_seen_since=datetime.fromtimestamp(since, UTC))
