"""/metrics of `propintel serve --workers 2` (PostgreSQL, Redis, the cache and the in-process
job worker on): every family of app/telemetry/metrics.py is there and the load moves the
ones it touches, both workers' values are summed, and a worker killed with SIGKILL leaves
the live gauges once uvicorn has replaced it, while the counters keep its share; and a
`propintel worker` of its own serves its own metrics.

One `serve --workers 2` for the module (starting it is most of the time: each process
imports the app), the SIGKILL test last on it; the standalone worker is started before the
server so that its start overlaps the server's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from app.alerts.tasks import SALES_RECORDED
from app.telemetry import metrics
from tests.support.credentials import ADMIN, JWT_SECRET
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)
from tests.support.documents import PRICE_LIST, PROPERTY, STATS
from tests.support.jobs import empty_pg_database
from tests.support.live import LiveServer, free_port, live_server_process
from tests.support.settings import REDIS_URL, new_namespace

POOL_SIZE = 3
RECORD_SALE = """mutation($input: RecordSaleInput!) { recordSale(input: $input) { id } }"""
FAMILIES = sorted(
    {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    | set(metrics.SCRAPE_TIME)
)
"""Every family the service declares (counters by their name without `_total`, as the
text format's parser names them)."""
MOVED_BY_COMPONENTS = [
    "propintel_cache_requests",
    "propintel_cache_entries",
    "propintel_db_pool_acquire_seconds",
    "propintel_db_statements",
    "propintel_dependency_calls",
    "propintel_dependency_call_duration_seconds",
    "propintel_jobs",
    "propintel_job_duration_seconds",
    "propintel_job_last_success_timestamp_seconds",
    "propintel_job_period_seconds",
    "propintel_breaker_state",
    "propintel_db_pool_size",
    "propintel_build_info",
]
MOVED_AT_THE_EDGE = [  # app/http and the executor (request-level metrics)
    "propintel_graphql_requests",
    "propintel_graphql_request_duration_seconds",
    "propintel_graphql_errors",
    "propintel_graphql_query_cost",
    "propintel_executor_operations",
    "propintel_http_requests",
    "propintel_ratelimit_decisions",
]

Families = dict[str, list[tuple[str, dict[str, str], float]]]


def parse(text: str) -> Families:
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def total(families: Families, family: str, sample: str | None = None, **labels: str) -> float:
    return sum(
        v
        for name, found, v in families.get(family, [])
        if (sample is None or name == sample) and labels.items() <= found.items()
    )


def scrape(http: httpx.Client, base: str) -> Families:
    response = http.get(f"{base}/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def worker_pids(parent: int) -> set[int]:
    """uvicorn's worker processes (spawned children; not multiprocessing's resource tracker)."""
    children = subprocess.run(
        ["pgrep", "-P", str(parent)], capture_output=True, text=True, check=False
    ).stdout.split()
    workers = set()
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if b"spawn_main" in command:
            workers.add(int(child))
    return workers


def eventually(check: Any, *, timeout: float = 60, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(every)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = pg_database_name("metrics")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metrics")


@dataclass(frozen=True, slots=True)
class StandaloneWorker:
    port: int
    directory: Path
    """The PROMETHEUS_MULTIPROC_DIR its environment names (it must leave it empty)."""


@pytest.fixture(scope="module")
def standalone_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneWorker]:
    """`propintel worker` on an empty database of its own (its periodic tasks run at once),
    serving its metrics on PROPINTEL_WORKER_METRICS_PORT."""
    directory = tmp_path_factory.mktemp("worker-metrics")
    port = free_port()
    with empty_pg_database("metrics_worker") as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "PROPINTEL_WORKER_METRICS_PORT": str(port),
            "PROMETHEUS_MULTIPROC_DIR": str(directory),
        }
        command = [sys.executable, "-m", "app.cli", "worker", "--log-level", "warning"]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            yield StandaloneWorker(port, directory)
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(
    database: str, directory: Path, standalone_worker: StandaloneWorker
) -> Iterator[LiveServer]:
    """`standalone_worker` is asked for only to start it first (the two starts overlap)."""
    (directory / "counter_999999.db").write_bytes(b"a previous run's file")
    env = {
        "DATABASE_URL": database,
        "REDIS_URL": REDIS_URL,
        "PROPINTEL_CACHE_ENABLED": "true",
        "PROPINTEL_CACHE_NAMESPACE": new_namespace(),
        "PROPINTEL_CACHE_WARM": "0",
        "PROPINTEL_WORKER": "true",
        "PROPINTEL_DB_POOL_SIZE": str(POOL_SIZE),
        "PROPINTEL_INITIAL_LOAD": "none",
        "PROPINTEL_PROFILE": "test",
        "PROPINTEL_RATE_LIMIT_ENABLED": "true",  # on, far above this load: decisions counted
        "JWT_SECRET": JWT_SECRET,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    with live_server_process(env, args=["--workers", "2"], timeout=120) as live:
        assert not (directory / "counter_999999.db").exists(), "the directory is wiped at start"

        def both_up() -> bool:  # readyz answered from one; the other may still be starting
            workers = worker_pids(live.process.pid)
            files = {int(f.stem.rpartition("_")[2]) for f in directory.glob("gauge_livesum_*.db")}
            return len(workers) == 2 and workers <= files

        assert eventually(both_up, timeout=60), "both workers built their app"
        yield live
    # Stopped cleanly, each worker marked itself dead in its lifespan shutdown: what live
    # gauges remain are the parent's (it read the database before starting them).
    left = {int(f.stem.rpartition("_")[2]) for f in directory.glob("gauge_live*_*.db")}
    assert left <= {live.process.pid}


def send_load(http: httpx.Client, base: str) -> None:
    """Reads that miss and then hit the cache, a write that enqueues a job, a bad query."""

    def ask(query: str, headers: dict[str, str] | None = None, **variables: Any) -> Any:
        body = http.post(
            f"{base}/graphql", json={"query": query, "variables": variables}, headers=headers
        ).json()
        assert "errors" not in body, body
        return body["data"]

    property_id = ask(PRICE_LIST)["properties"]["nodes"][0]["id"]
    for _ in range(6):  # fresh connections: both workers get some
        ask(PROPERTY, id=property_id)
        ask(STATS)
        ask(PRICE_LIST)
    sale = {
        "propertyId": property_id,
        "contractDate": (date.today() - timedelta(days=3)).isoformat(),
        "price": 1_234_567,
        "dealingNumber": f"AM{os.getpid() % 100000:05d}",
    }
    ask(RECORD_SALE, headers=ADMIN, input=sale)  # invalidates what was cached of TEMPE
    for _ in range(4):
        ask(STATS)  # cached again (propintel_cache_entries)
    bad = http.post(f"{base}/graphql", json={"query": "{ noSuchField }"}).json()
    assert bad["errors"]


def test_every_family_moves_across_two_workers(server: LiveServer) -> None:
    base = server.base
    with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        before = scrape(http, base)
        # The components' series exist before any event (request-level ones may wait for
        # their first request: their labels come from it).
        missing = [name for name in FAMILIES if name not in before]
        assert set(missing) <= set(MOVED_AT_THE_EDGE), f"absent before any load: {missing}"
        send_load(http, base)

        def job_ran() -> Families | None:
            found = scrape(http, base)
            ran = total(found, "propintel_jobs", job=SALES_RECORDED, outcome="succeeded")
            return found if ran >= 1 else None

        after = eventually(job_ran, timeout=30)
        assert after, "the sale's job ran and was counted"
        scrapes = [scrape(http, base) for _ in range(4)]  # whichever worker answers

    # Both workers' pools are in the sum (each opens its read pool at startup).
    assert total(after, "propintel_db_pool_size", pool="reads") == 2 * POOL_SIZE
    for family in MOVED_BY_COMPONENTS:
        assert total(after, family) > 0, f"{family} did not move"
    assert total(after, "propintel_cache_requests", result="hit") > total(
        before, "propintel_cache_requests", result="hit"
    )
    assert total(after, "propintel_cache_requests", result="miss") > 0
    assert total(after, "propintel_db_statements", pool="writes") > total(
        before, "propintel_db_statements", pool="writes"
    )
    assert [name for name in FAMILIES if name not in after] == []
    # Every scrape sums the same files: counters only grow from one to the next.
    statements = [total(s, "propintel_db_statements") for s in scrapes]
    assert statements == sorted(statements)
    assert all(total(s, "propintel_db_pool_size", pool="reads") == 2 * POOL_SIZE for s in scrapes)
    # Last, the request-level families (app/http): every one moved, the bad query's error too.
    for family in MOVED_AT_THE_EDGE:
        assert total(after, family) > 0, f"{family} did not move"
    assert total(after, "propintel_graphql_errors") > total(before, "propintel_graphql_errors")


def test_a_worker_process_serves_its_own_metrics(standalone_worker: StandaloneWorker) -> None:
    """`propintel worker` is not one of serve's workers: it serves its own registry on
    PROPINTEL_WORKER_METRICS_PORT, and writes nothing into a multiprocess directory that a
    server would sum (even when the environment names one)."""

    def served() -> Families | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{standalone_worker.port}/metrics", timeout=2)
        except httpx.TransportError:
            return None
        found = parse(response.text)
        # Its periodic lease recovery runs at start.
        ran = total(found, "propintel_jobs", job="jobs.recover-leases", outcome="succeeded")
        return found if ran >= 1 else None

    found: Families | None = eventually(served, timeout=90)
    assert found, "the worker's metrics, with its first job run"
    assert total(found, "propintel_build_info") == 1
    assert total(found, "propintel_db_pool_size", pool="writes") > 0
    assert ("propintel_jobs_total", {"job": "other", "outcome": "dead"}, 0.0) in found[
        "propintel_jobs"
    ]
    assert list(standalone_worker.directory.iterdir()) == []


@pytest.mark.slow
def test_a_killed_workers_live_gauges_leave_the_sum(server: LiveServer, directory: Path) -> None:
    base = server.base
    parent = server.process.pid
    workers = eventually(lambda: (found := worker_pids(parent)) and len(found) == 2 and found)
    assert workers, "two workers"
    with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        before = scrape(http, base)
        statements_before = total(before, "propintel_db_statements")
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)

        def replaced() -> set[int] | None:
            now = worker_pids(parent)
            return now if len(now) == 2 and victim not in now else None

        successors = eventually(replaced, timeout=90)
        assert successors, "uvicorn started a worker in place of the killed one"

        def settled() -> Families | None:
            try:
                found = scrape(http, base)
            except httpx.TransportError:
                return None
            # The new worker's pool is in; the dead one's is not (3x would mean it stayed).
            return (
                found
                if total(found, "propintel_db_pool_size", pool="reads") == 2 * POOL_SIZE
                else None
            )

        eventually(lambda: http.get(f"{base}/readyz").status_code == 200, timeout=60)
        after = eventually(settled, timeout=60)
        assert after, "the killed worker's gauges left the sum"
        for _ in range(3):  # whichever worker answers
            again = scrape(http, base)
            assert total(again, "propintel_db_pool_size", pool="reads") == 2 * POOL_SIZE
    assert not list(directory.glob(f"gauge_live*_{victim}.db"))
    assert list(directory.glob(f"counter_{victim}.db")), "its counters stay"
    # Counters keep the dead worker's share: the total did not go down.
    assert total(after, "propintel_db_statements") >= statements_before
    assert total(after, "propintel_breaker_state", dependency="postgresql", state="CLOSED") == 1
