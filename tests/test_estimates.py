"""Price estimates over HTTP: batching (one SQL statement and one model call per page),
caching and invalidation, validation, comparable sales, and the model registry."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.auth.principal import Role
from app.jobs.registry import JobRegistry
from app.jobs.worker import Worker
from db.engine import Database, create_engine
from db.repositories.jobs import job_rows
from db.repositories.price_models import (
    ABANDONED_AFTER,
    TRAINING_KIND,
    JobAlreadyRunning,
    create_job,
    running_job,
    update_job,
)
from db.repositories.price_models import job as job_of
from tests.support.apps import AppFactory, RunningApp, running_app
from tests.support.credentials import ADMIN, bearer
from tests.support.graphql import codes
from tests.support.models import FAST_TRAINING
from tests.support.reference import Reference
from tests.support.settings import COMPILED_EXECUTION, settings_for

PAGE = """query($first: Int!, $asOf: Date) { properties(first: $first, filter: {postcode: "2044"}) {
    nodes { id lastSalePrice %s } } }"""
ESTIMATE = "estimate(asOf: $asOf) { price low high modelVersion asOf }"
ESTIMATE_PRICE = """query($input: PropertyFeaturesInput!, $asOf: Date) {
    estimatePrice(input: $input, asOf: $asOf) { price low high modelVersion asOf } }"""


@pytest.fixture(scope="module")
async def estimating(postgres_url: str, trained_version: int) -> AsyncIterator[RunningApp]:
    async with running_app(settings_for(postgres_url)) as app:
        yield app


async def post(
    app: RunningApp, query: str, headers: dict[str, str] | None = None, **variables: Any
) -> dict[str, Any]:
    response = await app.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def on_executor(url: str, executor: str) -> contextlib.AbstractAsyncContextManager[RunningApp]:
    return running_app(settings_for(url, PROPINTEL_COMPILED_EXECUTION=COMPILED_EXECUTION[executor]))


# The executor as a parameter of these tests (not the session-scoped `executor` fixture):
# pytest would otherwise regroup the whole session by executor and set this module's
# fixtures (a model trained) up once per group.
EXECUTORS = pytest.mark.parametrize("executor", sorted(COMPILED_EXECUTION))


@EXECUTORS
async def test_a_page_of_estimates_costs_one_statement_and_one_model_call(
    postgres_url: str, trained_version: int, executor: str
) -> None:
    async with on_executor(postgres_url, executor) as app:
        plain = await post(app, PAGE.replace(", $asOf: Date", "") % "", first=20)
        assert "errors" not in plain, plain
        calls = app.state.models.predict_calls
        body = await post(app, PAGE % ESTIMATE, first=20, asOf="2024-06-30")
        assert "errors" not in body, body
        assert app.state.models.predict_calls - calls == 1
        assert body["extensions"]["sqlStatements"] == plain["extensions"]["sqlStatements"] + 1
        nodes = body["data"]["properties"]["nodes"]
        assert len(nodes) == 20
        for node in nodes:
            estimate = node["estimate"]
            assert estimate["low"] <= estimate["price"] <= estimate["high"]
            assert estimate["modelVersion"] == trained_version
            assert estimate["asOf"] == "2024-06-30"
        # Estimates track what sold: the priciest last sales get the higher estimates.
        ranked = sorted(nodes, key=lambda n: n["lastSalePrice"])
        low_half = sum(n["estimate"]["price"] for n in ranked[:10])
        high_half = sum(n["estimate"]["price"] for n in ranked[10:])
        assert high_half > low_half


async def model_window(app: RunningApp) -> tuple[date, date]:
    """(dataFrom, dataTo) of the active model."""
    listed = (await post(app, "{ models { active dataFrom dataTo } }", ADMIN))["data"]["models"]
    (active,) = [m for m in listed if m["active"]]
    return date.fromisoformat(active["dataFrom"]), date.fromisoformat(active["dataTo"])


async def test_estimates_default_to_today_and_say_how_far_past_the_data(
    estimating: RunningApp,
) -> None:
    query = PAGE % "estimate(asOf: $asOf) { asOf dataTo extrapolatedDays }"
    body = await post(estimating, query, first=2)
    today = datetime.now(UTC).date()
    _, data_to = await model_window(estimating)
    assert [n["estimate"] for n in body["data"]["properties"]["nodes"]] == [
        {
            "asOf": today.isoformat(),
            "dataTo": data_to.isoformat(),
            "extrapolatedDays": (today - data_to).days,
        }
    ] * 2
    within = await post(estimating, query, first=1, asOf=(data_to - timedelta(days=30)).isoformat())
    assert within["data"]["properties"]["nodes"][0]["estimate"]["extrapolatedDays"] == 0


async def test_an_as_of_before_the_models_data_is_refused(estimating: RunningApp) -> None:
    data_from, _ = await model_window(estimating)
    before = (data_from - timedelta(days=1)).isoformat()
    for body in (
        await post(estimating, PAGE % ESTIMATE, first=1, asOf=before),
        await post(
            estimating,
            ESTIMATE_PRICE,
            input={"localityName": "Tempe", "postcode": "2044", "isStrata": False},
            asOf=before,
        ),
    ):
        assert codes(body) == ["BAD_USER_INPUT"], body
        assert body["errors"][0]["extensions"]["argument"] == "asOf"
        assert str(data_from) in body["errors"][0]["message"]


async def test_cached_estimates_and_a_new_sale_invalidates_them(
    pg_redis_app: AppFactory, postgres_url: str, trained_version: int
) -> None:
    async with pg_redis_app() as app:
        query = PAGE % ESTIMATE
        first = await post(app, query, first=5, asOf="2024-01-31")
        calls = app.state.models.predict_calls
        again = await post(app, query.replace("lastSalePrice", "id"), first=5, asOf="2024-01-31")
        assert app.state.models.predict_calls == calls  # every estimate came from the cache
        node = first["data"]["properties"]["nodes"][0]
        record = """mutation($input: RecordSaleInput!) { recordSale(input: $input) { id } }"""
        sale = {
            "propertyId": node["id"],
            "contractDate": "2023-12-01",
            "price": node["lastSalePrice"] * 3,
            "dealingNumber": f"ES{int(time.time() * 1000) % 10**6:06d}",
        }
        assert "errors" not in await post(app, record, ADMIN, input=sale)
        try:
            after = await post(
                app, query.replace("lastSalePrice", "id"), first=5, asOf="2024-01-31"
            )
        finally:
            await forget_sale(postgres_url, sale["dealingNumber"])
        assert app.state.models.predict_calls == calls + 1  # only the changed property
        before = {n["id"]: n["estimate"]["price"] for n in again["data"]["properties"]["nodes"]}
        now = {n["id"]: n["estimate"]["price"] for n in after["data"]["properties"]["nodes"]}
        assert now[node["id"]] > before[node["id"]]  # a sale at 3x its last price moved it up
        assert {k: v for k, v in now.items() if k != node["id"]} == {
            k: v for k, v in before.items() if k != node["id"]
        }


async def forget_sale(url: str, dealing_number: str) -> None:
    """Takes the test's sale out again: other tests compare this database with the files."""
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            property_id = await connection.fetchval(
                "DELETE FROM sales WHERE dealing_number = $1 RETURNING property_id", dealing_number
            )
            await connection.execute(
                """UPDATE properties p SET last_sale_price = s.price,
                       last_sale_date = s.contract_date
                   FROM (SELECT price, contract_date FROM sales WHERE property_id = $1
                         ORDER BY contract_date DESC, id DESC LIMIT 1) s
                   WHERE p.id = $1""",
                property_id,
            )
    finally:
        await connection.close()


