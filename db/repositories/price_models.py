"""The price model registry and its training jobs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from db import tables
from db.engine import Database
from db.repositories.jobs import enqueue

TRAINING_KIND = "model.train"
"""The job that runs a training (app/estimates/tasks.py), enqueued with its training_jobs row."""
TRAINING_MAX_ATTEMPTS = 3
"""A training is retried only when its worker died under it (a failed training is final)."""

pm = tables.price_models
jobs = tables.training_jobs


@dataclass(frozen=True, slots=True)
class ModelRecord:
    version: int
    trained_at: datetime
    data_from: date
    data_to: date
    features: list[str]
    metrics: dict[str, Any]
    training_seconds: float
    active: bool


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    status: str
    activate: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model_version: int | None
    error: str | None


MODEL_COLUMNS = (
    pm.c.version,
    pm.c.trained_at,
    pm.c.data_from,
    pm.c.data_to,
    pm.c.features,
    pm.c.metrics,
    pm.c.training_seconds,
    pm.c.active,
)


def _model(row: sa.RowMapping) -> ModelRecord:
    return ModelRecord(
        version=row["version"],
        trained_at=row["trained_at"],
        data_from=row["data_from"],
        data_to=row["data_to"],
        features=json.loads(row["features"]),
        metrics=json.loads(row["metrics"]),
        training_seconds=row["training_seconds"],
        active=row["active"],
    )


async def add_model(
    db: Database,
    *,
    data_from: date,
    data_to: date,
    features: list[str],
    metrics: dict[str, Any],
    training_seconds: float,
    artifact: bytes,
    artifact_sha256: str,
    activate: bool,
) -> ModelRecord:
    async with db.begin() as conn:
        if activate:
            await conn.execute(sa.update(pm).where(pm.c.active).values(active=False))
        row = (
            (
                await conn.execute(
                    sa.insert(pm)
                    .values(
                        trained_at=datetime.now(UTC),
                        data_from=data_from,
                        data_to=data_to,
                        features=json.dumps(features),
                        metrics=json.dumps(metrics),
                        training_seconds=training_seconds,
                        artifact=artifact,
                        artifact_sha256=artifact_sha256,
                        active=activate,
                    )
                    .returning(*MODEL_COLUMNS)
                )
            )
            .mappings()
            .one()
        )
    return _model(row)


async def models(db: Database) -> list[ModelRecord]:
    async with db.connect() as conn:
        rows = (
            await conn.execute(sa.select(*MODEL_COLUMNS).order_by(pm.c.version.desc()))
        ).mappings()
        return [_model(row) for row in rows]


async def activate(db: Database, version: int) -> ModelRecord | None:
    async with db.begin() as conn:
        found = (await conn.execute(sa.select(pm.c.version).where(pm.c.version == version))).first()
        if found is None:
            return None
        await conn.execute(sa.update(pm).where(pm.c.active).values(active=False))
        row = (
            (
                await conn.execute(
                    sa.update(pm)
                    .where(pm.c.version == version)
                    .values(active=True)
                    .returning(*MODEL_COLUMNS)
                )
            )
            .mappings()
            .one()
        )
    return _model(row)


async def active_version(db: Database) -> int | None:
    async with db.connect() as conn:
        version = (await conn.execute(sa.select(pm.c.version).where(pm.c.active))).scalar()
    return None if version is None else int(version)


async def artifact(db: Database, version: int) -> tuple[ModelRecord, bytes, str] | None:
    async with db.connect() as conn:
        row = (
            (
                await conn.execute(
                    sa.select(*MODEL_COLUMNS, pm.c.artifact, pm.c.artifact_sha256).where(
                        pm.c.version == version
                    )
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    return _model(row), bytes(row["artifact"]), row["artifact_sha256"]


JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.status,
    jobs.c.activate,
    jobs.c.created_at,
    jobs.c.started_at,
    jobs.c.finished_at,
    jobs.c.model_version,
    jobs.c.error,
)


def _job(row: sa.RowMapping) -> JobRecord:
    return JobRecord(
        id=row["id"],
        status=row["status"],
        activate=row["activate"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        model_version=row["model_version"],
        error=row["error"],
    )


class JobAlreadyRunning(Exception):
    pass


ABANDONED_AFTER = timedelta(hours=2)
"""A job queued or running this long lost its process (killed mid-training): the next
request for a job marks it FAILED instead of waiting on it forever."""


async def create_job(
    db: Database, job_id: str, *, activate: bool, requested_by: int | None
) -> JobRecord:
    """Records a training job and enqueues the `model.train` job that runs it, in one
    transaction (a worker process picks it up). Raises JobAlreadyRunning while another job
    is queued or running."""
    try:
        return await _insert_job(db, job_id, activate=activate, requested_by=requested_by)
    except IntegrityError:
        pass
    running = await running_job(db)
    if running is None or datetime.now(UTC) - running.created_at < ABANDONED_AFTER:
        raise JobAlreadyRunning()
    await update_job(
        db,
        running.id,
        status="FAILED",
        finished_at=datetime.now(UTC),
        error="abandoned: its process stopped during training",
    )
    try:
        return await _insert_job(db, job_id, activate=activate, requested_by=requested_by)
    except IntegrityError:
        raise JobAlreadyRunning() from None


async def _insert_job(
    db: Database, job_id: str, *, activate: bool, requested_by: int | None
) -> JobRecord:
    async with db.begin() as conn:
        row = (
            (
                await conn.execute(
                    sa.insert(jobs)
                    .values(
                        id=job_id,
                        status="QUEUED",
                        activate=activate,
                        requested_by=requested_by,
                        created_at=datetime.now(UTC),
                        running_lock="running",
                    )
                    .returning(*JOB_COLUMNS)
                )
            )
            .mappings()
            .one()
        )
        await enqueue(
            conn,
            TRAINING_KIND,
            {"training_job_id": job_id},
            max_attempts=TRAINING_MAX_ATTEMPTS,
            dedupe_key=f"training:{job_id}",
        )
    return _job(row)


async def update_job(db: Database, job_id: str, **values: Any) -> None:
    if values.get("status") in ("SUCCEEDED", "FAILED"):
        values["running_lock"] = None  # the next job may start
    async with db.begin() as conn:
        await conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(**values))


async def job(db: Database, job_id: str) -> JobRecord | None:
    async with db.connect() as conn:
        row = (
            (await conn.execute(sa.select(*JOB_COLUMNS).where(jobs.c.id == job_id)))
            .mappings()
            .first()
        )
    return None if row is None else _job(row)


async def running_job(db: Database) -> JobRecord | None:
    async with db.connect() as conn:
        row = (
            (
                await conn.execute(
                    sa.select(*JOB_COLUMNS)
                    .where(jobs.c.status.in_(("QUEUED", "RUNNING")))
                    .order_by(jobs.c.created_at.desc())
                    .limit(1)
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else _job(row)


async def sales_exist(db: Database) -> bool:
    async with db.connect() as conn:
        found = (await conn.execute(sa.select(tables.sales.c.id).limit(1))).first()
    return found is not None
