"""Read after write across processes, on real PostgreSQL and Redis, over the GraphQL endpoint.

Two apps share one Redis namespace, as two processes would (separate L1s, one Redis). Once a
write on one has answered, a read on the other is fresh (the writer waited for the other to
acknowledge the invalidation); and it costs what a miss costs: the write drops the
written entity's entries only (not the other's whole L1), nobody waits out a lease for a value
that will not come, and the value loaded right after the write is stored (no margin refusing
every store for a while after any invalidation). Asserted on the cache's own counters, never on
time (speed is bench/read_after_write.py's).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.cache import Resource
from app.cache.tiered import TieredCache
from app.settings.cache import Ttls
from tests.support.apps import RunningApp, forget_namespace, running_app, running_app_with_redis
from tests.support.credentials import ADMIN, JWT_SECRET
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)
from tests.support.graphql import gql, post
from tests.support.live import live_server
from tests.support.settings import REDIS_URL, new_namespace, redis_cache_settings

READ = """query($id: ID!) { property(id: $id) { id propertyName lastSalePrice
    sales(first: 3) { nodes { price dealingNumber } } } }"""
WRITE = """mutation($id: ID!, $name: String!) {
    updateProperty(id: $id, input: {propertyName: $name}) { id propertyName } }"""
LIST = """{ properties(first: 4, orderBy: LAST_SALE_PRICE_DESC, filter: {postcode: "2044"}) {
    nodes { id } } }"""


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of this module's own: its tests change property names."""
    name = pg_database_name("raw")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


@pytest.fixture
async def two_apps(database: str) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    """A writer and a reader on one Redis namespace of the test's own, both subscribed."""
    settings = redis_cache_settings(database)
    async with running_app_with_redis(settings) as writer, running_app(settings) as reader:
        for running in (writer, reader):
            await asyncio.wait_for(running.state.caching.tiered.subscribed.wait(), 5)
        yield writer, reader


def tiered(app: RunningApp) -> TieredCache:
    cache: TieredCache = app.state.caching.tiered
    return cache


async def properties(app: RunningApp) -> list[str]:
    return [node["id"] for node in (await gql(app.client, LIST)).ok()["properties"]["nodes"]]


async def read(app: RunningApp, property_id: str) -> tuple[dict[str, Any], str]:
    response = await post(app.client, READ, id=property_id)
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["property"], response.headers["x-cache"]


async def write(app: RunningApp, property_id: str, name: str) -> None:
    body = (await post(app.client, WRITE, ADMIN, id=property_id, name=name)).json()
    assert body["data"]["updateProperty"]["propertyName"] == name, body


def applied(writer: RunningApp, reader: RunningApp) -> bool:
    """The reader had applied the writer's last invalidation when the write returned (the
    writer waits for every subscribed process to acknowledge it), and it was on time."""
    acks = tiered(writer).invalidation.acks
    seen = tiered(reader).invalidation.seen
    return bool(seen >= tiered(writer).invalidation.seen and acks.late == 0 < acks.sent)


async def test_the_read_after_a_write_on_another_process_is_fresh_and_a_plain_miss(
    two_apps: tuple[RunningApp, RunningApp],
) -> None:
    writer, reader = two_apps
    written, untouched, *_ = await properties(reader)
    cold = tiered(reader).loads
    await read(reader, written)
    keys = tiered(reader).loads - cold  # what one read of a property loads when nothing is cached
    assert keys >= 1
    await read(reader, untouched)
    for property_id in (written, untouched):
        assert (await read(reader, property_id))[1] == "hit"  # both in the reader's L1
    before, _ = await read(reader, written)
    l1_before = len(tiered(reader).l1)
    loads_before = tiered(reader).loads

    await write(writer, written, "READ AFTER WRITE 1")
    assert applied(writer, reader)

    after, cache = await read(reader, written)
    assert after["propertyName"] == "READ AFTER WRITE 1" != before["propertyName"]
    assert after["sales"] == before["sales"]
    assert cache == "miss"
    # The write dropped what carries the property (its operation, record and sales page) and
    # property lists, not the reader's whole L1: the other property is still a hit.
    assert (await read(reader, untouched))[1] == "hit"
    assert len(tiered(reader).l1) >= l1_before - 3
    # ... and the miss was a plain one: loaded once, no lease wait, stored in both tiers.
    assert tiered(reader).loads - loads_before == keys
    assert tiered(reader).leases.counters.waits == 0
    assert tiered(reader).refusals.l1 == tiered(reader).refusals.l2 == 0
    assert (await read(reader, written))[1] == "hit"

    # What the reader loaded right after the write was stored in L2 too (the response and its
    # entries): a third process answers from there, loading nothing.
    async with running_app(writer.settings) as third:
        await asyncio.wait_for(tiered(third).subscribed.wait(), 5)
        found, cache = await read(third, written)
        assert found == after
        assert cache == "hit"
        assert tiered(third).statistics.counters["l2", Resource.OPERATION].hits == 1
        assert tiered(third).loads == 0