async def test_estimate_price_validates_its_input(estimating: RunningApp) -> None:
    house = {"localityName": "Tempe", "postcode": "2044", "isStrata": False, "areaM2": 300.0}
    body = await post(estimating, ESTIMATE_PRICE, input=house, asOf="2024-06-30")
    assert "errors" not in body, body
    estimate = body["data"]["estimatePrice"]
    assert 300_000 < estimate["price"] < 5_000_000
    assert estimate["low"] < estimate["price"] < estimate["high"]
    unit = dict(house, isStrata=True, areaM2=None)
    flat = (await post(estimating, ESTIMATE_PRICE, input=unit, asOf="2024-06-30"))["data"]
    assert flat["estimatePrice"]["price"] < estimate["price"]

    for variables, argument in (
        ({"input": dict(house, localityName="Atlantis")}, "input.localityName"),
        ({"input": dict(house, postcode="9999")}, "input.localityName"),
        ({"input": dict(house, postcode="20x4")}, "input.postcode"),
        ({"input": dict(house, areaM2=0.0)}, "input.areaM2"),
        ({"input": dict(house, areaM2=-20.0)}, "input.areaM2"),
        ({"input": dict(house, areaM2=5e9)}, "input.areaM2"),
        ({"input": dict(house, zoning="R2; DROP")}, "input.zoning"),
        ({"input": house, "asOf": "1990-01-01"}, "asOf"),
        ({"input": house, "asOf": "2999-01-01"}, "asOf"),
    ):
        body = await post(estimating, ESTIMATE_PRICE, **variables)
        assert codes(body) == ["BAD_USER_INPUT"], (variables, body)
        assert body["errors"][0]["extensions"]["argument"] == argument
    bad_date = await post(estimating, PAGE % ESTIMATE, first=1, asOf="1999-12-31")
    assert codes(bad_date) == ["BAD_USER_INPUT"]


