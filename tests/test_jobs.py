"""The durable job queue: claims under a lease (SKIP LOCKED on PostgreSQL), outcomes and
retries, fencing, periodic tasks once per period, graceful shutdown, a worker killed with
SIGKILL, jobs surviving an embedded restart, and the admin `jobQueue` over HTTP.

Each test works in an empty database of its module's own (a worker there runs only the
test's jobs; the session's shared databases are left alone).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.auth.principal import Role
from app.jobs import periodic
from app.jobs import tasks as jobs_tasks
from app.jobs.registry import Job, JobRegistry, RunAgain
from app.jobs.service import JobQueue
from app.jobs.worker import Worker, retry_delay
from app.settings import Settings
from db import tables
from db.engine import Database
from db.repositories import jobs as repo
from tests.support.apps import running_app
from tests.support.credentials import ADMIN, bearer
from tests.support.graphql import codes
from tests.support.jobs import (
    clear_queue,
    database,
    empty_pg_database,
    empty_sqlite_database,
    rows,
    wait_for,
)
from tests.support.settings import settings_for

LEASE = timedelta(seconds=60)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with empty_pg_database("jobs") as url:
        yield url


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[Database]:
    db = database(pg_url)
    await clear_queue(db)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Database]:
    db = database(await empty_sqlite_database(tmp_path / "jobs.sqlite3"))
    try:
        yield db
    finally:
        await db.dispose()


def settings(db: Database, **overrides: object) -> Settings:
    url = db.engine.url.render_as_string(hide_password=False)
    return settings_for(url, PROPINTEL_WORKER_POLL_S=0.2, **overrides)


async def enqueue(
    db: Database,
    kind: str,
    payloads: list[dict[str, object]],
    *,
    run_at: datetime | None = None,
    max_attempts: int = repo.DEFAULT_MAX_ATTEMPTS,
) -> None:
    async with db.begin() as conn:
        await repo.enqueue_many(conn, kind, payloads, run_at=run_at, max_attempts=max_attempts)


# -- claims ------------------------------------------------------------------------------


async def test_two_workers_run_each_job_exactly_once(pg: Database) -> None:
    """200 jobs, two workers in one event loop on PostgreSQL: each job runs once, and both
    workers take a share (SKIP LOCKED: neither waits on the other's claims)."""
    ran: Counter[int] = Counter()
    by: Counter[str] = Counter()

    def handler(worker_name: str) -> Callable[[Job], Awaitable[None]]:
        async def count(job: Job) -> None:
            await asyncio.sleep(0.005)
            ran[int(job.payload["n"])] += 1
            by[worker_name] += 1

        return count

    await enqueue(pg, "test.count", [{"n": n} for n in range(200)])
    first, second = JobRegistry(), JobRegistry()
    first.register("test.count", handler("a"))
    second.register("test.count", handler("b"))
    a = Worker(pg, first, settings(pg), concurrency=8, name="a")
    b = Worker(pg, second, settings(pg), concurrency=8, name="b")
    await a.start()
    await b.start()
    try:
        took = await wait_for(lambda: _all_done(pg, 200), timeout=30)
    finally:
        await a.stop()
        await b.stop()
    assert ran == Counter(range(200))  # every job once, none twice
    assert by["a"] > 20, by
    assert by["b"] > 20, by
    assert a.ran + b.ran == 200
    assert took < 15
    assert all(row.attempts == 1 for row in await rows(pg))


async def _all_done(db: Database, n: int) -> bool:
    found = await rows(db)
    return len(found) == n and all(row.status == "SUCCEEDED" for row in found)


async def test_claims_skip_rows_locked_by_another_transaction(pg: Database) -> None:
    await enqueue(pg, "test.x", [{"n": n} for n in range(10)])
    async with pg.begin() as holder:
        # Another claimer's transaction holds the five oldest (FOR UPDATE, not committed).
        await holder.execute(
            sa.select(tables.jobs.c.id).order_by(tables.jobs.c.id).limit(5).with_for_update()
        )
        started = time.perf_counter()
        claimed = await asyncio.wait_for(
            repo.claim(pg, "w", 10, leases={}, default_lease=LEASE), timeout=5
        )
        assert time.perf_counter() - started < 1
    ids = sorted(row.id for row in await rows(pg))
    assert [job.id for job in claimed] == ids[5:]  # the locked five were skipped, not waited on
    assert all(job.attempts == 1 for job in claimed)


async def test_a_lease_lost_is_fenced(pg: Database) -> None:
    """A worker whose lease expired and whose job another took cannot record its outcome."""
    await enqueue(pg, "test.x", [{}])
    (old,) = await repo.claim(pg, "old", 1, leases={}, default_lease=timedelta(seconds=-1))
    (new,) = await repo.claim(pg, "new", 1, leases={}, default_lease=LEASE)  # the lease expired
    assert (old.id, old.attempts, new.attempts) == (new.id, 1, 2)
    assert not await repo.succeed(pg, old.id, "old", old.attempts)
    assert not await repo.fail(pg, old.id, "old", old.attempts, "late", retry_at=None)
    (row,) = await rows(pg)
    assert (row.status, row.locked_by) == ("RUNNING", "new")
    assert await repo.succeed(pg, new.id, "new", new.attempts)
    (row,) = await rows(pg)
    assert (row.status, row.attempts, row.locked_by) == ("SUCCEEDED", 2, None)


# -- outcomes (on the embedded SQLite path) ----------------------------------------------


async def test_outcomes_retries_and_dead_letters(lite: Database) -> None:
    seen: Counter[str] = Counter()

    async def flaky(job: Job) -> None:
        seen["flaky"] += 1
        raise ValueError(f"attempt {job.attempts} failed " + "x" * 3000)

    async def later(job: Job) -> RunAgain | None:
        seen["later"] += 1
        if seen["later"] == 1:
            return RunAgain(datetime.now(UTC))  # due again at once: drain runs it too
        return None

    async def fine(job: Job) -> None:
        seen["fine"] += 1

    registry = JobRegistry()
    registry.register("test.flaky", flaky)
    registry.register("test.later", later)
    registry.register("test.fine", fine)
    await enqueue(lite, "test.flaky", [{}], max_attempts=2)
    await enqueue(lite, "test.later", [{}])
    await enqueue(lite, "test.fine", [{}])
    await enqueue(lite, "test.nobody", [{}])
    worker = Worker(lite, registry, settings(lite))
    ran = await worker.drain(timeout=10)
    assert ran == 5  # flaky once (then waits), later twice, fine, nobody
    state = {row.kind: row for row in await rows(lite)}
    assert state["test.fine"].status == "SUCCEEDED"
    assert state["test.fine"].finished_at is not None
    assert (state["test.later"].status, state["test.later"].attempts) == ("SUCCEEDED", 1)
    flaky_row = state["test.flaky"]
    assert (flaky_row.status, flaky_row.attempts) == ("RETRYING", 1)
    assert flaky_row.last_error is not None
    assert flaky_row.last_error.startswith("ValueError('attempt 1 failed xxx")
    assert len(flaky_row.last_error) == repo.MAX_ERROR_CHARS
    wait = (flaky_row.run_at - datetime.now(UTC)).total_seconds()
    assert 0.5 < wait <= 2.5  # 2 s for the first retry, jittered
    nobody = state["test.nobody"]
    assert nobody.status == "DEAD"
    assert nobody.last_error is not None
    assert "unknown job kind 'test.nobody'" in nobody.last_error

    async with lite.begin() as conn:  # the retry is due now
        await conn.execute(sa.update(tables.jobs).values(run_at=datetime.now(UTC)))
    assert await worker.drain(timeout=10) == 1
    flaky_row = (await rows(lite, "test.flaky"))[0]
    assert (flaky_row.status, flaky_row.attempts) == ("DEAD", 2)
    assert flaky_row.last_error is not None
    assert "attempt 2 failed" in flaky_row.last_error
    assert seen == {"flaky": 2, "later": 2, "fine": 1}
    stats = await JobQueue(lite).stats()
    assert (stats.pending, stats.running, stats.failed, stats.dead_letter) == (0, 0, 0, 2)


def test_retry_delays_grow_exponentially_and_stop_at_ten_minutes() -> None:
    for attempts, seconds in ((1, 2), (2, 4), (5, 32), (9, 512)):
        delay = retry_delay(attempts).total_seconds()
        assert 0.8 * seconds <= delay <= 1.2 * seconds
    assert retry_delay(30).total_seconds() == pytest.approx(600, rel=0.2)
    assert retry_delay(30).total_seconds() <= 600


def test_period_names() -> None:
    now = datetime(2026, 12, 1, 13, 7, 45, tzinfo=UTC)
    assert periodic.daily(now) == "2026-12-01"
    assert periodic.iso_week(now) == "2026-W49"
    assert periodic.hourly(now) == "2026-12-01T13"
    assert periodic.every_minutes(5)(now) == "2026-12-01T13:05"
    assert periodic.every_minutes(1)(now) == "2026-12-01T13:07"
    assert periodic.every_seconds(30)(now) == "2026-12-01T13:07:30"
    with pytest.raises(ValueError, match="divisor"):
        periodic.every_minutes(7)


# -- periodic tasks ------------------------------------------------------------------------


async def test_a_periodic_task_runs_once_per_period_across_three_workers(pg: Database) -> None:
    periods: Counter[str] = Counter()

    async def tick(job: Job) -> None:
        periods[str(job.payload["period"])] += 1

    workers = []
    for name in "abc":
        registry = JobRegistry()
        registry.register("test.tick", tick)
        registry.every("test.tick", "test.tick", periodic.every_seconds(1))
        workers.append(Worker(pg, registry, settings(pg), name=name, periodic_tick_s=0.05))
    started = time.monotonic()
    await asyncio.gather(*(worker.start() for worker in workers))
    await asyncio.sleep(2.5)
    await asyncio.gather(*(worker.stop() for worker in workers))
    elapsed = time.monotonic() - started
    async with pg.connect() as conn:
        claimed = (await conn.execute(sa.select(tables.periodic_runs.c.period))).scalars().all()
    assert 2 <= len(claimed) <= elapsed + 2  # one per second (boundary) the workers saw
    assert sorted(periods) == sorted(claimed)
    assert set(periods.values()) == {1}  # each period's job ran once, by one of the three
    found = await rows(pg, "test.tick")
    assert len(found) == len(claimed)
    assert {row.payload["period"] for row in found} == set(claimed)


# -- shutdown, death and restarts ----------------------------------------------------------


async def test_graceful_shutdown_releases_leases_to_another_worker_at_once(pg: Database) -> None:
    runs: list[str] = []

    def registry_of(name: str) -> JobRegistry:
        async def work(job: Job) -> None:
            runs.append(name)
            if name == "a":
                await asyncio.sleep(60)  # stopped long before this

        registry = JobRegistry()
        registry.register("test.long", work, lease=timedelta(seconds=60))
        return registry

    a = Worker(pg, registry_of("a"), settings(pg), name="a")
    await a.start()
    await enqueue(pg, "test.long", [{}])
    await wait_for(lambda: _status_is(pg, "RUNNING"), timeout=5)
    b = Worker(pg, registry_of("b"), settings(pg), name="b")
    await b.start()
    try:
        started = time.monotonic()
        await a.stop(grace_s=0.2)
        (row,) = await rows(pg)
        # Released: b may have it already, or even have finished it (its handler is instant).
        assert row.status in ("QUEUED", "RUNNING", "SUCCEEDED")
        await wait_for(lambda: _status_is(pg, "SUCCEEDED"), timeout=5)
        assert time.monotonic() - started < 5  # not after the 60 s lease
    finally:
        await b.stop()
    (row,) = await rows(pg)
    assert runs == ["a", "b"]
    assert row.attempts == 1  # the released attempt is not counted
    async with pg.connect() as conn:
        workers = (await conn.execute(sa.select(tables.job_workers.c.id))).scalars().all()
    assert "a" not in workers


async def _status_is(db: Database, status: str) -> bool:
    found = await rows(db)
    return bool(found) and all(row.status == status for row in found)


@pytest.mark.slow
async def test_a_killed_worker_s_job_is_taken_again_after_its_lease(
    pg_url: str, pg: Database, tmp_path: Path
) -> None:
    """`propintel worker` is SIGKILLed in the middle of a `jobs.sleep`; a second worker takes
    the job once the 2 s lease expires and finishes it: two attempts."""
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "PROPINTEL_PROFILE": "test",
        "PROPINTEL_JOB_LEASE_S": "2",
        "PROPINTEL_WORKER_POLL_S": "0.2",
        "PROPINTEL_CACHE_ENABLED": "false",
    }
    log = (tmp_path / "worker.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "app.cli", "worker", "--concurrency", "2"),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await enqueue(pg, "jobs.sleep", [{"seconds": 2}])
        try:
            await wait_for(lambda: _job_status(pg, "jobs.sleep", "RUNNING"), timeout=30)
        except AssertionError:
            raise AssertionError((tmp_path / "worker.log").read_text()[-3000:]) from None
        (row,) = await rows(pg, "jobs.sleep")
        assert row.locked_by is not None
        assert f":{process.pid}:" in row.locked_by
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), timeout=10)
        killed = datetime.now(UTC)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    registry = JobRegistry()
    jobs_tasks.register(registry, db=pg, settings=settings(pg, PROPINTEL_JOB_LEASE_S=2))
    second = Worker(pg, registry, settings(pg, PROPINTEL_JOB_LEASE_S=2), run_periodic=False)
    await second.start()
    try:
        await wait_for(lambda: _job_status(pg, "jobs.sleep", "SUCCEEDED"), timeout=20)
    finally:
        await second.stop()
    (row,) = await rows(pg, "jobs.sleep")
    assert row.attempts == 2
    assert row.started_at is not None
    assert row.started_at > killed  # taken again only after the kill, once the lease ran out
    assert row.started_at < killed + timedelta(seconds=4)  # within the 2 s lease (+ a poll)


