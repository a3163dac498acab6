"""GET /metrics in process (the multiprocess server: tests/test_metrics_multiprocess.py):
who may read it in prod, labels that stay bounded, and component metrics that move with
what the app does (cache lookups, a breaker opening on a dead Redis, the job queue).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from app.http.metrics import metrics_route
from app.jobs import periodic
from app.jobs.metrics import JobCatalogue
from app.jobs.registry import Job, JobRegistry
from db import tables
from db.engine import Database, create_engine
from db.repositories import jobs as jobs_repo
from tests.support.apps import AppFactory, RunningApp, running_app
from tests.support.graphql import gql
from tests.support.jobs import database as jobs_database
from tests.support.jobs import empty_pg_database
from tests.support.live import free_port
from tests.support.prod import prod_settings
from tests.support.settings import (
    COMPILED_EXECUTION,
    new_namespace,
    redis_cache_settings,
    settings_for,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
METRICS_TOKEN = "t0ken-for-the-metrics-scraper"
PROPERTIES = "query Properties { properties(first: 2) { nodes { id } } }"


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


@pytest.fixture(scope="module")
async def prod_app(postgres_url: str) -> AsyncIterator[RunningApp]:
    settings = prod_settings(
        postgres_url,
        PROPINTEL_METRICS_ALLOW="10.0.0.0/8",  # not the test client's loopback
        PROPINTEL_METRICS_TOKEN=METRICS_TOKEN,
    )
    async with running_app(settings) as running:
        yield running


def test_importing_the_cli_leaves_prometheus_client_unloaded() -> None:
    """`propintel serve` sets the multiprocess directory after app.cli is imported: nothing
    that import pulls in may load prometheus-client (it would fix the value class first)."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, app.cli; print('prometheus_client' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


async def test_prod_refuses_addresses_outside_the_allow_list(prod_app: RunningApp) -> None:
    refused = await prod_app.client.get("/metrics")
    assert refused.status_code == 403
    assert "PROPINTEL_METRICS_ALLOW" in refused.text
    assert "propintel_" not in refused.text
    # X-Forwarded-For is not the peer: naming an allowed address opens nothing.
    forwarded = await prod_app.client.get("/metrics", headers={"x-forwarded-for": "10.1.2.3"})
    assert forwarded.status_code == 403