async def test_comparable_sales(estimating: RunningApp) -> None:
    query = """{ properties(first: 3, filter: {postcode: "2044", isStrata: false}) { nodes {
        id isStrata locality { name } comparableSales(first: 4) { price isMarketSale
        property { id isStrata locality { name } } } } } }"""
    body = await post(estimating, query)
    assert "errors" not in body, body
    for node in body["data"]["properties"]["nodes"]:
        comparables = node["comparableSales"]
        assert 1 <= len(comparables) <= 4
        for sale in comparables:
            assert sale["isMarketSale"]
            assert sale["property"]["id"] != node["id"]
            assert sale["property"]["isStrata"] is False
            assert sale["property"]["locality"] == node["locality"]
    too_many = await post(
        estimating, "{ properties(first: 1) { nodes { comparableSales(first: 50) { price } } } }"
    )
    assert codes(too_many) == ["BAD_USER_INPUT"]


async def test_comparable_sales_as_of_a_date_list_only_sales_until_then(
    estimating: RunningApp, reference: Reference
) -> None:
    """As a valuer on that day would see them: nothing contracted after `asOf`, and the
    newest market sales of the locality's kind up to it (checked against the CSV files)."""
    query = """query($asOf: Date) { properties(first: 5, filter: {postcode: "2044", isStrata: false})
        { nodes { id comparableSales(first: 20, asOf: $asOf) { contractDate dealingNumber } } } }"""
    as_of = date(2015, 6, 30)
    then = await post(estimating, query, asOf=as_of.isoformat())
    now = await post(estimating, query)
    assert "errors" not in then, then
    dates = [
        date.fromisoformat(sale["contractDate"])
        for node in then["data"]["properties"]["nodes"]
        for sale in node["comparableSales"]
    ]
    assert dates
    assert max(dates) <= as_of
    by_dealing = {sale.dealing_number: sale for sale in reference.sales}
    for node in then["data"]["properties"]["nodes"]:
        for sale in node["comparableSales"]:
            source = by_dealing[sale["dealingNumber"]]
            assert source.is_market
            assert source.contract_date <= as_of
            assert source.locality == ("TEMPE", "2044")
    assert (
        max(
            date.fromisoformat(sale["contractDate"])
            for node in now["data"]["properties"]["nodes"]
            for sale in node["comparableSales"]
        )
        > as_of
    )
    bad = await post(estimating, query, asOf="1999-12-31")
    assert codes(bad) == ["BAD_USER_INPUT"]
    assert bad["errors"][0]["extensions"]["argument"] == "asOf"


