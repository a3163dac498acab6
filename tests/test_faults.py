"""Fault tests with the real services behind a TCP proxy the test cuts and restores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.apps import RunningApp, running_app_with_redis
from tests.support.credentials import ADMIN
from tests.support.documents import PRICE_LIST, PROPERTY, STATS
from tests.support.graphql import codes, post
from tests.support.proxy import Proxy, app_behind_proxy
from tests.support.settings import l1_cache_settings, redis_cache_settings

SHORT_TTLS = {
    f"PROPINTEL_CACHE_TTL_{kind}_S": 0.3
    for kind in ("LIST", "PROPERTY", "HISTORY", "STATS", "STATIC", "OPERATION")
}


@pytest.fixture(params=["fresh", "expired"])
async def database_behind_proxy(
    request: pytest.FixtureRequest, small_pg_url: str
) -> AsyncIterator[tuple[RunningApp, Proxy]]:
    """The app reaches PostgreSQL through a proxy the test can cut. `expired`: TTLs so short
    that every cached answer is past its TTL by the time the database is cut."""
    ttls = SHORT_TTLS if request.param == "expired" else {}
    async with app_behind_proxy(l1_cache_settings(small_pg_url, **ttls)) as (app, proxy):
        app.state.ttl_case = request.param
        yield app, proxy


async def test_database_cut_cached_answers_stay_uncached_fail_fast_then_recover(
    database_behind_proxy: tuple[RunningApp, Proxy],
) -> None:
    app, proxy = database_behind_proxy
    cached = (await post(app.client, STATS)).json()
    assert "errors" not in cached
    property_id = (await post(app.client, PRICE_LIST)).json()["data"]["properties"]["nodes"][0][
        "id"
    ]

    other_fields = "query($id: ID!) { property(id: $id) { id lastSalePrice } }"
    assert "errors" not in (await post(app.client, other_fields, id=property_id)).json()

    await proxy.cut()
    if app.state.ttl_case == "expired":
        await asyncio.sleep(0.4)  # everything cached is now past its TTL
    # From the cache, no database needed (past its TTL: served stale, and marked so).
    served = await post(app.client, STATS)
    assert served.json()["data"] == cached["data"]
    stale = served.json().get("extensions", {}).get("stale")
    if app.state.ttl_case == "expired":
        assert served.headers["x-cache"] == "stale"
        assert stale["secondsPastTtl"] >= 0
    else:
        assert stale is None
    slowest = 0.0
    for _ in range(5):
        started = time.perf_counter()
        body = (await post(app.client, PROPERTY, id=property_id)).json()
        slowest = max(slowest, time.perf_counter() - started)
        assert codes(body) == ["SERVICE_UNAVAILABLE"]
        assert body["errors"][0]["extensions"]["retryAfterSeconds"] > 0
    assert slowest < 0.25, f"an uncached request took {slowest * 1000:.0f} ms"

    status_query = """{ resilienceStatus { name retries timeouts
        breaker { state calls failureRate slowCallRate rejected }
        bulkhead { active waiting maxConcurrent rejected } } }"""
    assert codes((await post(app.client, status_query)).json()) == ["FORBIDDEN"]
    status = (await post(app.client, status_query, ADMIN)).json()["data"]["resilienceStatus"]
    database = next(d for d in status if d["name"] == "postgresql")
    assert database["breaker"]["failureRate"] > 0 or database["breaker"]["state"] != "CLOSED"
    assert database["retries"] >= 1  # connection refused is transient: retried once
    assert database["bulkhead"]["active"] == 0

    await proxy.restore()
    started = time.perf_counter()
    while True:
        body = (await post(app.client, PROPERTY, id=property_id)).json()
        if "errors" not in body:
            break
        assert time.perf_counter() - started < 5, "no recovery within 5 s"
        await asyncio.sleep(0.05)
    assert body["data"]["property"]["id"] == property_id


async def test_the_request_deadline_bounds_every_database_call(small_pg_url: str) -> None:
    """With a deadline shorter than any round trip, an uncached query is refused as
    SERVICE_UNAVAILABLE (through the JSON front door and through Strawberry's view)."""
    settings = redis_cache_settings(small_pg_url, PROPINTEL_REQUEST_TIMEOUT_S=0.000001)
    async with running_app_with_redis(settings) as app:
        for accept in ("application/json", "application/graphql-response+json"):
            response = await post(app.client, PRICE_LIST, {"accept": accept})
            assert codes(response.json()) == ["SERVICE_UNAVAILABLE"], accept