async def test_both_processes_reading_right_after_the_write_share_one_load(
    two_apps: tuple[RunningApp, RunningApp],
) -> None:
    """The writer's client reads its write back while another reads on the other process:
    they miss the same keys together; one loads each key and the other takes its value from
    L2 (the store right after the write is accepted), rather than waiting out its lease."""
    writer, reader = two_apps
    ids = await properties(reader)
    for attempt, property_id in enumerate(ids):
        cold = tiered(writer).loads
        await read(writer, property_id)
        keys = tiered(writer).loads - cold
        await read(reader, property_id)  # from L2
        loads = tiered(writer).loads + tiered(reader).loads
        name = f"READ AFTER WRITE BOTH {attempt}"
        await write(writer, property_id, name)
        assert applied(writer, reader)
        (on_writer, _), (on_reader, _) = await asyncio.gather(
            read(writer, property_id), read(reader, property_id)
        )
        assert on_writer["propertyName"] == on_reader["propertyName"] == name
        # Each key loaded once across the two processes.
        assert tiered(writer).loads + tiered(reader).loads - loads == keys
    for app in (writer, reader):
        counters = tiered(app).leases.counters
        assert counters.timeouts == counters.released == 0
        assert counters.arrived == counters.waits
        assert tiered(app).refusals.l2 == 0


async def test_a_load_that_overlapped_an_invalidation_stores_nothing() -> None:
    """Coherence kept: a value read before a write (its load began before the invalidation)
    is stored in neither tier; a process waiting on that load's lease loads the key itself
    as soon as the lease is released (it does not wait out LEASE_WAIT_S), and reads fresh."""
    namespace = new_namespace()
    caches = [
        TieredCache(ttls=Ttls(), l1_max_entries=100, redis_url=REDIS_URL, namespace=namespace)
        for _ in range(2)
    ]
    holder, waiter = caches
    key = f"raw-{random.random()}"
    source = {"value": "old"}
    reading = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_load(positions: list[int]) -> list[Any]:
        value = source["value"]  # read before the write...
        reading.set()
        await go_on.wait()  # ...and stored after it
        return [value for _ in positions]

    async def load(positions: list[int]) -> list[Any]:
        return [source["value"] for _ in positions]

    def tags(_position: int, _value: Any) -> list[str]:
        return ["property:1"]

    try:
        for cache in caches:
            cache.start()
            await asyncio.wait_for(cache.subscribed.wait(), 5)
        held = asyncio.create_task(holder.fetch_many(Resource.PROPERTY, [key], slow_load, tags))
        await reading.wait()
        waiting = asyncio.create_task(waiter.fetch_many(Resource.PROPERTY, [key], load, tags))
        while waiter.leases.counters.waits == 0:  # noqa: ASYNC110 (the waiter found the lease)
            await asyncio.sleep(0.001)
        source["value"] = "new"  # the write commits, then invalidates
        await waiter.invalidate(tags=["property:1"])
        go_on.set()
        assert await held == ["old"]  # what it read, returned to its own caller only
        assert await waiting == ["new"]
        assert holder.refusals.l2 == 1
        assert waiter.leases.counters.released == 1
        assert waiter.leases.counters.timeouts == 0
        # Neither tier kept "old": both read the fresh value from here on.
        assert await holder.fetch_many(Resource.PROPERTY, [key], load, tags) == ["new"]
        assert await waiter.fetch_many(Resource.PROPERTY, [key], load, tags) == ["new"]
    finally:
        for cache in caches:
            await cache.close()
        await forget_namespace(REDIS_URL, namespace)


@pytest.mark.slow
def test_two_server_processes_the_first_read_after_the_write_is_fresh(database: str) -> None:
    """Two `propintel serve` processes: the first read on the reader, sent as soon as the
    writer has answered, already carries the write, every time (no polling)."""
    env = {
        "DATABASE_URL": database,
        "REDIS_URL": REDIS_URL,
        "PROPINTEL_CACHE_NAMESPACE": new_namespace(),
        "JWT_SECRET": JWT_SECRET,
        "PROPINTEL_INITIAL_LOAD": "none",
        "PROPINTEL_PROFILE": "test",
        "PROPINTEL_CACHE_WARM": "0",
    }
    # A loaded machine (2 cores shared) can take more than the default minute to start two.
    with (
        live_server(env, timeout=180) as writer,
        live_server(env, timeout=180) as reader,
        httpx.Client(timeout=30) as http,
    ):

        def ask(
            base: str, query: str, headers: dict[str, str] | None = None, **variables: Any
        ) -> Any:
            body = http.post(
                f"{base}/graphql", json={"query": query, "variables": variables}, headers=headers
            ).json()
            assert "errors" not in body, body
            return body["data"]

        ids = [node["id"] for node in ask(reader, LIST)["properties"]["nodes"]]
        for attempt in range(10):
            property_id = ids[attempt % len(ids)]
            ask(reader, READ, id=property_id)
            ask(reader, READ, id=property_id)  # in the reader's L1
            name = f"LIVE READ AFTER WRITE {attempt}"
            ask(writer, WRITE, ADMIN, id=property_id, name=name)
            assert ask(reader, READ, id=property_id)["property"]["propertyName"] == name
