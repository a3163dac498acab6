"""Degradation under steady load (50 requests/s, the bench's Q1/Q2 documents) while a
dependency goes away for 10 s and comes back, with the real services: a Redis server of the
test's own (stopped and restarted) and PostgreSQL behind a TCP proxy (cut and restored, or
slowed down).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.apps import RunningApp, running_app
from tests.support.documents import PRICE_LIST, PROPERTY, STATS
from tests.support.graphql import post
from tests.support.live import free_port
from tests.support.proxy import Proxy, app_behind_proxy
from tests.support.settings import l1_cache_settings, redis_cache_settings, settings_for

RATE = 50  # requests per second
OUTAGE_S = 10.0


@dataclass(frozen=True, slots=True)
class Outcome:
    at: float
    seconds: float
    codes: tuple[str, ...]
    stale: bool


async def steady_load(
    app: RunningApp, requests: list[tuple[str, dict[str, Any]]], seconds: float
) -> list[Outcome]:
    """`RATE` requests a second for `seconds`, cycling through `requests`, over one client
    of its own (a client per request would cost the shared event loop more than the requests
    do)."""
    outcomes: list[Outcome] = []
    async with app.new_client() as client:
        started = time.perf_counter()

        async def one(query: str, variables: dict[str, Any]) -> None:
            sent = time.perf_counter()
            response = await client.post("/graphql", json={"query": query, "variables": variables})
            body = response.json()
            outcomes.append(
                Outcome(
                    at=sent - started,
                    seconds=time.perf_counter() - sent,
                    codes=tuple(e["extensions"]["code"] for e in body.get("errors", [])),
                    stale=response.headers.get("x-cache") == "stale",
                )
            )

        tasks = []
        for index in range(int(seconds * RATE)):
            query, variables = requests[index % len(requests)]
            tasks.append(asyncio.create_task(one(query, variables)))
            await asyncio.sleep(max(0.0, started + (index + 1) / RATE - time.perf_counter()))
        await asyncio.gather(*tasks)
    return outcomes


@contextlib.contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    executable = shutil.which("redis-server")
    assert executable is not None, "redis-server is not installed"
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


async def wait_for_port(port: int, within: float = 5) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@pytest.fixture
async def hot_requests(small_pg_url: str) -> list[tuple[str, dict[str, Any]]]:
    async with running_app(settings_for(small_pg_url)) as app:
        nodes = (await post(app.client, PRICE_LIST)).json()["data"]["properties"]["nodes"]
    return [(PROPERTY, {"id": node["id"]}) for node in nodes] + [(STATS, {})]


async def test_redis_stopped_for_ten_seconds_fails_no_request(
    small_pg_url: str,
    hot_requests: list[tuple[str, dict[str, Any]]],
) -> None:
    port = free_port()
    settings = redis_cache_settings(small_pg_url, REDIS_URL=f"redis://127.0.0.1:{port}/0")
    with redis_server(port) as first_server:
        await wait_for_port(port)
        async with running_app(settings) as app:
            tiered = app.state.caching.tiered
            await asyncio.wait_for(tiered.subscribed.wait(), 5)
            load = asyncio.create_task(steady_load(app, hot_requests, OUTAGE_S + 4))
            await asyncio.sleep(1)
            first_server.terminate()
            first_server.wait(timeout=10)
            await asyncio.sleep(OUTAGE_S)
            with redis_server(port):
                outcomes = await load
                await asyncio.wait_for(tiered.subscribed.wait(), 5)  # reconnected by itself
                reads_before = tiered.statistics.counters["l2", _operation()].misses
                await post(app.client, STATS, x=1)  # a new document: misses L1, asks Redis
                assert tiered.statistics.counters["l2", _operation()].misses > reads_before
    failed = [o for o in outcomes if o.codes]
    assert len(outcomes) >= (OUTAGE_S + 4) * RATE * 0.9
    assert failed == []


def _operation() -> Any:
    from app.cache import Resource

    return Resource.OPERATION


@pytest.fixture
async def database_behind_proxy(small_pg_url: str) -> AsyncIterator[tuple[RunningApp, Proxy]]:
    async with app_behind_proxy(l1_cache_settings(small_pg_url)) as behind:
        yield behind


async def test_database_cut_for_ten_seconds_under_load(
    database_behind_proxy: tuple[RunningApp, Proxy],
    hot_requests: list[tuple[str, dict[str, Any]]],
) -> None:
    """Cached queries: no failure. Uncached queries (each a new document): each fails in
    under 250 ms with SERVICE_UNAVAILABLE. Full service within 5 s of the database's return."""
    app, proxy = database_behind_proxy
    for query, variables in hot_requests:  # cached before the cut
        assert "errors" not in (await post(app.client, query, **variables)).json()
    # As the app's lifespan does after startup (app/asgi.py); hot_requests' app, stopped
    # since, let the collector see the heap again.
    gc.freeze()
    # Pages of sales of sizes never asked before: nothing cached can answer them.
    uncached = [
        (
            "query($id: ID!, $n: Int!) { property(id: $id) { sales(first: $n) { nodes { id } } } }",
            {"id": variables["id"], "n": 11 + i % 90},
        )
        for i, (_, variables) in enumerate(hot_requests[:-1] * 90)
    ]

    load = asyncio.create_task(steady_load(app, hot_requests, OUTAGE_S + 2))
    await asyncio.sleep(1)
    await proxy.cut()
    misses = await steady_load(app, uncached, OUTAGE_S - 1)
    await proxy.restore()
    restored = time.perf_counter()
    outcomes = await load

    assert [o for o in outcomes if o.codes] == []
    assert misses
    assert all(o.codes == ("SERVICE_UNAVAILABLE",) for o in misses)
    slowest = sorted(misses, key=lambda o: o.seconds)[-3:]
    print(
        "slowest uncached failures (at s, took ms):",
        [(round(o.at, 2), round(o.seconds * 1000)) for o in slowest],
    )
    assert max(o.seconds for o in misses) < 0.25
    while "errors" in (await post(app.client, uncached[0][0], **uncached[0][1])).json():
        assert time.perf_counter() - restored < 5, "not back within 5 s"
        await asyncio.sleep(0.05)


async def test_a_slow_database_trips_the_slow_call_threshold(small_pg_url: str) -> None:
    overrides = {"breaker": {"slow_call_duration_s": 0.05, "minimum_calls": 4, "window_size": 4}}
    settings = settings_for(small_pg_url, PROPINTEL_RESILIENCE_POSTGRESQL=overrides)
    async with app_behind_proxy(settings) as (app, proxy):
        assert "errors" not in (await post(app.client, STATS)).json()
        proxy.delay_s = 0.08
        breaker = app.state.dependencies["postgresql"].breaker
        for _ in range(4):
            await post(app.client, STATS)
        assert breaker.state.value == "OPEN"
        started = time.perf_counter()
        body = (await post(app.client, STATS)).json()
        assert [e["extensions"]["code"] for e in body["errors"]] == ["SERVICE_UNAVAILABLE"]
        assert time.perf_counter() - started < 0.05  # refused at once, not slowly