@EXECUTORS
async def test_comparable_sales_of_a_page_cost_one_statement(
    postgres_url: str, executor: str
) -> None:
    """One statement for any number of properties of one kind (the pool of recent sales)."""
    page = (
        '{ properties(first: 20, filter: {postcode: "2044", isStrata: false}) { nodes { id %s } } }'
    )
    async with on_executor(postgres_url, executor) as app:
        plain = await post(app, page % "")
        with_comparables = await post(app, page % "comparableSales(first: 3) { price }")
    assert "errors" not in with_comparables, with_comparables
    assert (
        with_comparables["extensions"]["sqlStatements"] == plain["extensions"]["sqlStatements"] + 1
    )


async def test_without_an_active_model_estimates_are_unavailable(sqlite_app: AppFactory) -> None:
    async with sqlite_app() as app:
        body = await post(app, PAGE % ESTIMATE, first=1)
    assert codes(body) == ["SERVICE_UNAVAILABLE"]
    assert "retrainModel" in body["errors"][0]["message"]


@pytest.mark.slow
async def test_registry_retraining_and_activation(
    estimating: RunningApp, trained_version: int
) -> None:
    models = (
        "{ models { version active dataTo metrics { mdape intervalCoverage validationSales } } }"
    )
    assert codes(await post(estimating, models)) == ["FORBIDDEN"]
    assert codes(await post(estimating, models, bearer(5, Role.USER))) == ["FORBIDDEN"]
    listed = (await post(estimating, models, ADMIN))["data"]["models"]
    assert listed[0]["version"] == trained_version
    assert listed[0]["active"] is True
    assert 0 < listed[0]["metrics"]["mdape"] < 0.5

    retrain = "mutation { retrainModel { id status } }"
    assert codes(await post(estimating, retrain, bearer(5, Role.USER))) == ["FORBIDDEN"]
    estimating.state.trainer.options = FAST_TRAINING
    job = (await post(estimating, retrain, ADMIN))["data"]["retrainModel"]
    assert job["status"] == "QUEUED"  # for a job worker: this app runs none
    assert codes(await post(estimating, retrain, ADMIN)) == ["CONFLICT"]  # one at a time
    # A worker of its own for model.train only (the shared database may hold other tests'
    # jobs), training with the app's Trainer (FAST_TRAINING) in a child process.
    registry = JobRegistry()
    registry.register(TRAINING_KIND, estimating.state.trainer.run)
    worker = Worker(
        estimating.state.db,
        registry,
        estimating.settings,
        only_registered=True,
        run_periodic=False,
    )
    await worker.start()

    status = "query($id: ID!) { modelTrainingStatus(id: $id) { status modelVersion error } }"
    slowest = 0.0
    deadline = time.monotonic() + 240
    try:
        while True:
            started = time.perf_counter()
            state = (await post(estimating, status, ADMIN, id=job["id"]))["data"]
            slowest = max(slowest, time.perf_counter() - started)
            if state["modelTrainingStatus"]["status"] in ("SUCCEEDED", "FAILED"):
                break
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.5)
    finally:
        await worker.stop()
    assert state["modelTrainingStatus"]["status"] == "SUCCEEDED", state
    assert slowest < 1.0  # training ran in another process: requests kept being answered
    new_version = state["modelTrainingStatus"]["modelVersion"]
    assert new_version > trained_version

    estimate = "{ properties(first: 1) { nodes { estimate { modelVersion } } } }"
    served = (await post(estimating, estimate))["data"]["properties"]["nodes"][0]
    assert served["estimate"]["modelVersion"] == new_version
    activate = "mutation($v: Int!) { activateModel(version: $v) { version active } }"
    back = await post(estimating, activate, ADMIN, v=trained_version)
    assert back["data"]["activateModel"] == {"version": trained_version, "active": True}
    served = (await post(estimating, estimate))["data"]["properties"]["nodes"][0]
    assert served["estimate"]["modelVersion"] == trained_version
    assert codes(await post(estimating, activate, ADMIN, v=999_999)) == ["NOT_FOUND"]
    missing = await post(estimating, status, ADMIN, id="0" * 32)
    assert codes(missing) == ["NOT_FOUND"]
    assert codes(await post(estimating, status, ADMIN, id="nope")) == ["BAD_USER_INPUT"]


