"""The two-tier cache over HTTP, on real PostgreSQL and Redis.

Its own database (writes happen here: `load_small`, one locality), and two apps running with
their lifespan on it, sharing one Redis namespace as two processes would (separate L1s, one
Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from app.auth.principal import Role
from app.cache import Resource
from app.cache.entry import Entry
from app.cache.memory import BoundedMemoryCache
from app.cache.tiered import TieredCache
from app.settings.cache import Ttls
from tests.support.apps import (
    AppFactory,
    RunningApp,
    forget_namespace,
    running_app,
    running_app_with_redis,
)
from tests.support.credentials import ADMIN, JWT_SECRET, bearer
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)
from tests.support.documents import PRICE_LIST, PROPERTY, STATS
from tests.support.graphql import gql, post
from tests.support.live import live_server
from tests.support.settings import REDIS_URL, new_namespace, redis_cache_settings, settings_for

RECORD_SALE = """mutation($input: RecordSaleInput!) { recordSale(input: $input) {
    id price contractDate isMarketSale property { id lastSalePrice } } }"""
COHERENCE_BUDGET_S = 0.05  # a write may stay invisible to another process this long


@pytest.fixture(scope="module")
def cache_database() -> Iterator[str]:
    """A PostgreSQL database of this module's own (`load_small`): its tests record sales and
    update properties, which the session's shared databases must not see."""
    name = pg_database_name("cache")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="module")
async def two_apps(cache_database: str) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    """Two apps on `cache_database` started from one configuration, so one Redis namespace
    (a new one, its keys deleted when the first app stops, after the second), as two
    processes would; both subscribed to invalidations before the tests use them."""
    settings = redis_cache_settings(cache_database)
    async with running_app_with_redis(settings) as first, running_app(settings) as second:
        for running in (first, second):
            await asyncio.wait_for(running.state.caching.tiered.subscribed.wait(), 5)
        yield first, second


@pytest.fixture
async def redis_namespace() -> AsyncIterator[str]:
    """A Redis namespace of the test's own on the test Redis, its keys deleted afterwards."""
    namespace = new_namespace()
    yield namespace
    await forget_namespace(REDIS_URL, namespace)


async def some_property(app: RunningApp) -> str:
    found = (await gql(app.client, PRICE_LIST)).ok()
    return str(found["properties"]["nodes"][-1]["id"])


async def seen_within(check: Callable[[], Awaitable[bool]], budget: float) -> float:
    """Seconds until `check` holds (polled), failing past `budget`: the time an invalidation
    takes to reach the other process (pub/sub)."""
    started = time.perf_counter()
    while not await check():
        elapsed = time.perf_counter() - started
        assert elapsed < budget, f"still stale after {elapsed * 1000:.1f} ms"
        await asyncio.sleep(0.001)
    return time.perf_counter() - started


def new_sale(property_id: str, price: int, dealing: str) -> dict[str, Any]:
    return {
        "propertyId": property_id,
        "contractDate": date.today().isoformat(),
        "price": price,
        "dealingNumber": dealing,
    }


async def test_second_read_is_a_hit_with_the_same_answer(
    two_apps: tuple[RunningApp, RunningApp], cache_database: str
) -> None:
    first, _ = two_apps
    miss = await post(first.client, STATS)
    hit = await post(first.client, STATS)
    assert miss.headers["x-cache"] == "miss"
    assert hit.headers["x-cache"] == "hit"
    assert hit.json()["data"] == miss.json()["data"]
    assert hit.json()["extensions"]["sqlStatements"] == 0
    async with running_app(settings_for(cache_database)) as uncached:
        assert (await gql(uncached.client, STATS)).ok() == miss.json()["data"]


