"""The job queue's state (admin)."""

from __future__ import annotations

from app.context import Info
from db.repositories.jobs import QueueStats
from resolvers.admin import require_admin


async def job_queue(info: Info) -> QueueStats:
    require_admin(info)
    return await info.context.jobs.stats()