async def _job_status(db: Database, kind: str, status: str) -> bool:
    found = await rows(db, kind)
    return bool(found) and all(row.status == status for row in found)


async def test_embedded_jobs_survive_a_restart(tmp_path: Path) -> None:
    """SQLite: a job enqueued while no worker ran (the app stopped before it ran) runs when
    the app starts again with its in-process worker."""
    url = await empty_sqlite_database(tmp_path / "embedded.sqlite3")
    async with running_app(settings_for(url, PROPINTEL_WORKER=False)) as app:
        assert app.state.worker is None
        assert await app.state.graphql.jobs.enqueue("jobs.noop", {"probe": 1})
    # A 5 s poll: the second job below runs at once only if its commit wakes the worker.
    async with running_app(
        settings_for(url, PROPINTEL_WORKER=True, PROPINTEL_WORKER_POLL_S=5)
    ) as app:
        worker = app.state.worker
        assert worker is not None
        await wait_for(lambda: _job_status(app.state.db, "jobs.noop", "SUCCEEDED"), timeout=10)
        # In the same process, an enqueued job wakes the worker at commit (no 1 s poll).
        started = time.monotonic()
        await app.state.graphql.jobs.enqueue("jobs.sleep", {"seconds": 0})
        await wait_for(lambda: _job_status(app.state.db, "jobs.sleep", "SUCCEEDED"), timeout=10)
        assert time.monotonic() - started < 1