async def test_a_sale_recorded_on_one_process_is_seen_by_the_other_at_once(
    two_apps: tuple[RunningApp, RunningApp],
) -> None:
    writer, reader = two_apps
    property_id = await some_property(reader)
    before = (await gql(reader.client, PROPERTY, id=property_id)).ok()
    stats_before = (await gql(reader.client, STATS)).ok()
    list_before = (await gql(reader.client, PRICE_LIST)).ok()
    assert (await post(reader.client, STATS)).headers["x-cache"] == "hit"  # cached on the reader

    top_price = list_before["properties"]["nodes"][0]["lastSalePrice"]
    price = top_price + 1_000_000
    response = await post(
        writer.client, RECORD_SALE, ADMIN, input=new_sale(property_id, price, "AZ123456")
    )
    recorded = response.json()["data"]["recordSale"]
    assert recorded["isMarketSale"] is True
    assert recorded["property"]["lastSalePrice"] == price

    async def reader_sees_it() -> bool:
        found = (await gql(reader.client, PROPERTY, id=property_id)).ok()
        return bool(found["property"]["lastSale"]["price"] == price)

    delay = await seen_within(reader_sees_it, COHERENCE_BUDGET_S)
    print(f"the other process saw the new sale after {delay * 1000:.1f} ms")
    after = (await gql(reader.client, PROPERTY, id=property_id)).ok()
    stats_after = (await gql(reader.client, STATS)).ok()
    list_after = (await gql(reader.client, PRICE_LIST)).ok()
    assert after["property"]["lastSale"]["price"] == price
    assert after["property"]["lastSalePrice"] == price
    assert after["property"]["sales"]["nodes"][0]["dealingNumber"] == "AZ123456"
    assert after != before
    assert (
        stats_after["locality"]["stats"]["salesCount"]
        == stats_before["locality"]["stats"]["salesCount"] + 1
    )
    assert stats_after["locality"]["properties"]["nodes"][0]["id"] == property_id
    assert list_after["properties"]["nodes"][0] == {"id": property_id, "lastSalePrice": price}


async def test_writes_need_the_admin_key_and_valid_input(
    two_apps: tuple[RunningApp, RunningApp],
) -> None:
    app, _ = two_apps
    client = app.client
    property_id = await some_property(app)
    sale = new_sale(property_id, 500_000, "AZ000001")
    for headers, code in (({}, "FORBIDDEN"), (bearer(7, Role.USER), "FORBIDDEN")):
        body = (await post(client, RECORD_SALE, headers, input=sale)).json()
        assert body["errors"][0]["extensions"]["code"] == code
    for headers in ({"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": "x"}):
        response = await post(client, RECORD_SALE, headers, input=sale)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    stats = (await post(client, "{ cacheStats { enabled } }")).json()
    assert stats["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    future = dict(sale, contractDate="2999-01-01")
    body = (await post(client, RECORD_SALE, ADMIN, input=future)).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "contractDate" in body["errors"][0]["message"]
    missing = dict(sale, propertyId="UHJvcGVydHk6OTk5OTk5OTk5")
    body = (await post(client, RECORD_SALE, ADMIN, input=missing)).json()
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await post(client, RECORD_SALE, ADMIN, input=sale)).json()["data"]["recordSale"]
    body = (await post(client, RECORD_SALE, ADMIN, input=sale)).json()
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_update_property_invalidates_and_validates(
    two_apps: tuple[RunningApp, RunningApp],
) -> None:
    writer, reader = two_apps
    property_id = await some_property(reader)
    query = "query($id: ID!) { property(id: $id) { zoning primaryPurpose } }"
    (await gql(reader.client, query, id=property_id)).ok()
    mutation = """mutation($id: ID!, $input: UpdatePropertyInput!) {
        updateProperty(id: $id, input: $input) { id zoning primaryPurpose } }"""
    body = (
        await post(
            writer.client,
            mutation,
            ADMIN,
            id=property_id,
            input={"zoning": "R9", "primaryPurpose": "TEST"},
        )
    ).json()
    assert body["data"]["updateProperty"]["zoning"] == "R9"

    async def reader_sees_it() -> bool:
        found = (await gql(reader.client, query, id=property_id)).ok()
        return bool(found["property"] == {"zoning": "R9", "primaryPurpose": "TEST"})

    await seen_within(reader_sees_it, COHERENCE_BUDGET_S)
    empty = (await post(writer.client, mutation, ADMIN, id=property_id, input={})).json()
    assert empty["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    too_long = (
        await post(writer.client, mutation, ADMIN, id=property_id, input={"zoning": "X" * 40})
    ).json()
    assert too_long["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_hundred_concurrent_misses_load_once(
    two_apps: tuple[RunningApp, RunningApp],
) -> None:
    app, _ = two_apps
    property_id = await some_property(app)
    await app.state.caching.invalidate(tags=[f"property:{property_id.strip()}"], patterns=["*"])
    tiered: TieredCache = app.state.caching.tiered
    before = tiered.loads
    # Different documents (aliases) so the whole-operation cache cannot answer for them.
    queries = [
        f'{{ p{i}: property(id: "{property_id}") {{ id vgPropertyId }} }}' for i in range(100)
    ]
    responses = await asyncio.gather(*(post(app.client, q) for q in queries))
    assert all(r.status_code == 200 and "errors" not in r.json() for r in responses)
    assert tiered.loads - before == 1


