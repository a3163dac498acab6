"""The job queue's SQL: enqueue (inside the caller's transaction: the outbox), claim, finish.

`enqueue` takes the caller's connection, so a job is committed with the change that caused it
or not at all. On PostgreSQL it also NOTIFYs `propintel_jobs` (delivered at commit), which
wakes the workers at once; they poll as well, in case a notification is missed. A worker of
the same process is woken at commit too (`wake_on_commit`): SQLite has no NOTIFY.

Claims hold a lease (`locked_by`, `lease_expires_at`); every write a worker makes about a job
it claimed is fenced on (id, locked_by, attempts, RUNNING), so a worker whose lease expired
and whose job another worker took cannot overwrite the newer run's outcome.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import tables
from db.engine import Database

NOTIFY_CHANNEL = "propintel_jobs"
DEFAULT_MAX_ATTEMPTS = 5
MAX_ERROR_CHARS = 2000

jobs = tables.jobs


def _insert(conn: AsyncConnection) -> Any:
    if conn.dialect.name == "postgresql":
        return pg_insert(tables.jobs)
    return sqlite_insert(tables.jobs)


async def enqueue_many(
    conn: AsyncConnection,
    kind: str,
    payloads: Sequence[Mapping[str, Any]],
    *,
    run_at: datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    dedupe_keys: Sequence[str | None] | None = None,
) -> int:
    """Adds one job per payload, due at `run_at` (default now); a job whose dedupe key is
    already taken is skipped. Returns how many were added."""
    if not payloads:
        return 0
    now = datetime.now(UTC)
    keys = list(dedupe_keys) if dedupe_keys is not None else [None] * len(payloads)
    rows = [
        {
            "kind": kind,
            "payload": orjson.dumps(dict(payload)).decode(),
            "status": "QUEUED",
            "run_at": run_at or now,
            "attempts": 0,
            "max_attempts": max_attempts,
            "dedupe_key": key,
            "created_at": now,
        }
        for payload, key in zip(payloads, keys, strict=True)
    ]
    statement = _insert(conn).on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = await conn.execute(statement, rows)
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(f"NOTIFY {NOTIFY_CHANNEL}"))
    conn.sync_connection.info[_ENQUEUED] = True  # type: ignore[union-attr]
    return max(result.rowcount, 0)


async def cancel_queued(conn: AsyncConnection, dedupe_key: str) -> bool:
    """Drops the job of this key if no worker has claimed it yet (in the caller's
    transaction): the work was done another way."""
    result = await conn.execute(
        sa.delete(tables.jobs).where(
            tables.jobs.c.dedupe_key == dedupe_key, tables.jobs.c.status == "QUEUED"
        )
    )
    return bool(result.rowcount)


async def enqueue(
    conn: AsyncConnection,
    kind: str,
    payload: Mapping[str, Any],
    *,
    run_at: datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    dedupe_key: str | None = None,
) -> bool:
    """Adds one job (see enqueue_many); False when its dedupe key was taken."""
    added = await enqueue_many(
        conn,
        kind,
        [payload],
        run_at=run_at,
        max_attempts=max_attempts,
        dedupe_keys=[dedupe_key],
    )
    return added == 1


# -- waking this process's workers at commit ------------------------------------------------

_ENQUEUED = "propintel_jobs_enqueued"
_wakers: weakref.WeakKeyDictionary[Engine, list[Callable[[], None]]] = weakref.WeakKeyDictionary()


def wake_on_commit(engine: AsyncEngine, callback: Callable[[], None]) -> Callable[[], None]:
    """Calls `callback` when a transaction of `engine` that enqueued a job commits (from
    SQLAlchemy's commit event: just before the database commits, so the callback should wake
    its worker a moment later). Returns the function that removes it."""
    sync = engine.sync_engine
    callbacks = _wakers.get(sync)
    if callbacks is None:
        callbacks = _wakers[sync] = []
        event.listen(sync, "commit", _committed)
        event.listen(sync, "rollback", _rolled_back)
    callbacks.append(callback)

    def remove() -> None:
        if callback in callbacks:
            callbacks.remove(callback)

    return remove


def _committed(conn: Connection) -> None:
    if conn.info.pop(_ENQUEUED, False):
        for callback in list(_wakers.get(conn.engine, ())):
            callback()


def _rolled_back(conn: Connection) -> None:
    conn.info.pop(_ENQUEUED, None)


# -- claiming and finishing ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


_CLAIMED = (jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts)


def _claimed(row: Any) -> ClaimedJob:
    payload = orjson.loads(row.payload) if row.payload else {}
    return ClaimedJob(
        id=row.id,
        kind=row.kind,
        payload=payload if isinstance(payload, dict) else {"value": payload},
        attempts=row.attempts,
        max_attempts=row.max_attempts,
    )


def _lease_until(
    now: datetime, leases: Mapping[str, timedelta], default: timedelta
) -> sa.ColumnElement[Any]:
    """`now + lease of the job's kind` as SQL (one statement claims jobs of many kinds)."""
    if not leases:
        return sa.literal(now + default, tables.UtcDateTime())
    return sa.case(
        {kind: sa.literal(now + lease, tables.UtcDateTime()) for kind, lease in leases.items()},
        value=jobs.c.kind,
        else_=sa.literal(now + default, tables.UtcDateTime()),
    )


def _claim_statement(
    worker_id: str,
    limit: int,
    now: datetime,
    leases: Mapping[str, timedelta],
    default_lease: timedelta,
    kinds: Sequence[str] | None,
) -> sa.Update:
    # Two candidate sets, each served by its partial index (ix_jobs_due, ix_jobs_leased);
    # one OR over both would scan.
    due = sa.select(jobs.c.id, jobs.c.run_at).where(
        jobs.c.status.in_(("QUEUED", "RETRYING")), jobs.c.run_at <= now
    )
    expired = sa.select(jobs.c.id, jobs.c.run_at).where(
        jobs.c.status == "RUNNING",
        jobs.c.lease_expires_at < now,
        jobs.c.attempts < jobs.c.max_attempts,
    )
    if kinds is not None:
        due = due.where(jobs.c.kind.in_(list(kinds)))
        expired = expired.where(jobs.c.kind.in_(list(kinds)))
    due_cte = due.order_by(jobs.c.run_at).limit(limit).with_for_update(skip_locked=True).cte("due")
    expired_cte = (
        expired.order_by(jobs.c.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("expired")
    )
    candidates = sa.union_all(
        sa.select(due_cte.c.id, due_cte.c.run_at), sa.select(expired_cte.c.id, expired_cte.c.run_at)
    ).subquery("candidates")
    chosen = sa.select(candidates.c.id).order_by(candidates.c.run_at).limit(limit)
    return (
        sa.update(jobs)
        .where(jobs.c.id.in_(chosen))
        .values(
            status="RUNNING",
            attempts=jobs.c.attempts + 1,
            locked_by=worker_id,
            lease_expires_at=_lease_until(now, leases, default_lease),
            started_at=now,
        )
        .returning(*_CLAIMED)
    )


async def claim(
    db: Database,
    worker_id: str,
    limit: int,
    *,
    leases: Mapping[str, timedelta],
    default_lease: timedelta,
    kinds: Sequence[str] | None = None,
) -> list[ClaimedJob]:
    """Claims up to `limit` jobs for `worker_id`, oldest `run_at` first: due ones (QUEUED or
    RETRYING, `run_at` passed) and RUNNING ones whose lease expired (their worker died) with
    attempts left. Each attempt is counted here. On PostgreSQL the candidates are locked FOR
    UPDATE SKIP LOCKED, so workers claiming at once take different jobs without waiting on
    one another; on SQLite the one statement holds the database's single write lock.
    `kinds`: only jobs of these kinds (a worker that must not dead-letter what it does not
    know, e.g. a test's)."""
    if limit <= 0:
        return []
    if not db.is_postgresql and not await _any_claimable(db, kinds):
        return []  # SQLite: a read first, so an idle poll does not take the write lock
    statement = _claim_statement(worker_id, limit, datetime.now(UTC), leases, default_lease, kinds)
    async with db.begin() as conn:
        rows = (await conn.execute(statement)).all()
    return sorted((_claimed(row) for row in rows), key=lambda job: job.id)


async def _any_claimable(db: Database, kinds: Sequence[str] | None) -> bool:
    now = datetime.now(UTC)
    conditions = [
        sa.and_(jobs.c.status.in_(("QUEUED", "RETRYING")), jobs.c.run_at <= now),
        sa.and_(
            jobs.c.status == "RUNNING",
            jobs.c.lease_expires_at < now,
            jobs.c.attempts < jobs.c.max_attempts,
        ),
    ]
    async with db.connect() as conn:
        for condition in conditions:
            query = sa.select(jobs.c.id).where(condition).limit(1)
            if kinds is not None:
                query = query.where(jobs.c.kind.in_(list(kinds)))
            if (await conn.execute(query)).first() is not None:
                return True
    return False


def _fenced(job_id: int, worker_id: str, attempts: int) -> sa.ColumnElement[bool]:
    return sa.and_(
        jobs.c.id == job_id,
        jobs.c.locked_by == worker_id,
        jobs.c.attempts == attempts,
        jobs.c.status == "RUNNING",
    )


_UNLOCKED: dict[str, Any] = {"locked_by": None, "lease_expires_at": None}


async def _fenced_update(
    db: Database, job_id: int, worker_id: str, attempts: int, values: dict[str, Any]
) -> bool:
    async with db.begin() as conn:
        result = await conn.execute(
            sa.update(jobs).where(_fenced(job_id, worker_id, attempts)).values(**values)
        )
    return bool(result.rowcount == 1)


async def succeed(db: Database, job_id: int, worker_id: str, attempts: int) -> bool:
    """The job is done. False: the lease was lost (another worker runs it now)."""
    values = {"status": "SUCCEEDED", "finished_at": datetime.now(UTC), **_UNLOCKED}
    return await _fenced_update(db, job_id, worker_id, attempts, values)


async def run_again(db: Database, job_id: int, worker_id: str, attempts: int, at: datetime) -> bool:
    """Back in the queue until `at`; this attempt is not counted."""
    values = {
        "status": "QUEUED",
        "run_at": at,
        "attempts": jobs.c.attempts - 1,
        **_UNLOCKED,
    }
    return await _fenced_update(db, job_id, worker_id, attempts, values)


async def fail(
    db: Database,
    job_id: int,
    worker_id: str,
    attempts: int,
    error: str,
    *,
    retry_at: datetime | None,
) -> bool:
    """A failed attempt: RETRYING at `retry_at`, or DEAD (dead letter) when None."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"last_error": error[:MAX_ERROR_CHARS], **_UNLOCKED}
    if retry_at is None:
        values |= {"status": "DEAD", "finished_at": now}
    else:
        values |= {"status": "RETRYING", "run_at": retry_at}
    return await _fenced_update(db, job_id, worker_id, attempts, values)


async def release(db: Database, worker_id: str, claims: Sequence[tuple[int, int]]) -> int:
    """Gives jobs back at shutdown, due at once and their attempt not counted (the worker
    stopped them; they did not fail). `claims`: (job id, attempts) pairs."""
    if not claims:
        return 0
    now = datetime.now(UTC)
    released = 0
    async with db.begin() as conn:
        for job_id, attempts in claims:
            result = await conn.execute(
                sa.update(jobs)
                .where(_fenced(job_id, worker_id, attempts))
                .values(status="QUEUED", run_at=now, attempts=jobs.c.attempts - 1, **_UNLOCKED)
            )
            released += int(result.rowcount)
    return released


async def extend_leases(
    db: Database,
    worker_id: str,
    job_ids: Sequence[int],
    *,
    leases: Mapping[str, timedelta],
    default_lease: timedelta,
) -> int:
    """The heartbeat: the leases of this worker's running jobs run from now again."""
    if not job_ids:
        return 0
    now = datetime.now(UTC)
    async with db.begin() as conn:
        result = await conn.execute(
            sa.update(jobs)
            .where(
                jobs.c.id.in_(list(job_ids)),
                jobs.c.locked_by == worker_id,
                jobs.c.status == "RUNNING",
            )
            .values(lease_expires_at=_lease_until(now, leases, default_lease))
        )
    return max(int(result.rowcount), 0)


async def recover_leases(db: Database) -> tuple[int, int]:
    """RUNNING jobs whose lease expired (their worker died): RETRYING at once, or DEAD when
    their attempts are spent. Returns (retrying, dead)."""
    now = datetime.now(UTC)
    expired = sa.and_(jobs.c.status == "RUNNING", jobs.c.lease_expires_at < now)
    error = (
        sa.literal("lease expired: its worker stopped without finishing it (")
        + sa.func.coalesce(jobs.c.locked_by, "")
        + sa.literal(")")
    )
    async with db.begin() as conn:
        dead = await conn.execute(
            sa.update(jobs)
            .where(expired, jobs.c.attempts >= jobs.c.max_attempts)
            .values(status="DEAD", finished_at=now, last_error=error, **_UNLOCKED)
        )
        retrying = await conn.execute(
            sa.update(jobs)
            .where(expired, jobs.c.attempts < jobs.c.max_attempts)
            .values(status="RETRYING", run_at=now, last_error=error, **_UNLOCKED)
        )
    return max(retrying.rowcount, 0), max(dead.rowcount, 0)


PURGE_BATCH = 1000


async def purge(
    db: Database,
    *,
    succeeded_before: datetime,
    workers_before: datetime,
    periods_before: datetime,
) -> tuple[int, int, int]:
    """Deletes SUCCEEDED jobs finished before `succeeded_before` but each kind's newest (in
    batches, each its own short transaction: the queue keeps moving meanwhile), workers not
    heard from since `workers_before` and periodic runs claimed before `periods_before`.
    Returns the counts."""
    deleted_jobs = 0
    # Each kind's newest SUCCEEDED job stays: it is the kind's last success
    # (propintel_job_last_success_timestamp_seconds), which a weekly job must keep all week.
    newest = (
        sa.select(sa.func.max(jobs.c.id))
        .where(jobs.c.status == "SUCCEEDED")
        .group_by(jobs.c.kind)
        .scalar_subquery()
    )
    while True:
        batch = (
            sa.select(jobs.c.id)
            .where(
                jobs.c.status == "SUCCEEDED",
                jobs.c.finished_at < succeeded_before,
                jobs.c.id.not_in(newest),
            )
            .limit(PURGE_BATCH)
        )
        async with db.begin() as conn:
            result = await conn.execute(sa.delete(jobs).where(jobs.c.id.in_(batch)))
        deleted_jobs += max(result.rowcount, 0)
        if result.rowcount < PURGE_BATCH:
            break
    workers = tables.job_workers
    runs = tables.periodic_runs
    async with db.begin() as conn:
        gone = await conn.execute(sa.delete(workers).where(workers.c.heartbeat_at < workers_before))
        old = await conn.execute(sa.delete(runs).where(runs.c.claimed_at < periods_before))
    return deleted_jobs, max(gone.rowcount, 0), max(old.rowcount, 0)


# -- workers and periodic tasks --------------------------------------------------------------


async def heartbeat(
    db: Database, worker_id: str, *, hostname: str, pid: int, concurrency: int, started_at: datetime
) -> None:
    """Upserts the worker's row (`jobQueue.workers` counts the ones heard from lately)."""
    workers = tables.job_workers
    now = datetime.now(UTC)
    async with db.begin() as conn:
        insert = pg_insert(workers) if conn.dialect.name == "postgresql" else sqlite_insert(workers)
        await conn.execute(
            insert.values(
                id=worker_id,
                hostname=hostname,
                pid=pid,
                concurrency=concurrency,
                started_at=started_at,
                heartbeat_at=now,
            ).on_conflict_do_update(
                index_elements=[workers.c.id],
                set_={"heartbeat_at": now, "concurrency": concurrency},
            )
        )


async def forget_worker(db: Database, worker_id: str) -> None:
    workers = tables.job_workers
    async with db.begin() as conn:
        await conn.execute(sa.delete(workers).where(workers.c.id == worker_id))


async def claim_period(
    db: Database, name: str, period: str, kind: str, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> bool:
    """Runs periodic task `name` for `period` unless some worker already did: the
    periodic_runs row and the job are inserted in one transaction, so exactly one worker
    enqueues each period (and its job is not lost if that worker dies just after)."""
    runs = tables.periodic_runs
    async with db.begin() as conn:
        insert = pg_insert(runs) if conn.dialect.name == "postgresql" else sqlite_insert(runs)
        result = await conn.execute(
            insert.values(
                name=name, period=period, claimed_at=datetime.now(UTC)
            ).on_conflict_do_nothing(index_elements=[runs.c.name, runs.c.period])
        )
        if result.rowcount != 1:
            return False
        await enqueue(
            conn,
            kind,
            {"period": period},
            max_attempts=max_attempts,
            dedupe_key=f"periodic:{name}:{period}",
        )
    return True


# -- the queue's state -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    running: int
    failed: int
    dead_letter: int
    oldest_pending_age_seconds: float
    workers: int


async def stats(db: Database, *, workers_seen_since: datetime) -> QueueStats:
    now = datetime.now(UTC)
    counted = (
        sa.select(jobs.c.status, sa.func.count())
        .where(jobs.c.status.in_(("QUEUED", "RUNNING", "RETRYING", "DEAD")))
        .group_by(jobs.c.status)
    )
    oldest = sa.select(sa.func.min(jobs.c.run_at)).where(
        jobs.c.status.in_(("QUEUED", "RETRYING")), jobs.c.run_at <= now
    )
    workers = sa.select(sa.func.count()).where(
        tables.job_workers.c.heartbeat_at >= workers_seen_since
    )
    async with db.connect() as conn:
        counts = {row[0]: int(row[1]) for row in (await conn.execute(counted)).all()}
        first = (await conn.execute(oldest)).scalar()
        alive = int((await conn.execute(workers)).scalar() or 0)
    if first is not None and first.tzinfo is None:  # SQLite through a bare aggregate
        first = first.replace(tzinfo=UTC)
    return QueueStats(
        pending=counts.get("QUEUED", 0),
        running=counts.get("RUNNING", 0),
        failed=counts.get("RETRYING", 0),
        dead_letter=counts.get("DEAD", 0),
        oldest_pending_age_seconds=max(0.0, (now - first).total_seconds()) if first else 0.0,
        workers=alive,
    )


@dataclass(frozen=True, slots=True)
class JobRow:
    """A job as stored (tests and operators look at one)."""

    id: int
    kind: str
    payload: dict[str, Any]
    status: str
    run_at: datetime
    attempts: int
    max_attempts: int
    locked_by: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    started_at: datetime | None
    finished_at: datetime | None


async def job_rows(db: Database, *, kind: str | None = None) -> list[JobRow]:
    statement = sa.select(jobs).order_by(jobs.c.id)
    if kind is not None:
        statement = statement.where(jobs.c.kind == kind)
    async with db.connect() as conn:
        rows = (await conn.execute(statement)).mappings().all()
    return [
        JobRow(
            id=row["id"],
            kind=row["kind"],
            payload=orjson.loads(row["payload"]),
            status=row["status"],
            run_at=row["run_at"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            locked_by=row["locked_by"],
            lease_expires_at=row["lease_expires_at"],
            last_error=row["last_error"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )
        for row in rows
    ]


async def next_due_in(db: Database, kinds: Sequence[str] | None = None) -> float | None:
    """Seconds until the next job becomes claimable (0: one is due now; None: none is
    queued, retrying or running). For `Worker.drain`."""
    now = datetime.now(UTC)
    waiting = sa.select(sa.func.min(jobs.c.run_at)).where(jobs.c.status.in_(("QUEUED", "RETRYING")))
    leased = sa.select(sa.func.min(jobs.c.lease_expires_at)).where(jobs.c.status == "RUNNING")
    if kinds is not None:
        waiting = waiting.where(jobs.c.kind.in_(list(kinds)))
        leased = leased.where(jobs.c.kind.in_(list(kinds)))
    async with db.connect() as conn:
        times = [(await conn.execute(q)).scalar() for q in (waiting, leased)]
    found: list[datetime] = [
        t if t.tzinfo else t.replace(tzinfo=UTC) for t in times if t is not None
    ]
    if not found:
        return None
    return float(max(0.0, (min(found) - now).total_seconds()))


async def listen(
    db: Database, on_notify: Callable[[], None], *, on_lost: Callable[[], None]
) -> Any:
    """A dedicated asyncpg connection LISTENing on `propintel_jobs` (PostgreSQL):
    `on_notify` on every notification, `on_lost` when the connection drops. The caller
    closes it."""
    import asyncpg

    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(
        url,
        ssl=getattr(db, "_ssl", None),
        timeout=5,
        server_settings={"application_name": "propintel-worker"},
    )
    try:
        await connection.add_listener(NOTIFY_CHANNEL, lambda *_: on_notify())
        connection.add_termination_listener(lambda _: on_lost())
    except BaseException:
        await connection.close()
        raise
    return connection


# -- metrics (app/http/metrics.py, at scrape time) -------------------------------------------

QUEUE_STATUSES = ("QUEUED", "RUNNING", "RETRYING", "DEAD")


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    depth: dict[str, int]
    """Jobs per status of QUEUE_STATUSES (0 included)."""
    last_success: dict[str, datetime]
    """Per kind asked for, when its latest SUCCEEDED job finished (absent: none kept)."""


async def queue_metrics(db: Database, kinds: Sequence[str]) -> QueueMetrics:
    """The queue as every process and machine shares it, in one statement of scalar
    subqueries: a count per status (the partial indexes and ix_jobs_finished serve them)
    and, per kind, the newest SUCCEEDED job's finish (a backward scan of ix_jobs_finished;
    the purge keeps each kind's newest, so a weekly job's last success outlives the day
    SUCCEEDED rows are kept)."""
    counts = [
        sa.select(sa.func.count())
        .where(jobs.c.status == status)
        .scalar_subquery()
        .label(f"n{index}")
        for index, status in enumerate(QUEUE_STATUSES)
    ]
    latest = [
        sa.select(sa.func.max(jobs.c.finished_at))
        .where(jobs.c.status == "SUCCEEDED", jobs.c.kind == kind)
        .scalar_subquery()
        .label(f"k{index}")
        for index, kind in enumerate(kinds)
    ]
    row = await db.fetch_one(sa.select(*counts, *latest))
    values = list(row) if row is not None else [0] * len(counts) + [None] * len(kinds)
    depth = {
        status: int(value or 0)
        for status, value in zip(QUEUE_STATUSES, values[: len(counts)], strict=True)
    }
    last_success: dict[str, datetime] = {}
    for kind, value in zip(kinds, values[len(counts) :], strict=True):
        if isinstance(value, str):  # SQLite through a bare aggregate
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            last_success[kind] = value if value.tzinfo else value.replace(tzinfo=UTC)
    return QueueMetrics(depth=depth, last_success=last_success)
