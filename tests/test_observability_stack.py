"""The dashboards and rules against a real Prometheus (Debian's /usr/bin/prometheus) on
loopback, scraping a live `propintel serve --workers 2` and a `propintel worker` the way
docker/prometheus/prometheus.yml does (its scrape jobs and relabelling, its rule files;
every second here) while they answer a little load. Through Prometheus's HTTP API: every
rule loads and evaluates without error, and every dashboard query and every rule's
expression parses and returns data. An alert's expression is empty while it does not fire,
so for alerts the operands it compares must return data instead.

The dashboards are also checked offline: what Grafana's provisioning needs, every metric
family on a panel, every query parsed by promtool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.credentials import ADMIN, BOOTSTRAP_KEY, JWT_SECRET
from tests.support.databases import (
    SMALL_LOCALITY,
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)
from tests.support.live import free_port, live_server
from tests.support.prometheus import (
    Prometheus,
    binary,
    compared_operands,
    config_for,
    dashboards,
    metric_families,
    panel_queries,
    panels,
    rules,
    running_prometheus,
)
from tests.support.settings import REDIS_URL, new_namespace

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
DATA_WITHIN_S = 30.0
"""How long the expressions get to show data once the load is done (a scrape and a rule
evaluation a second: a few seconds in practice)."""


# --- the dashboards, offline -----------------------------------------------------------
def test_dashboards_are_what_grafana_provisions() -> None:
    boards = dashboards()
    assert boards, "no dashboards in docker/grafana/dashboards"
    for board in boards:
        title = board["title"]
        assert board["uid"], title
        assert board["schemaVersion"] >= SCHEMA_VERSION, title
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", title
        assert variables["datasource"]["query"] == "prometheus", title
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), f"{title}: panel ids repeat"
        for panel in panels(board):
            where = f"{title} / {panel['title']}"
            assert panel["datasource"] == DATASOURCE, where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE, where
                assert target["expr"].strip(), where
            grid = panel["gridPos"]
            assert grid["x"] >= 0, where
            assert grid["x"] + grid["w"] <= 24, where


def test_every_metric_family_is_on_a_dashboard() -> None:
    shown = " ".join(query.expr for query in panel_queries())
    missing = {family for family in metric_families() if family not in shown}
    assert not missing, f"families no panel shows: {sorted(missing)}"


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Offline: promtool parses each query, its variables substituted, as a rule's."""
    queries = panel_queries()
    group = [{"record": f"panel_{n}", "expr": q.promql()} for n, q in enumerate(queries)]
    rule_file = tmp_path / "panels.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "panels", "rules": group}]}))
    done = subprocess.run(
        [binary("promtool"), "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(queries)} rules found" in done.stdout


# --- the live stack --------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack_database() -> Iterator[str]:
    """A database of this module's own: its worker runs the jobs it finds there."""
    name = pg_database_name("observability")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


class Worker:
    """`propintel worker` with its metrics port, started at once so that it comes up while
    the server does; `ready()` waits for its metrics port."""

    def __init__(self, process: subprocess.Popen[bytes], address: str, log: Path) -> None:
        self.process = process
        self.address = address
        self.log = log

    def ready(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://{self.address}/metrics", timeout=1).status_code == 200:
                    return self.address
            if time.monotonic() > deadline:
                pytest.fail(f"the worker's metrics port did not answer within {timeout:.0f} s")
            time.sleep(0.1)


@contextlib.contextmanager
def worker_process(env: Mapping[str, str], log: Path) -> Iterator[Worker]:
    """Its output goes to `log` (a pipe nobody reads could fill and stall it)."""
    inherited = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    port = free_port()
    command = [sys.executable, "-m", "app.cli", "worker", "--concurrency", "4"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--log-level", "warning"],
            env=inherited | dict(env) | {"PROPINTEL_WORKER_METRICS_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Worker(process, f"127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(timeout=30)


LOCALITIES = "query Localities($first: Int) { localities(first: $first) { nodes { name stats { salesCount } } } }"
PROPERTIES = """query Properties($first: Int, $locality: String) {
  properties(first: $first, filter: { localityName: $locality }) { nodes { id address } } }"""
PROPERTY = "query Property($id: ID!) { property(id: $id) { id address } }"
RECORD_SALE = """mutation RecordSale($input: RecordSaleInput!) {
  recordSale(input: $input) { id price } }"""


async def send_load(base: str) -> dict[str, int]:
    """A few hundred operations, 8 at a time: list queries that hit the cache after their
    first answer, entity reads, an operation that fails and one refused before it runs, and
    recordSale (which enqueues a `sales.recorded` job for the worker). What each answered."""
    seen: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def post(
            query: str, headers: Mapping[str, str] | None = None, **variables: Any
        ) -> dict[str, Any]:
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            body: dict[str, Any] = response.json()
            kind = "errors" if body.get("errors") else "ok"
            seen[kind] = seen.get(kind, 0) + 1
            return body

        found = await post(PROPERTIES, first=20, locality=SMALL_LOCALITY)
        ids = [node["id"] for node in found["data"]["properties"]["nodes"]]
        assert ids, found
        slots = asyncio.Semaphore(8)

        async def one(n: int) -> None:
            async with slots:
                if n % 3 == 0:
                    await post(LOCALITIES, first=1 + n % 5)
                elif n % 3 == 1:
                    await post(PROPERTIES, first=1 + n % 7, locality=SMALL_LOCALITY)
                else:
                    await post(PROPERTY, id=ids[n % len(ids)])

        await asyncio.gather(*(one(n) for n in range(300)))
        await post(PROPERTY, id="not-an-id")  # an error in the response
        await post("{ localities(first: ")  # refused: not a document
        sale = {
            "propertyId": ids[0],
            "contractDate": date.today().isoformat(),
            "price": 1_234_000,
            "dealingNumber": f"OB{int(time.time() * 1000) % 10**8}",
        }
        recorded = await post(RECORD_SALE, ADMIN, input=sale)
        assert recorded.get("data", {}).get("recordSale"), recorded
    return seen


def query_checks() -> list[tuple[str, str]]:
    """(where, PromQL) of everything that must return data: each panel query, each
    recording rule's expression, and the operands each alert compares."""
    checks = [(query.where, query.promql()) for query in panel_queries()]
    for rule in rules():
        if rule.alert:
            checks += [
                (f"alert {rule.name}: {part}", part) for part in compared_operands(rule.expr)
            ]
        else:
            checks.append((f"record {rule.name}", rule.expr))
    return checks


def without_data(prometheus: Prometheus, checks: list[tuple[str, str]]) -> dict[str, str]:
    """The checks whose query fails or returns nothing, with what Prometheus said."""
    failing = {}
    for where, expr in checks:
        answer = prometheus.query(expr)
        if answer.get("status") != "success":
            failing[where] = f"{answer.get('errorType')}: {answer.get('error')} in {expr}"
        elif not answer["data"]["result"]:
            failing[where] = f"no data: {expr}"
    return failing


@pytest.mark.slow
def test_every_panel_and_rule_returns_data_from_a_live_server(
    stack_database: str, tmp_path: Path
) -> None:
    binary("prometheus")
    env = {
        "DATABASE_URL": stack_database,
        "REDIS_URL": REDIS_URL,
        "PROPINTEL_CACHE_NAMESPACE": new_namespace("obs"),
        "PROPINTEL_CACHE_WARM": "0",
        "PROPINTEL_PROFILE": "test",
        "PROPINTEL_INITIAL_LOAD": "none",
        "JWT_SECRET": JWT_SECRET,
        "ADMIN_API_KEY": BOOTSTRAP_KEY,
        "PROPINTEL_WORKER": "false",  # jobs run in the worker process, as in compose
        "PROPINTEL_WORKER_POLL_S": "0.2",
        # Limits on (their decisions are a panel), far above this load.
        "PROPINTEL_RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_ANONYMOUS": "100000/minute",
        "RATE_LIMIT_ADMIN": "100000/minute",
    }
    checks = query_checks()
    with (
        worker_process(env, tmp_path / "worker.log") as worker,
        # 120 s: on a busy machine uvicorn may restart a worker slow to answer its first
        # health ping (5 s) before the server is ready.
        live_server(env, args=["--workers", "2"], timeout=120) as base,
        running_prometheus(
            config_for(
                {"propintel-api": base.removeprefix("http://"), "propintel-worker": worker.ready()}
            ),
            tmp_path,
        ) as prometheus,
    ):
        # Scraped before the load too, so that rates see it (discovery hands Prometheus its
        # targets a few seconds after start).
        deadline = time.monotonic() + DATA_WITHIN_S
        while len(prometheus.query("up == 1")["data"]["result"]) < 2:
            assert time.monotonic() < deadline, prometheus.targets()
            time.sleep(0.2)
        seen = asyncio.run(send_load(base))
        assert seen["ok"] >= 300, seen
        assert seen["errors"] == 2, seen

        deadline = time.monotonic() + DATA_WITHIN_S
        while (failing := without_data(prometheus, checks)) and time.monotonic() < deadline:
            time.sleep(1)
        assert not failing, "\n".join(f"{where}: {why}" for where, why in failing.items())

        targets = {t["labels"]["job"]: t["health"] for t in prometheus.targets()}
        assert targets == {"propintel-api": "up", "propintel-worker": "up"}, targets
        groups = prometheus.rule_groups()
        loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
        assert set(loaded) == {rule.name for rule in rules()}
        unhealthy = {name: r.get("lastError") for name, r in loaded.items() if r["health"] != "ok"}
        assert not unhealthy, unhealthy

        # The job families' `job` label arrives as `kind` (prometheus.yml's relabelling), and
        # the worker's run of recordSale's job shows.
        def succeeded() -> set[str]:
            found = prometheus.query('propintel_jobs_total{outcome="succeeded"} > 0')
            return {series["metric"].get("kind", "") for series in found["data"]["result"]}

        deadline = time.monotonic() + DATA_WITHIN_S
        while "sales.recorded" not in succeeded() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "sales.recorded" in succeeded()
        assert not prometheus.query("propintel_jobs_total{exported_job!=''}")["data"]["result"]
