"""ESTIMATE_CHANGED alerts (app/estimates/watches.py) on the PostgreSQL slice with the
session's small model active: a watch's first estimate becomes its baseline; a move past
the threshold makes one alert (its webhook delivery and job in the same transaction, its
user woken after), a re-run makes nothing; a model activation checks the watches made with
another model; no model, no work and no error.

The handlers are called with a `Job` as the worker would call them; the setup writes users,
watches and endpoints with SQL (the GraphQL side of watches is the alerts owner's)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from app.estimates.service import ModelRegistry
from app.estimates.watches import (
    CHECK,
    MODEL_ACTIVATION,
    EstimateWatches,
    minute_of,
    register,
)
from app.jobs.registry import Job, JobRegistry
from app.jobs.worker import Worker
from app.settings import Settings
from app.streams.broker import AlertBroker
from db import tables
from db.engine import Database, count_statements, create_engine
from db.migrate import upgrade
from db.repositories import jobs as job_queue
from schema.ids import to_global_id
from tests.support.apps import RunningApp, running_app
from tests.support.graphql import gql
from tests.support.models import train_and_activate
from tests.support.settings import settings_for


class Published:
    """Records the users an AlertBroker would wake (the broker itself is the streams
    owner's; here only the call matters)."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def publish(self, user_ids: Iterable[int]) -> None:
        self.calls.append(sorted(user_ids))


@pytest.fixture(scope="module")
async def db(postgres_url: str, trained_version: int) -> AsyncIterator[Database]:
    database = Database(create_engine(settings_for(postgres_url).database_url))
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def models(db: Database) -> ModelRegistry:
    registry = ModelRegistry(db, poll_s=3600)
    assert await registry.refresh() is not None
    return registry


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def watches(db: Database, models: ModelRegistry, published: Published) -> EstimateWatches:
    return EstimateWatches(db, models, published)


@pytest.fixture(scope="module")
async def app(postgres_url: str, trained_version: int) -> AsyncIterator[RunningApp]:
    async with running_app(settings_for(postgres_url)) as running:
        yield running


def job(kind: str, payload: dict[str, Any]) -> Job:
    return Job(id=0, kind=kind, payload=payload, attempts=1, max_attempts=5)


def check_job(property_ids: Sequence[int]) -> Job:
    return job(CHECK, {"property_ids": list(property_ids)})


async def new_user(db: Database) -> int:
    async with db.begin() as conn:
        return int(
            (
                await conn.execute(
                    sa.insert(tables.users)
                    .values(email=f"watch-{uuid.uuid4().hex[:12]}@example.com", password_hash="x")
                    .returning(tables.users.c.id)
                )
            ).scalar_one()
        )


async def property_ids(db: Database, count: int, *, offset: int) -> list[int]:
    """Live properties of the slice with a market sale (an estimate from their history)."""
    rows = await db.fetch_all(
        sa.text(
            "SELECT DISTINCT p.id FROM properties p JOIN sales s ON s.property_id = p.id "
            "WHERE p.deleted_at IS NULL AND s.is_market_sale ORDER BY p.id "
            "LIMIT :n OFFSET :o"
        ),
        {"n": count, "o": offset},
    )
    return [row[0] for row in rows]


async def add_watch(
    db: Database,
    user_id: int,
    property_id: int,
    pct: float = 5,
    *,
    baseline: int | None = None,
    version: int | None = None,
) -> int:
    async with db.begin() as conn:
        return int(
            (
                await conn.execute(
                    sa.insert(tables.watches)
                    .values(
                        user_id=user_id,
                        property_id=property_id,
                        estimate_change_pct=pct,
                        baseline_estimate=baseline,
                        baseline_model_version=version,
                        created_at=datetime.now(UTC),
                    )
                    .returning(tables.watches.c.id)
                )
            ).scalar_one()
        )


async def set_baseline(
    db: Database, watch_id: int, baseline: int | None, version: int | None
) -> None:
    async with db.begin() as conn:
        await conn.execute(
            sa.update(tables.watches)
            .where(tables.watches.c.id == watch_id)
            .values(baseline_estimate=baseline, baseline_model_version=version)
        )


async def baseline_of(db: Database, watch_id: int) -> tuple[int | None, int | None]:
    w = tables.watches
    row = await db.fetch_one(
        sa.select(w.c.baseline_estimate, w.c.baseline_model_version).where(w.c.id == watch_id)
    )
    return row[0], row[1]


async def alerts_of(db: Database, watch_id: int) -> list[dict[str, Any]]:
    a = tables.alerts
    rows = await db.fetch_all(
        sa.select(a.c.id, a.c.user_id, a.c.kind, a.c.property_id, a.c.data)
        .where(a.c.watch_id == watch_id)
        .order_by(a.c.id)
    )
    return [
        {"id": r[0], "user_id": r[1], "kind": r[2], "property_id": r[3], "data": orjson.loads(r[4])}
        for r in rows
    ]


async def add_endpoint(db: Database, user_id: int, events: str) -> int:
    now = datetime.now(UTC)
    async with db.begin() as conn:
        return int(
            (
                await conn.execute(
                    sa.insert(tables.webhook_endpoints)
                    .values(
                        user_id=user_id,
                        url="http://127.0.0.1:9/hook",
                        events=events,
                        secret="whsec_" + "A" * 32,
                        status="ACTIVE",
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(tables.webhook_endpoints.c.id)
                )
            ).scalar_one()
        )


async def deliveries_of(db: Database, endpoint_id: int) -> list[tuple[int, int, str, str]]:
    d = tables.webhook_deliveries
    rows = await db.fetch_all(
        sa.select(d.c.id, d.c.alert_id, d.c.event_type, d.c.status)
        .where(d.c.endpoint_id == endpoint_id)
        .order_by(d.c.id)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def deliver_jobs(db: Database, delivery_ids: Sequence[int]) -> list[int]:
    j = tables.jobs
    rows = await db.fetch_all(sa.select(j.c.payload).where(j.c.kind == "webhook.deliver"))
    wanted = set(delivery_ids)
    return sorted(
        p["delivery_id"] for p in (orjson.loads(r[0]) for r in rows) if p["delivery_id"] in wanted
    )


async def api_estimate(app: RunningApp, property_id: int) -> dict[str, Any]:
    """What `Property.estimate` answers (today, the active model)."""
    data = (
        await gql(
            app.client,
            "query($id: ID!) { property(id: $id) { estimate { price asOf modelVersion } } }",
            id=to_global_id("Property", property_id),
        )
    ).ok()
    return dict(data["property"]["estimate"])


async def test_a_first_check_sets_the_baseline_to_the_apis_estimate_without_an_alert(
    db: Database,
    watches: EstimateWatches,
    published: Published,
    app: RunningApp,
    trained_version: int,
) -> None:
    user = await new_user(db)
    (pid,) = await property_ids(db, 1, offset=0)
    watch = await add_watch(db, user, pid)
    await watches.run_check(check_job([pid]))  # returns None: done, not RunAgain
    expected = await api_estimate(app, pid)
    assert expected["modelVersion"] == trained_version
    assert await baseline_of(db, watch) == (expected["price"], trained_version)
    assert await alerts_of(db, watch) == []
    assert published.calls == []


async def test_a_move_past_the_threshold_alerts_once_with_a_delivery(
    db: Database,
    watches: EstimateWatches,
    published: Published,
    trained_version: int,
) -> None:
    user = await new_user(db)
    other = await new_user(db)
    endpoint = await add_endpoint(db, user, "PROPERTY_SOLD,ESTIMATE_CHANGED")
    not_subscribed = await add_endpoint(db, user, "SALE_MATCHED")
    (pid,) = await property_ids(db, 1, offset=1)
    watch = await add_watch(db, user, pid, 5)
    quiet = await add_watch(db, other, pid, 20)  # another user's watch, a wider threshold
    await watches.run_check(check_job([pid]))
    current, _ = await baseline_of(db, watch)
    assert current is not None
    # The estimate 10% above the baseline: past 5%, under 20%.
    previous = round(current / 1.1)
    await set_baseline(db, watch, previous, trained_version)
    await set_baseline(db, quiet, previous, trained_version)

    await watches.run_check(check_job([pid]))
    (alert,) = await alerts_of(db, watch)
    change = (current - previous) / previous * 100
    assert 9.9 < change < 10.1
    assert alert["kind"] == "ESTIMATE_CHANGED"
    assert (alert["user_id"], alert["property_id"]) == (user, pid)
    assert alert["data"] == {
        "previous": previous,
        "current": current,
        "changePct": round(change, 2),
        "modelVersion": trained_version,
    }
    assert await baseline_of(db, watch) == (current, trained_version)
    # The other user's watch: no alert, its baseline kept (drifts add up).
    assert await alerts_of(db, quiet) == []
    assert await baseline_of(db, quiet) == (previous, trained_version)
    (delivery,) = await deliveries_of(db, endpoint)
    assert delivery[1:] == (alert["id"], "estimate.changed", "PENDING")
    assert await deliveries_of(db, not_subscribed) == []
    assert await deliver_jobs(db, [delivery[0]]) == [delivery[0]]
    assert published.calls == [[user]]

    # A re-run finds nothing to say; a racing twin that read the old baseline inserts the
    # same dedupe key, so nothing either.
    await watches.run_check(check_job([pid]))
    await set_baseline(db, watch, previous, trained_version)
    await watches.run_check(check_job([pid]))
    assert len(await alerts_of(db, watch)) == 1
    assert len(await deliveries_of(db, endpoint)) == 1
    assert published.calls == [[user]]


async def test_a_move_under_the_threshold_keeps_the_baseline(
    db: Database, watches: EstimateWatches, trained_version: int
) -> None:
    user = await new_user(db)
    (pid,) = await property_ids(db, 1, offset=2)
    watch = await add_watch(db, user, pid, 20)
    await watches.run_check(check_job([pid]))
    current, _ = await baseline_of(db, watch)
    assert current is not None
    previous = round(current / 1.1)
    await set_baseline(db, watch, previous, trained_version)
    await watches.run_check(check_job([pid]))
    assert await alerts_of(db, watch) == []
    assert await baseline_of(db, watch) == (previous, trained_version)


async def test_a_batch_costs_the_same_statements_and_one_model_call(
    db: Database, watches: EstimateWatches, models: ModelRegistry, trained_version: int
) -> None:
    user = await new_user(db)
    pids = await property_ids(db, 41, offset=10)
    ids = [await add_watch(db, user, pid) for pid in pids]
    with count_statements() as one:
        await watches.check(pids[:1])
    calls = models.predict_calls
    with count_statements() as many:
        await watches.check(pids[1:])
    assert models.predict_calls - calls == 1
    assert many.count == one.count, many.statements
    for watch in ids:
        baseline, version = await baseline_of(db, watch)
        assert baseline is not None
        assert baseline > 0
        assert version == trained_version


async def test_a_model_activation_checks_the_watches_of_other_models_and_new_ones(
    db: Database, watches: EstimateWatches, published: Published, trained_version: int
) -> None:
    user = await new_user(db)
    older, fresh, current_model = await property_ids(db, 3, offset=3)
    # Baselines of this model version, to learn today's estimates.
    probe = await new_user(db)
    probes = [await add_watch(db, probe, pid) for pid in (older, current_model)]
    await watches.check([older, current_model])
    (older_now, _), (current_now, _) = [await baseline_of(db, w) for w in probes]
    assert older_now is not None
    assert current_now is not None
    made_by_another = await add_watch(
        db, user, older, 5, baseline=round(older_now / 1.1), version=trained_version + 1000
    )
    never_estimated = await add_watch(db, user, fresh, 5)
    # Made with the active model: the activation check leaves it alone (a sale would not).
    up_to_date = await add_watch(
        db, user, current_model, 5, baseline=round(current_now / 1.1), version=trained_version
    )

    await watches.run_model_activation(
        job(MODEL_ACTIVATION, {"period": minute_of(datetime.now(UTC))})
    )
    (alert,) = await alerts_of(db, made_by_another)
    assert alert["data"]["previous"] == round(older_now / 1.1)
    assert alert["data"]["current"] == older_now
    assert alert["data"]["modelVersion"] == trained_version
    assert await baseline_of(db, made_by_another) == (older_now, trained_version)
    assert await alerts_of(db, never_estimated) == []
    baseline, version = await baseline_of(db, never_estimated)
    assert baseline is not None
    assert version == trained_version
    assert await alerts_of(db, up_to_date) == []
    assert await baseline_of(db, up_to_date) == (round(current_now / 1.1), trained_version)
    assert [user] in published.calls
    # Every watch is now checked with the active model: the next minute's run finds none.
    with count_statements() as log:
        await watches.run_model_activation(job(MODEL_ACTIVATION, {"period": "next"}))
    assert log.count == 2, log.statements  # the active version, the watches left to check


async def test_register_adds_the_check_and_a_per_minute_activation_task(
    db: Database, models: ModelRegistry, postgres_url: str
) -> None:
    registry = JobRegistry()
    settings = settings_for(postgres_url)
    register(registry, db=db, settings=settings, models=models, broker=AlertBroker(settings))
    assert set(registry.kinds) == {CHECK, MODEL_ACTIVATION}
    (periodic,) = registry.periodic
    assert (periodic.name, periodic.kind) == (MODEL_ACTIVATION, MODEL_ACTIVATION)
    at = datetime(2026, 12, 1, 11, 47, 59, tzinfo=UTC)
    assert periodic.period_of(at) == "2026-12-01T11:47"
    assert periodic.period_of(at.replace(minute=48, second=0)) == "2026-12-01T11:48"


async def test_the_worker_runs_an_enqueued_check(
    db: Database, models: ModelRegistry, postgres_url: str, trained_version: int
) -> None:
    """As the alerts pipeline does it: `estimates.check` enqueued in a transaction (the
    outbox), run by a worker of these kinds."""
    user = await new_user(db)
    (pid,) = await property_ids(db, 1, offset=60)
    watch = await add_watch(db, user, pid)
    async with db.begin() as conn:
        assert await job_queue.enqueue(conn, CHECK, {"property_ids": [pid]})
    registry = JobRegistry()
    settings = settings_for(postgres_url)
    register(registry, db=db, settings=settings, models=models, broker=AlertBroker(settings))
    worker = Worker(db, registry, settings, only_registered=True, run_periodic=False)
    assert await worker.drain(timeout=30) >= 1
    baseline, version = await baseline_of(db, watch)
    assert baseline is not None
    assert version == trained_version
    j = tables.jobs
    rows = await db.fetch_all(sa.select(j.c.payload, j.c.status).where(j.c.kind == CHECK))
    assert [
        status for payload, status in rows if orjson.loads(payload)["property_ids"] == [pid]
    ] == ["SUCCEEDED"]


async def test_a_bad_payload_fails_the_job(watches: EstimateWatches) -> None:
    with pytest.raises(ValueError, match="property_ids"):
        await watches.run_check(job(CHECK, {"property_ids": "12"}))


@pytest.fixture
def fresh_install(tmp_path: Path) -> str:
    """A migrated embedded database with no model (and no sales): a fresh install."""
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    upgrade(settings.database_url)
    return settings.database_url


async def test_without_an_active_model_the_jobs_do_nothing_and_succeed(
    fresh_install: str,
) -> None:
    fresh = Database(create_engine(fresh_install))
    try:
        models = ModelRegistry(fresh, poll_s=3600)
        published = Published()
        watches = EstimateWatches(fresh, models, published)
        # Neither raises (a failed attempt) nor asks to run again: done.
        await watches.run_check(check_job([1, 2, 3]))
        await watches.run_model_activation(job(MODEL_ACTIVATION, {"period": "p"}))
        assert models.predict_calls == 0
        assert published.calls == []
    finally:
        await fresh.dispose()


@pytest.fixture
def embedded_copy(sqlite_url: str, tmp_path: Path) -> str:
    """A copy of the session's SQLite slice with a model of its own, active (the embedded
    default; a copy, so the model and the watches stay out of the other tests' database)."""
    copy = tmp_path / "embedded.sqlite3"
    shutil.copyfile(sqlite_url.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    train_and_activate(url)
    return url


async def test_the_embedded_default_alerts_as_postgresql_does(embedded_copy: str) -> None:
    embedded = Database(create_engine(settings_for(embedded_copy).database_url))
    try:
        models = ModelRegistry(embedded, poll_s=3600)
        active = await models.refresh()
        assert active is not None
        published = Published()
        watches = EstimateWatches(embedded, models, published)
        user = await new_user(embedded)
        endpoint = await add_endpoint(embedded, user, "ESTIMATE_CHANGED")
        pids = await property_ids(embedded, 3, offset=0)
        ids = [await add_watch(embedded, user, pid) for pid in pids]
        await watches.run_model_activation(job(MODEL_ACTIVATION, {"period": "p"}))
        baselines = [await baseline_of(embedded, w) for w in ids]
        assert all(b is not None and v == active.version for b, v in baselines)
        first, _ = baselines[0]
        assert first is not None
        await set_baseline(embedded, ids[0], round(first * 1.1), active.version)
        await watches.run_check(check_job(pids))
        await watches.run_check(check_job(pids))
        (alert,) = await alerts_of(embedded, ids[0])
        assert alert["data"]["current"] == first
        assert alert["data"]["changePct"] == round(
            (first - round(first * 1.1)) / round(first * 1.1) * 100, 2
        )
        assert [d[1] for d in await deliveries_of(embedded, endpoint)] == [alert["id"]]
        assert published.calls == [[user]]
    finally:
        await embedded.dispose()
