"""The job worker: claims due jobs under a lease, runs their handlers, records the outcome.

- N concurrency slots; claims in batches of up to the free slots. Woken by PostgreSQL
  NOTIFY `propintel_jobs` (a dedicated connection, reconnected with backoff), by a job
  enqueued in this process (at commit), by a slot freeing, and otherwise every
  `worker_poll_s` (the only way on SQLite besides the in-process wake).
- A heartbeat every lease/3 extends the leases of its running jobs and upserts its
  `job_workers` row; a worker that dies (kill -9) stops extending them, and another worker
  takes its jobs once they expire (at claim, or `jobs.recover-leases`).
- Periodic tasks: each tick, each task's current period is claimed in `periodic_runs`
  together with its job (one transaction), so a period runs once across all workers.
- The database going away does not stop it: a failed claim, heartbeat or outcome is logged
  and retried with backoff until it is back.
- `stop(grace_s)`: no more claims; running handlers get `grace_s` to finish, then are
  cancelled and their jobs given back (QUEUED, due at once, the attempt not counted), so
  another worker takes them now rather than after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.jobs.metrics import JobMetrics
from app.jobs.registry import Job, JobRegistry, RunAgain
from app.settings import Settings
from db.engine import Database
from db.repositories import jobs as repo
from db.repositories.jobs import ClaimedJob

logger = logging.getLogger("propintel.jobs")

RETRY_CAP_S = 600.0
"""Exponential backoff between failed attempts (2^attempts s, jittered) stops growing here."""
PERIODIC_TICK_S = 5.0
DB_RETRY_CAP_S = 10.0
"""Backoff cap while the database is unreachable (claims, heartbeats, outcomes)."""
LISTEN_RETRY_CAP_S = 30.0


def retry_delay(attempts: int) -> timedelta:
    """Before the next attempt of a job that failed `attempts` times: 2, 4, 8 ... s, capped
    at 10 min, with ±20% jitter so jobs failing together do not retry together."""
    base = min(RETRY_CAP_S, 2.0 ** max(1, attempts))
    return timedelta(seconds=min(RETRY_CAP_S, base * random.uniform(0.8, 1.2)))


def error_text(error: BaseException) -> str:
    return repr(error)[: repo.MAX_ERROR_CHARS]


@dataclass(slots=True)
class _Running:
    job: ClaimedJob
    task: asyncio.Task[None]


class Worker:
    def __init__(
        self,
        db: Database,
        registry: JobRegistry,
        settings: Settings,
        *,
        concurrency: int | None = None,
        name: str | None = None,
        only_registered: bool = False,
        run_periodic: bool = True,
        periodic_tick_s: float = PERIODIC_TICK_S,
    ) -> None:
        """`only_registered`: claim only the registry's kinds (a worker of a test or a
        specialised pool), instead of dead-lettering unknown kinds. `run_periodic`: enqueue
        the registry's periodic tasks."""
        self.db = db
        self.registry = registry
        self.concurrency = concurrency or settings.worker_concurrency
        self.poll_s = settings.worker_poll_s
        self.default_lease = timedelta(seconds=settings.job_lease_s)
        self.id = (name or f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}")[:64]
        self.run_periodic = run_periodic
        self.periodic_tick_s = periodic_tick_s
        self.ran = 0
        """Handlers run to an outcome by this worker (for `drain` and tests)."""
        self._kinds = sorted(registry.kinds) if only_registered else None
        leases = [kind.lease for kind in registry.kinds.values()] + [self.default_lease]
        self.heartbeat_s = max(0.2, min(leases).total_seconds() / 3)
        self._running: dict[int, _Running] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._heartbeat: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._claiming = 0
        self._started_at = datetime.now(UTC)
        self._remove_waker: Callable[[], None] | None = None
        self.metrics = JobMetrics(registry.kinds)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._loops)

    @property
    def leases(self) -> dict[str, timedelta]:
        return {name: kind.lease for name, kind in self.registry.kinds.items()}

    async def start(self) -> None:
        if self._loops:
            return
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._started_at = datetime.now(UTC)
        self._remove_waker = repo.wake_on_commit(self.db.engine, self._wake_soon)
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name=f"{self.id} heartbeat")
        self._loops = [asyncio.create_task(self._claim_loop(), name=f"{self.id} claims")]
        if self.run_periodic and self.registry.periodic:
            self._loops.append(
                asyncio.create_task(self._periodic_loop(), name=f"{self.id} periodic")
            )
        if self.db.is_postgresql:
            self._loops.append(asyncio.create_task(self._listen_loop(), name=f"{self.id} listen"))
        logger.info("job worker %s started (%d slots)", self.id, self.concurrency)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stops claiming; running handlers get `grace_s` to finish, then are cancelled and
        their jobs released (due at once for any worker, the attempt not counted)."""
        if not self._loops:
            return
        self._stopping.set()
        self._wake.set()
        # The claim loop ends after its current claim (whose jobs then run or are released).
        _, late = await asyncio.wait(self._loops, timeout=max(grace_s, 1.0))
        for task in late:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        if self._remove_waker is not None:
            self._remove_waker()
            self._remove_waker = None
        running = list(self._running.values())
        if running:
            await asyncio.wait([r.task for r in running], timeout=grace_s)
        unfinished = [r for r in running if not r.task.done()]
        for entry in unfinished:
            entry.task.cancel()
        if unfinished:
            await asyncio.wait([r.task for r in unfinished], timeout=5)
        if self._heartbeat is not None:  # kept leases alive through the grace period
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        claims = [(r.job.id, r.job.attempts) for r in unfinished]
        if claims:
            released = await self._quietly(lambda: repo.release(self.db, self.id, claims))
            logger.warning(
                "job worker %s stopped with %d job(s) unfinished: released %s of them",
                self.id,
                len(claims),
                released if released is not None else "none (database unreachable)",
            )
        await self._quietly(lambda: repo.forget_worker(self.db, self.id))
        self._running.clear()
        for close in self.registry.closers:
            try:
                await close()
            except Exception:  # a handler's client failing to close stops nothing else
                logger.warning("job worker %s: a closer failed", self.id, exc_info=True)
        logger.info("job worker %s stopped", self.id)

    async def drain(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109 (the agreed API)
        """Runs jobs until none is due (and none of this worker's is running), or `timeout`
        seconds; returns how many ran. Starts the worker if needed, and then stops it."""
        started_here = not self._loops
        if started_here:
            await self.start()
        before = self.ran
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while loop.time() < deadline:
                self._wake.set()
                await asyncio.sleep(0.05)
                if self._running or self._claiming:
                    continue
                try:
                    wait = await repo.next_due_in(self.db, self._kinds)
                except Exception as error:  # the database away: keep trying until timeout
                    logger.debug("drain: could not read the queue: %r", error)
                    continue
                if (wait is None or wait > 0) and not self._running and not self._claiming:
                    break
        finally:
            if started_here:
                await self.stop()
        return self.ran - before

    # -- waking ------------------------------------------------------------------------------

    def _wake_soon(self) -> None:
        """A job was enqueued in this process: its transaction commits right after this
        call, so look a moment later."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(0.01, self._wake.set)

    async def _pause(self, seconds: float) -> None:
        """Sleeps `seconds`, or less if woken or stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    # -- claiming and running ----------------------------------------------------------------

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            free = self.concurrency - len(self._running)
            claimed: list[ClaimedJob] = []
            if free > 0:
                self._claiming += 1
                try:
                    claimed = await repo.claim(
                        self.db,
                        self.id,
                        free,
                        leases=self.leases,
                        default_lease=self.default_lease,
                        kinds=self._kinds,
                    )
                except Exception as error:
                    failures += 1
                    self._log_db_failure("claim jobs", failures, error)
                    await self._sleep_unless_stopping(_backoff(failures))
                    continue
                finally:
                    self._claiming -= 1
                if failures:
                    logger.warning("job worker %s: claiming again", self.id)
                failures = 0
                for job in claimed:
                    self._launch(job)
            if claimed and len(claimed) == free:
                continue  # a full batch: more may be due
            await self._pause(self.poll_s)

    def _launch(self, job: ClaimedJob) -> None:
        task = asyncio.create_task(self._execute(job), name=f"job {job.id} {job.kind}")
        self._running[job.id] = _Running(job, task)

        def done(_: asyncio.Task[None]) -> None:
            entry = self._running.get(job.id)
            if entry is not None and entry.task is task:
                del self._running[job.id]
            self._wake.set()  # a slot is free

        task.add_done_callback(done)

    async def _execute(self, claimed: ClaimedJob) -> None:
        kind = self.registry.kinds.get(claimed.kind)
        job = Job(
            id=claimed.id,
            kind=claimed.kind,
            payload=claimed.payload,
            attempts=claimed.attempts,
            max_attempts=claimed.max_attempts,
        )
        if kind is None:
            message = f"unknown job kind {claimed.kind!r}: no handler is registered for it"
            logger.error("job %d dead-lettered: %s", claimed.id, message)
            kept = await self._settle(
                claimed,
                lambda: repo.fail(
                    self.db, claimed.id, self.id, claimed.attempts, message, retry_at=None
                ),
            )
            self.metrics.ran(claimed.kind, "dead" if kept else "failed", 0.0)
            self.ran += 1
            return
        started = time.perf_counter()
        try:
            outcome = await kind.handler(job)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            seconds = time.perf_counter() - started
            result = await self._failed(claimed, error)
        else:
            seconds = time.perf_counter() - started
            if isinstance(outcome, RunAgain):
                at = outcome.at
                kept = await self._settle(
                    claimed,
                    lambda: repo.run_again(self.db, claimed.id, self.id, claimed.attempts, at),
                )
                result = "rescheduled" if kept else "failed"
            else:
                kept = await self._settle(
                    claimed, lambda: repo.succeed(self.db, claimed.id, self.id, claimed.attempts)
                )
                result = "succeeded" if kept else "failed"
        self.metrics.ran(claimed.kind, result, seconds)
        self.ran += 1

    async def _failed(self, claimed: ClaimedJob, error: Exception) -> str:
        """Records a failed attempt; returns its metric outcome (retrying, dead, failed)."""
        text = error_text(error)
        if claimed.attempts >= claimed.max_attempts:
            logger.error(
                "job %d (%s) dead-lettered after %d attempts: %s",
                claimed.id,
                claimed.kind,
                claimed.attempts,
                text,
                exc_info=error,
            )
            retry_at = None
        else:
            retry_at = datetime.now(UTC) + retry_delay(claimed.attempts)
            logger.warning(
                "job %d (%s) attempt %d of %d failed (retrying at %s): %s",
                claimed.id,
                claimed.kind,
                claimed.attempts,
                claimed.max_attempts,
                f"{retry_at:%H:%M:%S}",
                text,
                exc_info=error,
            )
        kept = await self._settle(
            claimed,
            lambda: repo.fail(
                self.db, claimed.id, self.id, claimed.attempts, text, retry_at=retry_at
            ),
        )
        if not kept:
            return "failed"
        return "dead" if retry_at is None else "retrying"

    async def _settle(self, claimed: ClaimedJob, write: Callable[[], Awaitable[bool]]) -> bool:
        """Records an outcome, retrying while the database is away (the job keeps its slot
        and, through the heartbeat, its lease). False: the lease was lost, nothing was
        recorded."""
        failures = 0
        while True:
            try:
                kept = await write()
            except Exception as error:
                failures += 1
                self._log_db_failure(f"record the outcome of job {claimed.id}", failures, error)
                await asyncio.sleep(_backoff(failures))
                continue
            if not kept:
                logger.warning(
                    "job %d (%s): its lease was lost before it finished here (another worker "
                    "took it); this run's outcome is not recorded",
                    claimed.id,
                    claimed.kind,
                )
            return kept

    # -- heartbeat, periodic tasks, notifications --------------------------------------------

    async def _heartbeat_loop(self) -> None:
        failures = 0
        while True:
            try:
                await repo.heartbeat(
                    self.db,
                    self.id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    concurrency=self.concurrency,
                    started_at=self._started_at,
                )
                ids = list(self._running)
                if ids:
                    await repo.extend_leases(
                        self.db,
                        self.id,
                        ids,
                        leases=self.leases,
                        default_lease=self.default_lease,
                    )
                failures = 0
            except Exception as error:
                failures += 1
                self._log_db_failure("send its heartbeat", failures, error)
            await asyncio.sleep(self.heartbeat_s)

    async def _periodic_loop(self) -> None:
        seen: dict[str, str] = {}
        failures = 0
        while not self._stopping.is_set():
            now = datetime.now(UTC)
            try:
                for periodic in self.registry.periodic:
                    period = periodic.period_of(now)
                    if seen.get(periodic.name) == period:
                        continue
                    if await repo.claim_period(self.db, periodic.name, period, periodic.kind):
                        logger.info("periodic %s: period %s enqueued", periodic.name, period)
                    seen[periodic.name] = period
                failures = 0
            except Exception as error:
                failures += 1
                self._log_db_failure("enqueue periodic tasks", failures, error)
            await self._sleep_unless_stopping(self.periodic_tick_s)

    async def _listen_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            connection: Any = None
            lost = asyncio.Event()
            try:
                connection = await repo.listen(self.db, self._wake.set, on_lost=lost.set)
                if failures:
                    logger.warning("job worker %s: listening for notifications again", self.id)
                failures = 0
                self._wake.set()  # anything enqueued while it was not listening
                while not self._stopping.is_set() and not lost.is_set():
                    await _first_of(lost, self._stopping, seconds=5.0)
                    if connection.is_closed():
                        break
            except Exception as error:
                failures += 1
                self._log_db_failure("listen for notifications", failures, error)
                await self._sleep_unless_stopping(min(LISTEN_RETRY_CAP_S, _backoff(failures)))
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), timeout=2)

    # -- helpers -------------------------------------------------------------------------------

    def _log_db_failure(self, what: str, failures: int, error: Exception) -> None:
        # The first failure in a row is a warning, then one in ten: an outage of minutes
        # should not write thousands of lines.
        if failures == 1 or failures % 10 == 0:
            logger.warning(
                "job worker %s could not %s (%d time(s) in a row, retrying): %r",
                self.id,
                what,
                failures,
                error,
            )

    async def _quietly(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """A last write at shutdown: a few tries, then give up (the leases expire anyway)."""
        for attempt in range(3):
            try:
                return await asyncio.wait_for(call(), timeout=5)
            except Exception as error:
                logger.warning("job worker %s at shutdown: %r", self.id, error)
                await asyncio.sleep(0.2 * (attempt + 1))
        return None


async def _first_of(*events: asyncio.Event, seconds: float) -> None:
    """Waits until one of `events` is set, or `seconds`."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _backoff(failures: int) -> float:
    delay: float = min(DB_RETRY_CAP_S, 0.25 * 2.0 ** min(failures, 10))
    return delay * random.uniform(0.8, 1.2)