async def test_processes_share_one_load_through_the_redis_lease(redis_namespace: str) -> None:
    # A namespace of its own: no recent invalidation there to make the loader's store wait.
    caches = [
        TieredCache(ttls=Ttls(), l1_max_entries=100, redis_url=REDIS_URL, namespace=redis_namespace)
        for _ in range(2)
    ]
    calls = 0

    async def slow_load(positions: list[int]) -> list[Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return [f"value-{p}" for p in positions]

    key = f"lease-{random.random()}"
    try:
        results = await asyncio.gather(
            *(
                cache.fetch_many(Resource.PROPERTY, [key], slow_load, lambda _p, _v: ["lease:test"])
                for cache in caches
                for _ in range(5)
            )
        )
    finally:
        for cache in caches:
            await cache.close()
    assert results == [["value-0"]] * 10
    assert calls == 1


async def test_invalidation_by_pattern_and_statistics(
    two_apps: tuple[RunningApp, RunningApp],
) -> None:
    app, other = two_apps
    property_id = await some_property(app)
    (await gql(app.client, PROPERTY, id=property_id)).ok()
    (await gql(other.client, PROPERTY, id=property_id)).ok()
    mutation = """mutation { invalidateCache(patterns: ["property:*"]) {
        patterns l1Entries l2Entries } }"""
    body = (await post(app.client, mutation, ADMIN)).json()["data"]["invalidateCache"]
    assert body["patterns"] == ["property:*"]
    assert body["l1Entries"] >= 1
    assert body["l2Entries"] >= 1

    async def other_dropped_it() -> bool:
        response = await post(other.client, PROPERTY, id=property_id)
        return bool(response.headers["x-cache"] == "miss")

    await seen_within(other_dropped_it, COHERENCE_BUDGET_S)

    stats = (
        await post(
            app.client,
            """{ cacheStats { enabled tiers { tier available entries evictions hits misses hitRate
                resources { resource hits misses hitRate entries } } } }""",
            ADMIN,
        )
    ).json()["data"]["cacheStats"]
    assert stats["enabled"] is True
    tiers = {tier["tier"]: tier for tier in stats["tiers"]}
    assert set(tiers) == {"l1", "l2"}
    assert tiers["l1"]["hits"] > 0
    assert tiers["l1"]["misses"] > 0
    assert {r["resource"] for r in tiers["l1"]["resources"]} >= {"property", "history", "operation"}


async def test_warm_cache_loads_localities(two_apps: tuple[RunningApp, RunningApp]) -> None:
    app, _ = two_apps
    await app.state.caching.invalidate(patterns=["*"])
    locality_id = (await gql(app.client, STATS)).ok()["locality"]["id"]
    await app.state.caching.invalidate(patterns=["*"])
    body = (
        await post(
            app.client,
            "mutation($ids: [ID!]) { warmCache(localities: $ids) { localities entries } }",
            ADMIN,
            ids=[locality_id],
        )
    ).json()
    assert body["data"]["warmCache"]["localities"] == 1
    assert body["data"]["warmCache"]["entries"] > 3
    tiered: TieredCache = app.state.caching.tiered
    before = tiered.loads
    (
        await gql(
            app.client,
            "query($id: ID!) { node(id: $id) { ... on Locality { name stats { salesCount } } } }",
            id=locality_id,
        )
    ).ok()
    assert tiered.loads == before  # the locality and its statistics were warm


async def test_pubsub_loss_clears_l1_and_reconnects(
    two_apps: tuple[RunningApp, RunningApp],
) -> None:
    app, _ = two_apps
    tiered: TieredCache = app.state.caching.tiered
    (await gql(app.client, STATS)).ok()
    assert len(tiered.l1) > 0
    assert tiered.redis is not None
    clients = await tiered.redis.client_list(_type="pubsub")
    for client in clients:
        await tiered.redis.client_kill_filter(_id=client["id"])
    deadline = time.monotonic() + 5
    while len(tiered.l1) and time.monotonic() < deadline:  # noqa: ASYNC110 (a side effect of the killed connection)
        await asyncio.sleep(0.01)
    assert len(tiered.l1) == 0
    await asyncio.wait_for(tiered.subscribed.wait(), 5)


async def test_zipf_workload_hit_rate(two_apps: tuple[RunningApp, RunningApp]) -> None:
    """A skewed (Zipf, s=1.1) replay over 200 properties: the hot ones come from the cache."""
    app, _ = two_apps
    listed = await gql(
        app.client, '{ properties(first: 100, filter: {postcode: "2044"}) { nodes { id } } }'
    )
    ids = [node["id"] for node in listed.ok()["properties"]["nodes"]]
    await app.state.caching.invalidate(patterns=["*"])
    statistics = app.state.caching.tiered.statistics
    statistics.reset()
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(ids))]
    rng = random.Random(7)
    for property_id in rng.choices(ids, weights, k=600):
        (await gql(app.client, PROPERTY, id=property_id)).ok()
    counters = statistics.counters[("l1", Resource.OPERATION)]
    assert counters.hit_rate is not None
    assert counters.hit_rate >= 0.85


