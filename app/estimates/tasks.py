"""Training jobs on the job worker.

`retrainModel` (and a first start with no model) records a `training_jobs` row and enqueues
a `model.train` job in the same transaction; an API process never trains. The worker that
claims the job (`propintel worker`, or the in-process worker of `propintel serve`) trains in
a spawned process pool (minutes of CPU in scikit-learn and numpy: in the worker's event loop
it would stall every other job and the heartbeat that keeps its leases), stores the model in
the registry and activates it when asked. One training at a time (training_jobs'
running_lock). A worker stopped mid-training gives the job back (it trains again on the next
worker); one killed is replaced once its lease expires."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.estimates.service import ModelRegistry
from app.jobs.registry import Job, JobRegistry
from app.ml import artifact, train_from_url
from app.settings import Settings
from db.engine import Database
from db.repositories import price_models as repo
from db.repositories.price_models import TRAINING_KIND, JobRecord, ModelRecord, sales_exist

logger = logging.getLogger("propintel.training")


@dataclass(frozen=True, slots=True)
class TrainedArtifact:
    artifact: bytes
    sha256: str
    data_from: date
    data_to: date
    features: list[str]
    metrics: dict[str, Any]
    training_seconds: float


def train_artifact(database_url: str, options: dict[str, Any]) -> TrainedArtifact:
    """Runs in a worker process: reads the sales, trains, serialises. Top-level so that it
    pickles by name."""
    started = time.perf_counter()
    model = train_from_url(database_url, **options)
    data = model.to_bytes()
    metrics = {k: _plain(v) for k, v in asdict(model.metrics).items()}
    return TrainedArtifact(
        artifact=data,
        sha256=artifact.sha256(data),
        data_from=model.data_from,
        data_to=model.data_to,
        features=list(model.feature_names),
        metrics=metrics,
        training_seconds=round(time.perf_counter() - started, 1),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):  # metrics.classes: a list of dicts
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


async def store(db: Database, trained: TrainedArtifact, *, activate: bool) -> ModelRecord:
    return await repo.add_model(
        db,
        data_from=trained.data_from,
        data_to=trained.data_to,
        features=trained.features,
        metrics=trained.metrics,
        training_seconds=trained.training_seconds,
        artifact=trained.artifact,
        artifact_sha256=trained.sha256,
        activate=activate,
    )


class JobRunning(Exception):
    def __init__(self, job: JobRecord | None) -> None:
        super().__init__(job.id if job else "a job")
        self.job = job


TRAINING_LEASE = timedelta(minutes=5)
"""A training job's lease (extended by the heartbeat while it trains)."""


class Trainer:
    """`start` records and enqueues a training (any process); `run` is the `model.train`
    handler (a worker). `options`: train_from_url's keyword arguments (tests train fast)."""

    def __init__(
        self,
        db: Database,
        registry: ModelRegistry | None,
        database_url: str,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.database_url = database_url
        self.options = options or {}
        self._pool: ProcessPoolExecutor | None = None

    async def start(self, *, activate: bool, requested_by: int | None) -> JobRecord:
        """Queues a training; a worker runs it. Raises JobRunning while one is queued or
        running."""
        try:
            return await repo.create_job(
                self.db, uuid.uuid4().hex, activate=activate, requested_by=requested_by
            )
        except repo.JobAlreadyRunning:
            raise JobRunning(await repo.running_job(self.db)) from None

    async def start_if_registry_empty(self) -> None:
        """First start: no model trained yet (and sales to train on): queue a training."""
        try:
            if await repo.models(self.db) or await repo.running_job(self.db):
                return
            if not await sales_exist(self.db):
                return
            job = await self.start(activate=True, requested_by=None)
            logger.warning(
                "no price model yet: a training is queued for the worker (job %s)", job.id
            )
        except JobRunning:
            return  # another process of this service queued it
        except Exception:  # the service starts regardless; retrainModel can do it later
            logger.warning("could not queue the first price model training", exc_info=True)

    async def run(self, job: Job) -> None:
        """The `model.train {"training_job_id"}` handler. Idempotent: a training already
        finished (a repeated run of its job) is left alone."""
        training_id = str(job.payload.get("training_job_id", ""))
        training = await repo.job(self.db, training_id)
        if training is None:
            logger.warning("model.train job %d: no training job %r", job.id, training_id)
            return
        if training.status in ("SUCCEEDED", "FAILED"):
            return
        await repo.update_job(self.db, training.id, status="RUNNING", started_at=datetime.now(UTC))
        try:
            trained = await self._train()
        except asyncio.CancelledError:
            # The worker is stopping: end the child process (it would train on, unowned)
            # and say the training waits for the next worker, which gets the job back.
            self._terminate()
            with suppress(Exception):
                await repo.update_job(
                    self.db,
                    training.id,
                    status="QUEUED",
                    started_at=None,
                    error="the worker stopped during training; it trains again on the next one",
                )
            raise
        except Exception as error:
            logger.exception("training job %s failed", training.id)
            await repo.update_job(
                self.db,
                training.id,
                status="FAILED",
                finished_at=datetime.now(UTC),
                error=f"{type(error).__name__}: {error}"[:2000],
            )
            return
        record = await store(self.db, trained, activate=training.activate)
        if training.activate and self.registry is not None:
            await self.registry.refresh()  # this process at once; the others poll
        await repo.update_job(
            self.db,
            training.id,
            status="SUCCEEDED",
            finished_at=datetime.now(UTC),
            model_version=record.version,
            error=None,
        )
        # Logged at the level of "a training is queued" (start_if_registry_empty): whoever
        # saw that one started needs to see it end.
        logger.warning(
            "training job %s finished: price model version %s (MdAPE %.1f%%)%s",
            training.id,
            record.version,
            100 * float(trained.metrics.get("mdape", float("nan"))),
            ", now served" if training.activate else "; activateModel serves it",
        )

    async def _train(self) -> TrainedArtifact:
        if self._pool is None:
            # spawn: a fresh interpreter, not a fork of an event loop with open sockets.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, train_artifact, self.database_url, dict(self.options)
        )

    def _terminate(self) -> None:
        if self._pool is not None:
            # ProcessPoolExecutor has no public way to stop a busy worker before 3.14.
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def close(self) -> None:
        """Ends the training process pool (the worker stopped first, so no training of
        this process is in progress any more)."""
        self._terminate()


def register(
    registry: JobRegistry,
    *,
    db: Database,
    settings: Settings,
    models: ModelRegistry | None,
    trainer: Trainer | None = None,
) -> Trainer:
    """Adds `model.train`; returns the Trainer whose `run` handles it (`trainer`: one the
    caller made, e.g. the app's, whose `options` tests set)."""
    trainer = trainer or Trainer(db, models, settings.database_url)
    lease = max(TRAINING_LEASE, timedelta(seconds=settings.job_lease_s))
    registry.register(TRAINING_KIND, trainer.run, lease=lease)
    return trainer