# -- jobQueue over HTTP ----------------------------------------------------------------------

JOB_QUEUE = "{ jobQueue { pending running failed deadLetter oldestPendingAgeSeconds workers } }"


async def test_job_queue_for_admins_only(pg_url: str, pg: Database) -> None:
    now = datetime.now(UTC)
    await enqueue(pg, "test.a", [{}], run_at=now - timedelta(seconds=100))  # will be claimed
    await enqueue(pg, "test.b", [{}, {}], run_at=now - timedelta(seconds=30))
    await enqueue(pg, "test.c", [{}], run_at=now + timedelta(hours=1))  # queued, not due
    (claimed,) = await repo.claim(pg, "w1", 1, leases={}, default_lease=LEASE)
    await enqueue(pg, "test.d", [{}, {}, {}])
    for job in await repo.claim(pg, "w1", 3, leases={}, default_lease=LEASE):
        await repo.fail(
            pg, job.id, "w1", job.attempts, "boom", retry_at=now - timedelta(seconds=50)
        )
    dead = (await repo.claim(pg, "w1", 1, leases={}, default_lease=LEASE))[0]
    await repo.fail(pg, dead.id, "w1", dead.attempts, "boom", retry_at=None)
    await repo.heartbeat(pg, "w1", hostname="h", pid=1, concurrency=4, started_at=now)
    await repo.heartbeat(pg, "w2", hostname="h", pid=2, concurrency=4, started_at=now)
    async with pg.begin() as conn:  # w2 has been silent for an hour
        await conn.execute(
            sa.update(tables.job_workers)
            .where(tables.job_workers.c.id == "w2")
            .values(heartbeat_at=now - timedelta(hours=1))
        )
    # a RUNNING; b, b, d1 failed (retry due 50 s ago), one of those then dead; d2, d3, c QUEUED.
    assert Counter(row.status for row in await rows(pg)) == {
        "QUEUED": 3, "RUNNING": 1, "RETRYING": 2, "DEAD": 1,
    }  # fmt: skip
    async with running_app(settings_for(pg_url)) as app:
        body = (await app.client.post("/graphql", json={"query": JOB_QUEUE}, headers=ADMIN)).json()
        assert "errors" not in body, body
        answer = body["data"]["jobQueue"]
        expected = await JobQueue(pg, app.settings).stats()
        assert answer == {
            "pending": expected.pending,
            "running": expected.running,
            "failed": expected.failed,
            "deadLetter": expected.dead_letter,
            "oldestPendingAgeSeconds": pytest.approx(expected.oldest_pending_age_seconds, abs=2),
            "workers": 1,
        }
        assert claimed.kind == "test.a"
        assert (answer["pending"], answer["running"], answer["failed"]) == (3, 1, 2)
        assert 45 <= answer["oldestPendingAgeSeconds"] <= 60  # the retries, due 50 s ago
        for headers in (bearer(5, Role.USER), {}):
            denied = (
                await app.client.post("/graphql", json={"query": JOB_QUEUE}, headers=headers)
            ).json()
            assert codes(denied) == ["FORBIDDEN"]
            assert denied["data"] is None