async def test_first_start_trains_a_model_in_the_background(
    sqlite_app: AppFactory, sqlite_url: str, tmp_path: Path
) -> None:
    """An empty registry and a database with sales: startup queues a training job for the
    job worker (and does not wait for it)."""
    copy = tmp_path / "fresh.sqlite3"
    shutil.copy(sqlite_url.removeprefix("sqlite:///"), copy)
    started = time.perf_counter()
    async with sqlite_app(DATABASE_URL=f"sqlite:///{copy}", PROPINTEL_TRAIN_ON_START=True) as app:
        assert time.perf_counter() - started < 5
        job = await running_job(app.state.db)
        assert job is not None
        assert job.activate
        assert job.status in ("QUEUED", "RUNNING")
        # Estimates say that one is training, and since when, rather than "train one".
        body = await post(app, PAGE % ESTIMATE, first=1)
        assert codes(body) == ["SERVICE_UNAVAILABLE"]
        message = body["errors"][0]["message"]
        assert f"one is training (job {job.id}, started" in message, message
        assert "retrainModel" not in message
    # No job worker in this app: the training waits, queued, for one (across restarts).
    waiting = await job_of(app.state.db, job.id)
    assert waiting is not None
    assert waiting.status == "QUEUED"
    (queued,) = await job_rows(app.state.db, kind=TRAINING_KIND)
    assert queued.payload == {"training_job_id": job.id}
    assert queued.status == "QUEUED"


async def test_a_job_abandoned_by_its_process_does_not_block_training(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A process killed mid-training leaves its job RUNNING; hours later it is marked FAILED
    and a new job may start."""
    copy = tmp_path / "abandoned.sqlite3"
    shutil.copy(sqlite_url.removeprefix("sqlite:///"), copy)
    db = Database(create_engine(f"sqlite+aiosqlite:///{copy}"))
    try:
        first = await create_job(db, "a" * 32, activate=True, requested_by=None)
        with pytest.raises(JobAlreadyRunning):
            await create_job(db, "b" * 32, activate=True, requested_by=None)
        long_ago = datetime.now(UTC) - ABANDONED_AFTER - timedelta(minutes=1)
        await update_job(db, first.id, status="RUNNING", created_at=long_ago)
        second = await create_job(db, "c" * 32, activate=True, requested_by=None)
        assert second.status == "QUEUED"
        abandoned = await job_of(db, first.id)
        assert abandoned is not None
        assert abandoned.status == "FAILED"
        assert abandoned.error is not None
        assert "abandoned" in abandoned.error
    finally:
        await db.dispose()


async def test_models_list_per_class_metrics(estimating: RunningApp, trained_version: int) -> None:
    query = """{ models { version metrics { intervalCoverage classes {
        name sales mdape intervalCoverage calibrationSales mergedInto } } } }"""
    listed = (await post(estimating, query, ADMIN))["data"]["models"]
    (model,) = [m for m in listed if m["version"] == trained_version]
    classes = model["metrics"]["classes"]
    assert len(classes) == 16
    assert len({c["name"] for c in classes}) == 16
    assert "house/no history/no street/area" in {c["name"] for c in classes}
    for c in classes:
        assert c["sales"] >= 0
        assert c["calibrationSales"] >= 0
        if c["sales"]:
            assert c["mdape"] >= 0
            assert 0 <= c["intervalCoverage"] <= 1
        else:
            assert c["mdape"] is None
            assert c["intervalCoverage"] is None
        assert c["mergedInto"] in (None, "area", "street and area", "all")
    assert sum(c["sales"] for c in classes) > 0


def test_metrics_stored_before_the_classes_answer_no_classes() -> None:
    from schema.estimates import ModelMetrics

    old = {
        "mdape": 0.1,
        "within_10": 0.5,
        "within_20": 0.75,
        "coverage": 0.8,
        "n_validation": 10,
        "n_train": 100,
        "baseline_mdape": 0.17,
        "validation_from": "2024-08-17",
        "validation_to": "2024-10-11",
    }
    assert ModelMetrics.of(old).classes == []
