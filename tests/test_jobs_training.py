"""Training on the job worker: `retrainModel` records the training and enqueues `model.train`
in one transaction; an API without a worker never trains (the job waits, across a restart);
the in-process worker of the embedded default trains it in a child process."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from app.jobs.registry import Job
from app.jobs.worker import Worker
from db.repositories import price_models
from tests.support.apps import RunningApp, running_app
from tests.support.credentials import ADMIN
from tests.support.jobs import rows, wait_for
from tests.support.models import FAST_TRAINING
from tests.support.settings import settings_for

RETRAIN = "mutation { retrainModel { id status } }"
STATUS = "query($id: ID!) { modelTrainingStatus(id: $id) { status modelVersion error } }"


async def post(app: RunningApp, query: str, **variables: Any) -> dict[str, Any]:
    response = await app.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    body = dict(response.json())
    assert "errors" not in body, body
    return dict(body["data"])


async def _training_is(app: RunningApp, training_id: str, status: str) -> bool:
    found = await price_models.job(app.state.db, training_id)
    return found is not None and found.status == status


async def test_retrain_enqueues_and_the_worker_trains(sqlite_url: str, tmp_path: Path) -> None:
    copy = tmp_path / "training.sqlite3"
    shutil.copy(sqlite_url.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    async with running_app(settings_for(url, PROPINTEL_WORKER=False)) as api:
        training = (await post(api, RETRAIN))["retrainModel"]
        assert training["status"] == "QUEUED"
        (job,) = await rows(api.state.db, price_models.TRAINING_KIND)
        assert job.payload == {"training_job_id": training["id"]}
        assert job.status == "QUEUED"
        await asyncio.sleep(1)
        # No worker here: nothing trains in this API process.
        assert (await post(api, STATUS, id=training["id"]))["modelTrainingStatus"]["status"] == (
            "QUEUED"
        )
        assert api.state.trainer._pool is None
    # The embedded default: the next start's in-process worker takes the job and trains.
    settings = settings_for(url, PROPINTEL_WORKER=True, PROPINTEL_WORKER_POLL_S=0.2)
    async with running_app(settings) as app:
        worker: Worker = app.state.worker
        # Stopped mid-training (a full training takes minutes): the child process is ended
        # and the job given back, not failed; the training waits for the next worker.
        await wait_for(lambda: _training_is(app, training["id"], "RUNNING"), timeout=20)
        await worker.stop(grace_s=0.2)
        assert app.state.trainer._pool is None
        assert await _training_is(app, training["id"], "QUEUED")
        (job,) = await rows(app.state.db, price_models.TRAINING_KIND)
        assert (job.status, job.attempts, job.locked_by) == ("QUEUED", 0, None)
        app.state.trainer.options = FAST_TRAINING
        await worker.start()
        started = time.monotonic()

        async def finished() -> bool:
            state = (await post(app, STATUS, id=training["id"]))["modelTrainingStatus"]
            return bool(state["status"] in ("SUCCEEDED", "FAILED"))

        slowest = 0.0
        while not await finished():
            began = time.perf_counter()
            await post(app, "{ models { version } }")
            slowest = max(slowest, time.perf_counter() - began)
            assert time.monotonic() - started < 180
            await asyncio.sleep(0.2)
        state = (await post(app, STATUS, id=training["id"]))["modelTrainingStatus"]
        assert state["status"] == "SUCCEEDED", state
        assert slowest < 1.0  # trained in a child process: the API kept answering
        assert worker.ran >= 1
        assert app.state.models.active is not None
        assert app.state.models.active.version == state["modelVersion"]  # activated here
        (job,) = await rows(app.state.db, price_models.TRAINING_KIND)
        assert (job.status, job.attempts) == ("SUCCEEDED", 1)
        # A repeated run of a finished training's job (at least once) changes nothing.
        again = Job(job.id, job.kind, job.payload, attempts=2, max_attempts=job.max_attempts)
        await app.state.trainer.run(again)
        versions = (await post(app, "{ models { version } }"))["models"]
        assert [m["version"] for m in versions] == [state["modelVersion"]]
