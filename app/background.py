"""What the job workers run: the registry of every domain's job kinds and periodic tasks,
and `propintel worker`'s process (composition root: it may import every domain).

Each domain's tasks module exposes `register(registry, *, db, settings, ...)`; add its line
to `build_registry`.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from app.alerts import tasks as alerts_tasks
from app.estimates import tasks as estimates_tasks
from app.estimates import watches as estimate_watches
from app.estimates.service import ModelRegistry
from app.estimates.tasks import Trainer
from app.jobs import tasks as jobs_tasks
from app.jobs.registry import JobRegistry
from app.jobs.worker import Worker
from app.settings import Settings
from app.streams.broker import AlertBroker
from app.webhooks import tasks as webhooks_tasks
from db.engine import Database, create_engine
from db.tls import asyncpg_ssl

logger = logging.getLogger("propintel.jobs")

SHUTDOWN_GRACE_S = 10.0


def build_registry(
    *,
    db: Database,
    settings: Settings,
    broker: AlertBroker,
    models: ModelRegistry | None,
    trainer: Trainer | None = None,
) -> JobRegistry:
    """`trainer`: the process's Trainer (its `options` are what trainings here use)."""
    registry = JobRegistry()
    jobs_tasks.register(registry, db=db, settings=settings)
    alerts_tasks.register(registry, db=db, settings=settings, broker=broker)
    estimates_tasks.register(registry, db=db, settings=settings, models=models, trainer=trainer)
    webhooks_tasks.register(registry, db=db, settings=settings)
    if models is not None:  # estimate watches estimate with the process's active model
        estimate_watches.register(registry, db=db, settings=settings, models=models, broker=broker)
    return registry


async def run_worker(settings: Settings, *, concurrency: int | None = None) -> None:
    """`propintel worker`: a worker in this process until SIGTERM or SIGINT, then a graceful
    stop (running jobs get SHUTDOWN_GRACE_S to finish, the rest are given back)."""
    concurrency = concurrency or settings.worker_concurrency
    ssl = asyncpg_ssl(settings.db_sslmode, settings.db_sslrootcert)
    pool_size = min(concurrency + 4, 32)  # a connection per running job, and the loops'
    db = Database(
        create_engine(
            settings.database_url,
            pool_size=pool_size,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            ssl=ssl,
        ),
        pool_size=pool_size,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        ssl=ssl,
    )
    models = ModelRegistry(db, poll_s=settings.model_poll_s)
    broker = AlertBroker(settings)  # publishes only (subscriptions listen in the API)
    trainer = Trainer(db, models, settings.database_url)
    registry = build_registry(
        db=db, settings=settings, broker=broker, models=models, trainer=trainer
    )
    worker = Worker(db, registry, settings, concurrency=concurrency)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await models.start()  # estimate checks need the active model; it survives without
        await worker.start()
        print(
            f"job worker {worker.id}: {concurrency} slots, kinds "
            + ", ".join(sorted(registry.kinds)),
            flush=True,
        )
        await stopping.wait()
        print(f"job worker {worker.id}: stopping (grace {SHUTDOWN_GRACE_S:.0f} s)", flush=True)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await worker.stop(grace_s=SHUTDOWN_GRACE_S)
        await trainer.close()
        await broker.close()
        await models.close()
        await db.dispose()