def test_l1_is_bounded_and_least_recently_used_goes_first() -> None:
    dropped: list[str] = []
    cache = BoundedMemoryCache(max_entries=3, on_drop=dropped.append)
    for key in "abc":
        cache.put(key, key.upper(), None)
    assert cache.peek_many(["a"]) == ["A"]  # a is now the most recent
    cache.put("d", "D", None)
    assert dropped == ["b"]
    assert cache.peek_many(["a", "b", "c", "d"]) == ["A", None, "C", "D"]
    assert cache.evictions == 1
    cache.put("e", "E", 0.0001)
    time.sleep(0.001)
    assert cache.peek_many(["e"]) == [None]


def test_xfetch_refreshes_early_only_near_expiry() -> None:
    now = time.time()
    far = Entry("v", expires_at=now + 3600, delta=0.01)
    near = Entry("v", expires_at=now + 0.001, delta=0.5)
    assert not any(far.refresh_early(now) for _ in range(1000))
    assert sum(near.refresh_early(now) for _ in range(1000)) > 900


async def test_embedded_mode_caches_in_l1_without_redis(sqlite_app: AppFactory) -> None:
    async with sqlite_app() as app:
        query = "{ localities(first: 2) { nodes { name stats { salesCount } } } }"
        assert (await post(app.client, query)).headers["x-cache"] == "miss"
        assert (await post(app.client, query)).headers["x-cache"] == "hit"
        stats = (await post(app.client, "{ cacheStats { tiers { tier hits } } }", ADMIN)).json()
        assert [t["tier"] for t in stats["data"]["cacheStats"]["tiers"]] == ["l1"]


