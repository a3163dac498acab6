"""Training jobs: `retrainModel` starts one in a process pool (training is minutes of CPU in
scikit-learn and numpy; in this process it would stall every request), records it in
`training_jobs`, and stores the result in the registry. One job at a time per process."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from app.estimates.service import ModelRegistry
from app.ml import artifact, train_from_url
from db.engine import Database
from db.repositories import price_models as repo
from db.repositories.price_models import JobRecord, ModelRecord, sales_exist

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


class Trainer:
    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        database_url: str,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.database_url = database_url
        self.options = options or {}
        self._pool: ProcessPoolExecutor | None = None
        self._current: asyncio.Task[None] | None = None
        self._job_id: str | None = None

    async def start(self, *, activate: bool, requested_by: int | None) -> JobRecord:
        try:
            job = await repo.create_job(
                self.db, uuid.uuid4().hex, activate=activate, requested_by=requested_by
            )
        except repo.JobAlreadyRunning:
            raise JobRunning(await repo.running_job(self.db)) from None
        self._job_id = job.id
        self._current = asyncio.create_task(self._run(job), name=f"training-{job.id}")
        return job

    async def start_if_registry_empty(self) -> None:
        """First start: no model trained yet (and sales to train on): train one."""
        try:
            if await repo.models(self.db) or await repo.running_job(self.db):
                return
            if not await sales_exist(self.db):
                return
            job = await self.start(activate=True, requested_by=None)
            logger.warning("no price model yet: training one in the background (job %s)", job.id)
        except JobRunning:
            return  # another process of this service started it
        except Exception:  # the service starts regardless; retrainModel can do it later
            logger.warning("could not start the first price model training", exc_info=True)

    async def _run(self, job: JobRecord) -> None:
        await repo.update_job(self.db, job.id, status="RUNNING", started_at=datetime.now(UTC))
        try:
            if self._pool is None:
                # spawn: a fresh interpreter, not a fork of an event loop with open sockets.
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
            loop = asyncio.get_running_loop()
            trained = await loop.run_in_executor(
                self._pool, train_artifact, self.database_url, self.options
            )
            record = await store(self.db, trained, activate=job.activate)
            if job.activate:
                await self.registry.refresh()
            await repo.update_job(
                self.db,
                job.id,
                status="SUCCEEDED",
                finished_at=datetime.now(UTC),
                model_version=record.version,
            )
            # Logged at the level of "training one in the background" (start_if_registry_empty):
            # whoever saw that one started needs to see it end.
            logger.warning(
                "training job %s finished: price model version %s (MdAPE %.1f%%)%s",
                job.id,
                record.version,
                100 * float(trained.metrics.get("mdape", float("nan"))),
                ", now served" if job.activate else "; activateModel serves it",
            )
        except Exception as error:
            logger.exception("training job %s failed", job.id)
            await repo.update_job(
                self.db,
                job.id,
                status="FAILED",
                finished_at=datetime.now(UTC),
                error=f"{type(error).__name__}: {error}"[:2000],
            )

    async def close(self) -> None:
        """Stops a training in progress with the service: the job is marked FAILED and its
        worker process terminated (it would otherwise train on, unowned, for minutes)."""
        if self._current is not None and not self._current.done():
            self._current.cancel()
            if self._job_id is not None:
                try:
                    await repo.update_job(
                        self.db,
                        self._job_id,
                        status="FAILED",
                        finished_at=datetime.now(UTC),
                        error="the service stopped during training",
                    )
                except Exception:
                    logger.warning("could not mark job %s failed", self._job_id, exc_info=True)
        if self._pool is not None:
            # ProcessPoolExecutor has no public way to stop a busy worker before 3.14.
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