async def test_prod_allows_listed_networks_and_the_token(prod_app: RunningApp) -> None:
    inside = httpx.ASGITransport(app=prod_app.asgi, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=inside, base_url="http://propintel.test") as client:
        assert "propintel_build_info" in (await client.get("/metrics")).text
    token = {"authorization": f"Bearer {METRICS_TOKEN}"}
    opened = await prod_app.client.get("/metrics", headers=token)
    assert opened.status_code == 200
    assert "propintel_build_info" in opened.text
    wrong = await prod_app.client.get("/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_loopback_is_allowed_in_prod_by_default(postgres_url: str) -> None:
    async with running_app(prod_settings(postgres_url)) as running:
        assert (await running.client.get("/metrics")).status_code == 200


async def test_outside_prod_metrics_are_open(sqlite_app: AppFactory) -> None:
    async with sqlite_app() as running:
        found = await scrape(running.client)
    assert value(found, "propintel_build_info", version="0.1.0") == 1
    # Series exist before their first event (dashboards and alerts need them).
    for path in ("compiled", "fallback", "standard"):
        assert ("propintel_executor_operations_total", frozenset({("path", path)})) in found
    assert value(found, "propintel_job_period_seconds", job="jobs.purge") == 3600
    assert value(found, "propintel_job_period_seconds", job="alerts.digest-weekly") == 604800
    for status in ("queued", "running", "retrying", "dead"):
        assert ("propintel_job_queue_depth", frozenset({("status", status)})) in found


async def test_estimates_without_a_model_are_counted_unavailable(
    sqlite_app: AppFactory, executor: str
) -> None:
    """No active model: refused before the model is asked, and still counted, once (per
    estimate asked for: a page of three is three, estimatePrice one), on either executor
    (a plan hands the refusal to Strawberry: its attempt is not counted too)."""
    page = "{ properties(first: 3) { nodes { id estimate { price } } } }"
    features = """{ estimatePrice(input: {localityName: "Tempe", postcode: "2044",
        isStrata: false}) { price } }"""
    compiled = COMPILED_EXECUTION[executor]
    async with sqlite_app(PROPINTEL_COMPILED_EXECUTION=compiled) as running:
        before = await scrape(running.client)
        for query in (page, features):
            answered = await gql(running.client, query)
            assert answered.error_codes() == ["SERVICE_UNAVAILABLE"], answered.errors
        after = await scrape(running.client)
    name = "propintel_model_predictions_total"
    grown = {
        outcome: value(after, name, outcome=outcome) - value(before, name, outcome=outcome)
        for outcome in ("ok", "unavailable")
    }
    assert grown == {"ok": 0, "unavailable": 4}


async def test_labels_stay_bounded(sqlite_app: AppFactory) -> None:
    """An operation name nobody allow-listed is `other`; no variable's value, operation name
    or document text reaches the output."""
    secret_name = "ExfiltrateUser4711"
    secret_value = "needle-8c1f0e"
    query = f"query {secret_name}($q: String!) {{ searchAddresses(query: $q, first: 1) {{ id }} }}"
    async with sqlite_app() as running:
        await running.client.post(
            "/graphql", json={"query": query, "variables": {"q": secret_value}}
        )
        text = (await running.client.get("/metrics")).text
    assert secret_name not in text
    assert secret_value not in text
    assert "searchAddresses" not in text
    found = samples(text)
    others = [
        labels
        for (name, labels) in found
        if name == "propintel_graphql_requests_total" and ("operation", "other") in labels
    ]
    assert others, "the unknown operation is counted as `other`"


async def test_cache_lookups_move_hit_and_miss(pg_redis_app: AppFactory) -> None:
    async with pg_redis_app() as running:
        before = await scrape(running.client)
        # A document the whole-operation cache does not cover is read through the entry cache.
        first = await gql(running.client, PROPERTIES)
        first.ok()
        middle = await scrape(running.client)
        second = await gql(running.client, PROPERTIES)
        second.ok()
        after = await scrape(running.client)

    def moved(a: Samples, b: Samples, tier: str, result: str) -> float:
        return sum(
            v - a.get(key, 0.0)
            for key, v in b.items()
            if key[0] == "propintel_cache_requests_total"
            and ("tier", tier) in key[1]
            and ("result", result) in key[1]
        )

    assert moved(before, middle, "l1", "miss") > 0
    assert moved(before, middle, "l2", "miss") > 0
    assert moved(middle, after, "l1", "hit") + moved(middle, after, "operation", "hit") > 0
    assert value(after, "propintel_cache_entries", tier="l1") > 0
    # Every tier x resource x result exists from the start.
    assert (
        "propintel_cache_requests_total",
        frozenset({("tier", "l2"), ("resource", "stats"), ("result", "stale")}),
    ) in before


async def test_breaker_state_shows_open_when_redis_is_gone(postgres_url: str) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = redis_cache_settings(
        postgres_url, REDIS_URL=dead_redis, PROPINTEL_CACHE_NAMESPACE=new_namespace()
    )
    async with running_app(settings) as running:
        start = await scrape(running.client)
        assert value(start, "propintel_breaker_state", dependency="redis", state="CLOSED") == 1
        assert value(start, "propintel_breaker_state", dependency="redis", state="OPEN") == 0
        for _ in range(10):  # each misses L1 and tries L2, which fails
            await running.client.post("/graphql", json={"query": PROPERTIES})
            running.state.caching.tiered.clear_l1()
            if running.state.dependencies["redis"].breaker.state.value == "OPEN":
                break
        found = await scrape(running.client)
    assert value(found, "propintel_breaker_state", dependency="redis", state="OPEN") == 1
    assert value(found, "propintel_breaker_state", dependency="redis", state="CLOSED") == 0
    failed = value(found, "propintel_dependency_calls_total", dependency="redis", outcome="failure")
    assert failed > value(
        start, "propintel_dependency_calls_total", dependency="redis", outcome="failure"
    )
    errors = sum(
        v
        for (name, labels), v in found.items()
        if name == "propintel_cache_requests_total" and ("result", "error") in labels
    )
    assert errors > 0


async def test_job_families_come_from_the_database(pg_redis_app: AppFactory) -> None:
    """Depth and last success are read at scrape time (the same on every process); a job
    enqueued and run in process shows in both."""
    async with pg_redis_app(PROPINTEL_WORKER=True) as running:
        queue = running.state.graphql.jobs  # JobQueue
        assert await queue.enqueue("jobs.noop", {})
        worker = running.state.worker
        await worker.drain(timeout=20)
        found = await scrape(running.client)
    assert value(found, "propintel_job_last_success_timestamp_seconds", job="jobs.noop") > 0
    assert value(found, "propintel_jobs_total", job="jobs.noop", outcome="succeeded") >= 1
    assert value(found, "propintel_job_duration_seconds_count", job="jobs.noop") >= 1
    assert value(found, "propintel_job_period_seconds", job="jobs.recover-leases") == 60
    assert ("propintel_jobs_total", frozenset({("job", "other"), ("outcome", "dead")})) in found


def test_period_lengths_are_found_from_the_names() -> None:
    assert periodic.period_seconds(periodic.daily) == 86400
    assert periodic.period_seconds(periodic.iso_week) == 604800
    assert periodic.period_seconds(periodic.every_minutes(5)) == 300
    assert periodic.period_seconds(periodic.every_seconds(7)) == 7


async def test_the_scrape_answers_without_the_database() -> None:
    """The queue families are left out, the rest is served, when the database does not
    answer (here: nothing listens where it should be)."""
    settings = settings_for(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    db = Database(create_engine(settings.database_url, pool_size=1), pool_size=1)
    registry = JobRegistry()
    registry.register("jobs.noop", _noop)
    registry.every("jobs.noop", "jobs.noop", periodic.hourly)
    app = Starlette(routes=[metrics_route(settings, db, JobCatalogue.of(registry))])
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            found = await scrape(client)
    finally:
        await db.dispose()
    assert not any(name == "propintel_job_queue_depth" for name, _ in found)
    assert value(found, "propintel_job_period_seconds", job="jobs.noop") == 3600
    assert ("propintel_build_info", frozenset({("version", "0.1.0")})) in found


async def _noop(_job: Job) -> None:
    return None


@pytest.fixture(scope="module")
def queue_url() -> Iterator[str]:
    with empty_pg_database("metrics_queue") as url:
        yield url


async def test_the_purge_keeps_each_kinds_last_success(queue_url: str) -> None:
    """SUCCEEDED jobs go after a day, but each kind's newest stays: a weekly job's last
    success must outlive the day (propintel_job_last_success_timestamp_seconds)."""
    db = jobs_database(queue_url)
    try:
        async with db.begin() as conn:
            for _ in range(3):
                await jobs_repo.enqueue(conn, "jobs.noop", {})
            await jobs_repo.enqueue(conn, "jobs.sleep", {"seconds": 0})
        long_ago = datetime.now(UTC) - timedelta(days=3)
        async with db.begin() as conn:
            await conn.execute(
                sa.update(tables.jobs).values(status="SUCCEEDED", finished_at=long_ago)
            )
        now = datetime.now(UTC)
        deleted, _, _ = await jobs_repo.purge(
            db,
            succeeded_before=now - timedelta(days=1),
            workers_before=now,
            periods_before=now,
        )
        kept = await jobs_repo.job_rows(db)
        state = await jobs_repo.queue_metrics(db, ["jobs.noop", "jobs.sleep", "jobs.purge"])
    finally:
        await db.dispose()
    assert deleted == 2
    assert sorted(job.kind for job in kept) == ["jobs.noop", "jobs.sleep"]
    assert [job.id for job in kept] == [3, 4]  # the newest noop (1..3) and the sleep (4)
    assert abs(state.last_success["jobs.noop"].timestamp() - long_ago.timestamp()) < 1
    assert "jobs.purge" not in state.last_success  # never succeeded: no series
    assert state.depth == {"QUEUED": 0, "RUNNING": 0, "RETRYING": 0, "DEAD": 0}