def cache_server(url: str, namespace: str) -> contextlib.AbstractContextManager[str]:
    """`propintel serve` in its own process, on `url` and the test Redis under `namespace`."""
    return live_server(
        {
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "PROPINTEL_CACHE_NAMESPACE": namespace,
            "JWT_SECRET": JWT_SECRET,
            "PROPINTEL_INITIAL_LOAD": "none",
            "PROPINTEL_PROFILE": "test",
            "PROPINTEL_CACHE_WARM": "0",
        }
    )


@pytest.mark.slow
def test_two_server_processes_stay_coherent(cache_database: str, redis_namespace: str) -> None:
    """After recordSale on one server process, the other answers with the new last sale,
    statistics and list within the coherence budget; measured over several writes."""
    with (
        cache_server(cache_database, redis_namespace) as writer,
        cache_server(cache_database, redis_namespace) as reader,
        httpx.Client(timeout=10) as http,
    ):

        def ask(base: str, query: str, **variables: Any) -> Any:
            body = http.post(
                f"{base}/graphql", json={"query": query, "variables": variables}
            ).json()
            assert "errors" not in body, body
            return body["data"]

        # Both servers subscribe to invalidations when they start; give them a moment.
        time.sleep(0.3)
        property_id = ask(reader, PRICE_LIST)["properties"]["nodes"][-1]["id"]
        delays = []
        for attempt in range(5):
            ask(reader, PROPERTY, id=property_id)  # cached on the reader
            ask(reader, STATS)
            stats_before = ask(reader, STATS)["locality"]["stats"]["salesCount"]
            price = 90_000_000 + attempt
            sale = new_sale(property_id, price, f"LIVE{os.getpid()}X{attempt}")
            response = http.post(
                f"{writer}/graphql",
                json={"query": RECORD_SALE, "variables": {"input": sale}},
                headers=ADMIN,
            ).json()
            returned = time.perf_counter()
            assert response["data"]["recordSale"]["price"] == price
            # A write returns once every process has applied its invalidation: the reader's
            # very first read is fresh (a count, not a time: the machine's load sets that).
            first = ask(reader, PROPERTY, id=property_id)["property"]["lastSale"]["price"]
            assert first == price, "reader stale after the write returned"
            delays.append(time.perf_counter() - returned)
            assert ask(reader, STATS)["locality"]["stats"]["salesCount"] == stats_before + 1
            assert ask(reader, PRICE_LIST)["properties"]["nodes"][0]["lastSalePrice"] == price
        print(f"reader fresh after the write returned: worst {max(delays) * 1000:.1f} ms")


async def test_an_unreachable_redis_degrades_to_l1_and_the_database(cache_database: str) -> None:
    """Nothing listens on the Redis port: reads still answer (L1 and PostgreSQL), and a write
    still commits and invalidates this process's entries."""
    settings = redis_cache_settings(cache_database, REDIS_URL="redis://127.0.0.1:1/0")
    async with running_app(settings) as app:
        first = await post(app.client, STATS)
        assert first.status_code == 200
        assert "errors" not in first.json()
        assert (await post(app.client, STATS)).headers["x-cache"] == "hit"  # from L1
        property_id = await some_property(app)
        sale = new_sale(property_id, 123_456_789, f"DOWN{os.getpid()}")
        recorded = (await post(app.client, RECORD_SALE, ADMIN, input=sale)).json()
        assert recorded["data"]["recordSale"]["price"] == 123_456_789
        after = (await gql(app.client, PROPERTY, id=property_id)).ok()
        assert after["property"]["lastSale"]["price"] == 123_456_789
