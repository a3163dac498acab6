"""The two-tier cache over HTTP, on real PostgreSQL and Redis.

Its own database (writes happen here) with one locality, its own Redis namespace, and two
apps sharing them as two processes would (separate L1s, one Redis).
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
from starlette.applications import Starlette

from app.asgi import create_app
from app.auth.principal import Role
from app.cache import Resource
from app.cache.entry import Entry
from app.cache.memory import BoundedMemoryCache
from app.cache.tiered import TieredCache
from app.settings import Settings
from app.settings.cache import Ttls
from tests.support.credentials import ADMIN, JWT_SECRET, bearer
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.live import live_server
from tests.support.settings import DATA_DIR, settings_for

REDIS_URL = os.environ.get("PROPINTEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOCALITY = "TEMPE"

PROPERTY = """query($id: ID!) { property(id: $id) { id lastSalePrice lastSaleDate
    lastSale { price contractDate dealingNumber } sales(first: 3) { nodes { price dealingNumber } } } }"""
STATS = """{ locality(name: "TEMPE", postcode: "2044") { id stats { salesCount medianPrice }
    properties(first: 5, orderBy: LAST_SALE_DATE_DESC) { nodes { id lastSaleDate } } } }"""
PRICE_LIST = """{ properties(first: 3, orderBy: LAST_SALE_PRICE_DESC, filter: {postcode: "2044"}) {
    nodes { id lastSalePrice } } }"""
RECORD_SALE = """mutation($input: RecordSaleInput!) { recordSale(input: $input) {
    id price contractDate isMarketSale property { id lastSalePrice } } }"""


@pytest.fixture(scope="module")
def cache_database() -> Iterator[str]:
    from app.cli import load_sales, sale_files
    from db.migrate import upgrade

    name = f"propintel_cache_{os.getpid()}"
    url = create_pg_database(name)
    upgrade(Settings(DATABASE_URL=url).database_url)
    asyncio.run(
        load_sales(
            settings_for(url),
            sale_files([DATA_DIR], years={2023, 2024}),
            localities=frozenset({LOCALITY}),
            show_progress=False,
        )
    )
    yield url
    drop_pg_database(name)


def cache_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "PROPINTEL_CACHE_ENABLED": True,
        "REDIS_URL": REDIS_URL,
        "PROPINTEL_CACHE_NAMESPACE": f"test{os.getpid()}",
        "PROPINTEL_CACHE_WARM": 0,
        **overrides,
    }
    return settings_for(url, **values)


async def started(app: Starlette) -> Starlette:
    await app.state.caching.start()
    await asyncio.wait_for(app.state.caching.tiered.subscribed.wait(), 5)
    return app


@pytest.fixture(scope="module")
async def two_apps(cache_database: str) -> AsyncIterator[tuple[Starlette, Starlette]]:
    first = await started(create_app(cache_settings(cache_database)))
    second = await started(create_app(cache_settings(cache_database)))
    await first.state.caching.invalidate(patterns=["*"])
    yield first, second
    for app in (first, second):
        await app.state.caching.close()
        await app.state.db.dispose()


async def post(
    app: Starlette, query: str, headers: dict[str, str] | None = None, **variables: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://propintel.test") as client:
        return await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers or {}
        )


async def data(app: Starlette, query: str, **variables: Any) -> Any:
    response = await post(app, query, **variables)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def some_property(app: Starlette) -> str:
    found = await data(app, PRICE_LIST)
    return str(found["properties"]["nodes"][-1]["id"])


COHERENCE_BUDGET_S = 0.05  # a write may stay invisible to another process this long


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
    two_apps: tuple[Starlette, Starlette], cache_database: str
) -> None:
    first, _ = two_apps
    miss = await post(first, STATS)
    hit = await post(first, STATS)
    assert miss.headers["x-cache"] == "miss"
    assert hit.headers["x-cache"] == "hit"
    assert hit.json()["data"] == miss.json()["data"]
    assert hit.json()["extensions"]["sqlStatements"] == 0
    uncached = create_app(settings_for(cache_database))
    try:
        assert (await data(uncached, STATS)) == miss.json()["data"]
    finally:
        await uncached.state.db.dispose()


async def test_a_sale_recorded_on_one_process_is_seen_by_the_other_at_once(
    two_apps: tuple[Starlette, Starlette],
) -> None:
    writer, reader = two_apps
    property_id = await some_property(reader)
    before = await data(reader, PROPERTY, id=property_id)
    stats_before = await data(reader, STATS)
    list_before = await data(reader, PRICE_LIST)
    assert (await post(reader, STATS)).headers["x-cache"] == "hit"  # cached on the reader

    top_price = list_before["properties"]["nodes"][0]["lastSalePrice"]
    price = top_price + 1_000_000
    response = await post(
        writer, RECORD_SALE, ADMIN, input=new_sale(property_id, price, "AZ123456")
    )
    recorded = response.json()["data"]["recordSale"]
    assert recorded["isMarketSale"] is True
    assert recorded["property"]["lastSalePrice"] == price

    async def reader_sees_it() -> bool:
        found = await data(reader, PROPERTY, id=property_id)
        return bool(found["property"]["lastSale"]["price"] == price)

    delay = await seen_within(reader_sees_it, COHERENCE_BUDGET_S)
    print(f"the other process saw the new sale after {delay * 1000:.1f} ms")
    after = await data(reader, PROPERTY, id=property_id)
    stats_after = await data(reader, STATS)
    list_after = await data(reader, PRICE_LIST)
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
    two_apps: tuple[Starlette, Starlette],
) -> None:
    app, _ = two_apps
    property_id = await some_property(app)
    sale = new_sale(property_id, 500_000, "AZ000001")
    for headers, code in (({}, "FORBIDDEN"), (bearer(7, Role.USER), "FORBIDDEN")):
        body = (await post(app, RECORD_SALE, headers, input=sale)).json()
        assert body["errors"][0]["extensions"]["code"] == code
    for headers in ({"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": "x"}):
        response = await post(app, RECORD_SALE, headers, input=sale)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    stats = (await post(app, "{ cacheStats { enabled } }")).json()
    assert stats["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    future = dict(sale, contractDate="2999-01-01")
    body = (await post(app, RECORD_SALE, ADMIN, input=future)).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "contractDate" in body["errors"][0]["message"]
    missing = dict(sale, propertyId="UHJvcGVydHk6OTk5OTk5OTk5")
    body = (await post(app, RECORD_SALE, ADMIN, input=missing)).json()
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await post(app, RECORD_SALE, ADMIN, input=sale)).json()["data"]["recordSale"]
    body = (await post(app, RECORD_SALE, ADMIN, input=sale)).json()
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_update_property_invalidates_and_validates(
    two_apps: tuple[Starlette, Starlette],
) -> None:
    writer, reader = two_apps
    property_id = await some_property(reader)
    query = "query($id: ID!) { property(id: $id) { zoning primaryPurpose } }"
    await data(reader, query, id=property_id)
    mutation = """mutation($id: ID!, $input: UpdatePropertyInput!) {
        updateProperty(id: $id, input: $input) { id zoning primaryPurpose } }"""
    body = (
        await post(
            writer,
            mutation,
            ADMIN,
            id=property_id,
            input={"zoning": "R9", "primaryPurpose": "TEST"},
        )
    ).json()
    assert body["data"]["updateProperty"]["zoning"] == "R9"

    async def reader_sees_it() -> bool:
        found = await data(reader, query, id=property_id)
        return bool(found["property"] == {"zoning": "R9", "primaryPurpose": "TEST"})

    await seen_within(reader_sees_it, COHERENCE_BUDGET_S)
    empty = (await post(writer, mutation, ADMIN, id=property_id, input={})).json()
    assert empty["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    too_long = (
        await post(writer, mutation, ADMIN, id=property_id, input={"zoning": "X" * 40})
    ).json()
    assert too_long["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_hundred_concurrent_misses_load_once(two_apps: tuple[Starlette, Starlette]) -> None:
    app, _ = two_apps
    property_id = await some_property(app)
    await app.state.caching.invalidate(tags=[f"property:{property_id.strip()}"], patterns=["*"])
    tiered: TieredCache = app.state.caching.tiered
    before = tiered.loads
    # Different documents (aliases) so the whole-operation cache cannot answer for them.
    queries = [
        f'{{ p{i}: property(id: "{property_id}") {{ id vgPropertyId }} }}' for i in range(100)
    ]
    responses = await asyncio.gather(*(post(app, q) for q in queries))
    assert all(r.status_code == 200 and "errors" not in r.json() for r in responses)
    assert tiered.loads - before == 1


async def test_processes_share_one_load_through_the_redis_lease(cache_database: str) -> None:
    # A namespace of its own: no recent invalidation there to make the loader's store wait.
    namespace = f"lease{os.getpid()}"
    caches = [
        TieredCache(ttls=Ttls(), l1_max_entries=100, redis_url=REDIS_URL, namespace=namespace)
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
    two_apps: tuple[Starlette, Starlette],
) -> None:
    app, other = two_apps
    property_id = await some_property(app)
    await data(app, PROPERTY, id=property_id)
    await data(other, PROPERTY, id=property_id)
    mutation = """mutation { invalidateCache(patterns: ["property:*"]) {
        patterns l1Entries l2Entries } }"""
    body = (await post(app, mutation, ADMIN)).json()["data"]["invalidateCache"]
    assert body["patterns"] == ["property:*"]
    assert body["l1Entries"] >= 1
    assert body["l2Entries"] >= 1

    async def other_dropped_it() -> bool:
        return bool((await post(other, PROPERTY, id=property_id)).headers["x-cache"] == "miss")

    await seen_within(other_dropped_it, COHERENCE_BUDGET_S)

    stats = (
        await post(
            app,
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


async def test_warm_cache_loads_localities(two_apps: tuple[Starlette, Starlette]) -> None:
    app, _ = two_apps
    await app.state.caching.invalidate(patterns=["*"])
    locality_id = (await data(app, STATS))["locality"]["id"]
    await app.state.caching.invalidate(patterns=["*"])
    body = (
        await post(
            app,
            "mutation($ids: [ID!]) { warmCache(localities: $ids) { localities entries } }",
            ADMIN,
            ids=[locality_id],
        )
    ).json()
    assert body["data"]["warmCache"]["localities"] == 1
    assert body["data"]["warmCache"]["entries"] > 3
    tiered: TieredCache = app.state.caching.tiered
    before = tiered.loads
    await data(
        app,
        "query($id: ID!) { node(id: $id) { ... on Locality { name stats { salesCount } } } }",
        id=locality_id,
    )
    assert tiered.loads == before  # the locality and its statistics were warm


async def test_pubsub_loss_clears_l1_and_reconnects(two_apps: tuple[Starlette, Starlette]) -> None:
    app, _ = two_apps
    tiered: TieredCache = app.state.caching.tiered
    await data(app, STATS)
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


async def test_zipf_workload_hit_rate(two_apps: tuple[Starlette, Starlette]) -> None:
    """A skewed (Zipf, s=1.1) replay over 200 properties: the hot ones come from the cache."""
    app, _ = two_apps
    ids = [
        node["id"]
        for node in (
            await data(
                app, '{ properties(first: 100, filter: {postcode: "2044"}) { nodes { id } } }'
            )
        )["properties"]["nodes"]
    ]
    await app.state.caching.invalidate(patterns=["*"])
    statistics = app.state.caching.tiered.statistics
    statistics.reset()
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(ids))]
    rng = random.Random(7)
    for property_id in rng.choices(ids, weights, k=600):
        await data(app, PROPERTY, id=property_id)
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


async def test_embedded_mode_caches_in_l1_without_redis(sqlite_url: str) -> None:
    app = create_app(
        settings_for(
            sqlite_url,
            PROPINTEL_CACHE_ENABLED=True,
            PROPINTEL_CACHE_WARM=0,
        )
    )
    try:
        await app.state.caching.start()
        query = "{ localities(first: 2) { nodes { name stats { salesCount } } } }"
        assert (await post(app, query)).headers["x-cache"] == "miss"
        assert (await post(app, query)).headers["x-cache"] == "hit"
        stats = (await post(app, "{ cacheStats { tiers { tier hits } } }", ADMIN)).json()
        assert [t["tier"] for t in stats["data"]["cacheStats"]["tiers"]] == ["l1"]
    finally:
        await app.state.caching.close()
        await app.state.db.dispose()


def cache_server(url: str) -> contextlib.AbstractContextManager[str]:
    """`propintel serve` in its own process, on the cache database and the test Redis."""
    settings = cache_settings(url)
    return live_server(
        {
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "PROPINTEL_CACHE_NAMESPACE": settings.cache_namespace,
            "JWT_SECRET": JWT_SECRET,
            "PROPINTEL_INITIAL_LOAD": "none",
            "PROPINTEL_PROFILE": "test",
            "PROPINTEL_CACHE_WARM": "0",
        }
    )


def test_two_server_processes_stay_coherent(cache_database: str) -> None:
    """After recordSale on one server process, the other answers with the new last sale,
    statistics and list within the coherence budget; measured over several writes."""
    with (
        cache_server(cache_database) as writer,
        cache_server(cache_database) as reader,
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
            while ask(reader, PROPERTY, id=property_id)["property"]["lastSale"]["price"] != price:
                assert time.perf_counter() - returned < COHERENCE_BUDGET_S, "reader still stale"
            delays.append(time.perf_counter() - returned)
            assert ask(reader, STATS)["locality"]["stats"]["salesCount"] == stats_before + 1
            assert ask(reader, PRICE_LIST)["properties"]["nodes"][0]["lastSalePrice"] == price
        print(f"reader fresh after the write returned: worst {max(delays) * 1000:.1f} ms")
        assert max(delays) < COHERENCE_BUDGET_S


async def test_an_unreachable_redis_degrades_to_l1_and_the_database(cache_database: str) -> None:
    """Nothing listens on the Redis port: reads still answer (L1 and PostgreSQL), and a write
    still commits and invalidates this process's entries."""
    app = create_app(cache_settings(cache_database, REDIS_URL="redis://127.0.0.1:1/0"))
    try:
        await app.state.caching.start()
        first = await post(app, STATS)
        assert first.status_code == 200
        assert "errors" not in first.json()
        assert (await post(app, STATS)).headers["x-cache"] == "hit"  # from L1
        property_id = await some_property(app)
        sale = new_sale(property_id, 123_456_789, f"DOWN{os.getpid()}")
        recorded = (await post(app, RECORD_SALE, ADMIN, input=sale)).json()
        assert recorded["data"]["recordSale"]["price"] == 123_456_789
        after = await data(app, PROPERTY, id=property_id)
        assert after["property"]["lastSale"]["price"] == 123_456_789
    finally:
        await app.state.caching.close()
        await app.state.db.dispose()
