"""PostgreSQL restarted under a running worker: on a cluster of the test's own (the shared
server stays up for everyone else). Claims, heartbeats and outcomes that fail while it is
away are retried; when it is back every job completes, and NOTIFY wakes the worker again
(its LISTEN connection is re-established)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from app.jobs.registry import Job, JobRegistry
from app.jobs.worker import Worker
from db.engine import Database
from db.migrate import upgrade
from db.repositories import jobs as repo
from tests.support.jobs import ScratchCluster, database, rows, wait_for
from tests.support.settings import settings_for

JOBS = 60


@pytest.fixture
def cluster() -> Iterator[ScratchCluster]:
    cluster = ScratchCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


async def test_the_worker_survives_a_postgresql_restart(cluster: ScratchCluster) -> None:
    url = await cluster.create_database("propintel")
    await asyncio.to_thread(upgrade, settings_for(url).database_url)
    ran: Counter[int] = Counter()

    async def slow(job: Job) -> None:
        await asyncio.sleep(0.05)
        ran[int(job.payload["n"])] += 1

    registry = JobRegistry()
    registry.register("test.slow", slow)
    # A 30 s poll: after the restart, the last job runs promptly only through NOTIFY.
    settings = settings_for(url, PROPINTEL_WORKER_POLL_S=30, PROPINTEL_JOB_LEASE_S=5)
    db = database(url)
    outside = database(url)  # another process's enqueues: no in-process wake
    worker = Worker(db, registry, settings, concurrency=4)
    try:
        async with outside.begin() as conn:
            await repo.enqueue_many(conn, "test.slow", [{"n": n} for n in range(JOBS)])
        await worker.start()
        await wait_for(lambda: _succeeded_at_least(outside, 8), timeout=10)
        await asyncio.to_thread(cluster.restart)  # -m fast: every connection is cut
        assert len(ran) < JOBS  # it restarted with jobs still queued
        await wait_for(lambda: _succeeded_at_least(outside, JOBS), timeout=60)
        assert set(ran) == set(range(JOBS))  # every job ran (a few maybe twice: at least once)
        # LISTEN is back: a job enqueued elsewhere wakes the worker well before its poll.
        await asyncio.sleep(1.5)  # the listener reconnects with backoff
        started = time.monotonic()
        async with outside.begin() as conn:
            await repo.enqueue(conn, "test.slow", {"n": JOBS})
        await wait_for(lambda: _succeeded_at_least(outside, JOBS + 1), timeout=10)
        assert time.monotonic() - started < 5
    finally:
        await worker.stop()
        await db.dispose()
        await outside.dispose()


async def _succeeded_at_least(db: Database, n: int) -> bool:
    try:
        found = await rows(db, "test.slow")
    except Exception:  # the cluster restarting
        return False
    return sum(row.status == "SUCCEEDED" for row in found) >= n
