"""The job queue's state (admin): `jobQueue` (its root is db.repositories.jobs.QueueStats)."""

from __future__ import annotations

import strawberry


@strawberry.type(description="The job queue now (admin): jobs by state and live workers.")
class JobQueue:
    pending: int = strawberry.field(description="Jobs queued (due now or later).")
    running: int = strawberry.field(description="Jobs a worker holds under a lease.")
    failed: int = strawberry.field(
        description="Jobs whose last attempt failed, waiting for their next attempt."
    )
    dead_letter: int = strawberry.field(
        description="Jobs that failed every attempt (or of a kind no worker knows): dead "
        "letters, kept for an operator."
    )
    oldest_pending_age_seconds: float = strawberry.field(
        description="How long the oldest due job (queued or retrying) has waited; 0 when "
        "none is due. Growing: the workers are down or behind."
    )
    workers: int = strawberry.field(description="Workers heard from within the last three leases.")
