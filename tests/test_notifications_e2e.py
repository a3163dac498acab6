"""End to end (issue 14): a user saves a search, watches a property, registers a webhook
endpoint and subscribes; a `recordSale` and a `load-data` of a raw weekly VG zip each produce
alerts, deliveries that `standardwebhooks` verifies (tests/support/receiver.py) and
subscription messages, each exactly once. Then the faults the worker must survive at this
level: killed with SIGKILL in the middle of a delivery, and Redis unreachable.

Everything runs for real: PostgreSQL databases of this module's own, uvicorn serving the app
(websockets), the in-process worker or `propintel worker` processes, the CLI's `load-data`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.asgi import create_app
from app.settings import Settings
from db import tables
from db.engine import Database
from db.ingest.readers import SourceRow, read_sales
from schema.ids import from_global_id, to_global_id
from tests.support.accounts import bearer_token, signed_in
from tests.support.credentials import ADMIN
from tests.support.graphql import gql
from tests.support.jobs import empty_pg_database, wait_for
from tests.support.receiver import Receiver, Reply
from tests.support.settings import DATA_DIR, REDIS_URL, redis_cache_settings, settings_for
from tests.support.ws import GraphQLWS, uvicorn_serving

RAW = DATA_DIR / "raw"
FIRST_WEEK = RAW / "20240101.zip"
SECOND_WEEK = RAW / "20240108.zip"
EVERY_EVENT = ["SALE_MATCHED", "PROPERTY_SOLD", "ESTIMATE_CHANGED", "DIGEST"]

SAVE_SEARCH = """mutation($input: CreateSavedSearchInput!) {
  createSavedSearch(input: $input) { id name frequency } }"""
WATCH = """mutation($id: ID!) { watchProperty(id: $id) { estimateChangePct } }"""
CREATE_ENDPOINT = """mutation($url: String!, $events: [AlertKind!]!) {
  createWebhookEndpoint(url: $url, events: $events) { secret endpoint { id status } } }"""
RECORD_SALE = """mutation($input: RecordSaleInput!) { recordSale(input: $input) { id price } }"""
ALERTS = """query($after: String) { me { alerts(first: 100, after: $after) {
  edges { node { id kind sale { id price } property { id } savedSearch { name } } }
  pageInfo { hasNextPage endCursor } } } }"""
SUBSCRIBE = "subscription { alerts { id kind sale { id price } property { id } } }"
DELIVERIES = """{ me { webhookEndpoints { deliveries(first: 100) {
  edges { node { webhookId eventType status attempts { statusCode } } } } } } }"""


def load_data(url: str, path: Path, settings: Settings | None = None) -> str:
    """`propintel load-data <path>` as an operator runs it (beside the servers of `settings`:
    their Redis and namespace, so its alerts wake their subscriptions); its output."""
    env = {**os.environ, "DATABASE_URL": url, "PROPINTEL_DATA_DIR": str(DATA_DIR)}
    if settings is not None and settings.redis_url is not None:
        env |= {
            "REDIS_URL": settings.redis_url,
            "PROPINTEL_CACHE_NAMESPACE": settings.cache_namespace,
        }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "load-data", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def busiest_locality(path: Path) -> str:
    """The locality with the most sales in a weekly file (read from the source, not the
    database), so the saved search made before its load is sure to match."""
    counts = Counter(
        row.raw.locality.strip().upper() for row in read_sales(path) if isinstance(row, SourceRow)
    )
    return counts.most_common(1)[0][0]


@pytest.fixture(scope="module")
def week_database() -> Iterator[str]:
    """A database holding the first week of January 2024 (the properties the test watches and
    sells); the second week is what the test loads."""
    with empty_pg_database("e2e") as url:
        load_data(url, FIRST_WEEK)
        yield url


async def all_alerts(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql(client, ALERTS, headers=headers, after=after)).ok()["me"]["alerts"]
        found += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def messages(socket: GraphQLWS, count: int, within: float) -> list[dict[str, Any]]:
    received = []
    for _ in range(count):
        message = await socket.receive(within)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        received.append(message["payload"]["data"]["alerts"])
    return received


def subscribed(broker: Any, user_id: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(broker.waiting(user_id) > 0)

    return check


async def me_id(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    me = (await gql(client, "{ me { id } }", headers=headers)).ok()["me"]
    return from_global_id(me["id"], types=("User",))[1]


async def register_endpoint(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    path: str,
    events: list[str],
) -> dict[str, Any]:
    """createWebhookEndpoint to `path` of the receiver, which then verifies its requests with
    the secret shown once; the mutation's answer."""
    created: dict[str, Any] = (
        await gql(client, CREATE_ENDPOINT, headers=headers, url=receiver.url(path), events=events)
    ).ok()["createWebhookEndpoint"]
    assert created["secret"].startswith("whsec_")
    receiver.secrets[path] = [created["secret"]]
    return created


async def sell(
    client: httpx.AsyncClient, property_id: int, *, days_ago: int, price: int, dealing: str
) -> dict[str, Any]:
    """recordSale as an admin; the sale as it answers (id, price)."""
    sale = {
        "propertyId": to_global_id("Property", property_id),
        "contractDate": (date.today() - timedelta(days=days_ago)).isoformat(),
        "price": price,
        "dealingNumber": dealing,
    }
    answer = (await gql(client, RECORD_SALE, headers=ADMIN, input=sale)).ok()
    return dict(answer["recordSale"])


async def watch(client: httpx.AsyncClient, headers: dict[str, str], property_id: int) -> None:
    (await gql(client, WATCH, headers=headers, id=to_global_id("Property", property_id))).ok()


async def a_property_outside(db: Database, locality: str) -> int:
    row = await db.fetch_one(
        sa.select(tables.properties.c.id)
        .join(tables.localities, tables.localities.c.id == tables.properties.c.locality_id)
        .where(sa.func.upper(tables.localities.c.name) != locality)
        .order_by(tables.properties.c.id)
        .limit(1)
    )
    return int(row[0])


async def new_sales_in(db: Database, locality: str, first_new_id: int) -> set[int]:
    rows = await db.fetch_all(
        sa.select(tables.sales.c.id)
        .join(tables.localities, tables.localities.c.id == tables.sales.c.locality_id)
        .where(
            tables.sales.c.id >= first_new_id, sa.func.upper(tables.localities.c.name) == locality
        )
    )
    return {int(row[0]) for row in rows}


async def max_sale_id(db: Database) -> int:
    return int((await db.fetch_one(sa.select(sa.func.max(tables.sales.c.id))))[0])


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as started:
        yield started


async def test_record_sale_and_a_weekly_load_alert_deliver_and_stream_once(
    week_database: str, receiver: Receiver
) -> None:
    locality = busiest_locality(SECOND_WEEK)
    settings = redis_cache_settings(
        week_database, PROPINTEL_WORKER=True, PROPINTEL_WORKER_POLL_S=0.2
    )
    app = create_app(settings)
    async with uvicorn_serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        db: Database = app.state.db
        session = await signed_in(client)
        user = bearer_token(session["accessToken"])
        user_id = await me_id(client, user)
        saved = await gql(
            client,
            SAVE_SEARCH,
            headers=user,
            input={"name": "busiest", "filter": {"localityName": locality}, "frequency": "INSTANT"},
        )
        saved.ok()
        watched_id = await a_property_outside(db, locality)
        await watch(client, user, watched_id)
        await register_endpoint(client, user, receiver, "/hook", EVERY_EVENT)

        async with GraphQLWS.connect(base, session["accessToken"]) as socket:
            await socket.subscribe("alerts", SUBSCRIBE)
            await wait_for(subscribed(app.state.broker, user_id), timeout=10)

            # 1. recordSale: the outbox job, then one PROPERTY_SOLD everywhere.
            recorded = await sell(
                client, watched_id, days_ago=1, price=1_234_567, dealing="E2E000001"
            )
            (streamed,) = await messages(socket, 1, within=10)
            assert streamed["kind"] == "PROPERTY_SOLD"
            assert streamed["sale"] == recorded
            await receiver.wait_for(1, "/hook", timeout=10)

            # 2. load-data of the next week: one SALE_MATCHED per new sale of the locality.
            first_new = await max_sale_id(db) + 1
            await asyncio.to_thread(load_data, week_database, SECOND_WEEK, settings)
            expected = await new_sales_in(db, locality, first_new)
            assert len(expected) >= 5, f"{locality}: {len(expected)} new sales"
            streamed_load = await messages(socket, len(expected), within=20)
            assert {from_global_id(m["sale"]["id"])[1] for m in streamed_load} == expected
            assert {m["kind"] for m in streamed_load} == {"SALE_MATCHED"}
            await receiver.wait_for(1 + len(expected), "/hook", timeout=30)
            await socket.nothing_within(1.0)

        # Exactly once, everywhere: the API, the receiver (verified), the delivery log.
        alerts = await all_alerts(client, user)
        assert Counter(a["kind"] for a in alerts) == {
            "SALE_MATCHED": len(expected),
            "PROPERTY_SOLD": 1,
        }
        assert {from_global_id(a["sale"]["id"])[1] for a in alerts if a["savedSearch"]} == expected
        received = receiver.on("/hook")
        assert len(received) == 1 + len(expected)
        assert all(r.verify_error is None and r.verified is not None for r in received)
        assert len({r.webhook_id for r in received}) == len(received)
        assert Counter(r.verified["type"] for r in received) == {
            "sale.matched": len(expected),
            "property.sold": 1,
        }
        (endpoint,) = (await gql(client, DELIVERIES, headers=user)).ok()["me"]["webhookEndpoints"]
        deliveries = [edge["node"] for edge in endpoint["deliveries"]["edges"]]
        assert len(deliveries) == len(received)
        assert {d["status"] for d in deliveries} == {"SUCCEEDED"}
        assert {d["webhookId"] for d in deliveries} == {r.webhook_id for r in received}

        # Loading the same file again adds nothing (it is skipped) and neither does matching
        # its sales again (the outbox is at least once; alerts are once).
        await asyncio.to_thread(load_data, week_database, SECOND_WEEK)
        tasks = app.state.worker.registry.kinds["sales.recorded"]
        await tasks.handler(_job("sales.recorded", first_new, await max_sale_id(db)))
        assert len(await all_alerts(client, user)) == len(alerts)


def _job(kind: str, first: int, last: int) -> Any:
    from app.jobs.registry import Job

    return Job(
        id=0,
        kind=kind,
        payload={"first_sale_id": first, "last_sale_id": last},
        attempts=1,
        max_attempts=5,
    )


def start_worker(url: str, lease_s: int, log: Path) -> subprocess.Popen[str]:
    """`propintel worker`, its output appended to `log` (for a failing test's report)."""
    with log.open("a") as output:
        return start_worker_writing(url, lease_s, output)


def start_worker_writing(url: str, lease_s: int, output: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--concurrency", "4"],
        env={
            **os.environ,
            "DATABASE_URL": url,
            "PROPINTEL_JOB_LEASE_S": str(lease_s),
            "PROPINTEL_WORKER_POLL_S": "0.2",
            # An attempt is held for its timeout and a margin (app/webhooks/tasks.py), then
            # due again: a short timeout makes the killed worker's attempt due again soon.
            "PROPINTEL_WEBHOOK_TIMEOUT_S": "2",
            "PROPINTEL_PROFILE": "test",
        },
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
async def test_a_worker_killed_mid_delivery_delivers_again_under_the_same_id(
    week_database: str, receiver: Receiver, tmp_path: Path
) -> None:
    """The receiver holds the first request open; the worker sending it is killed with
    SIGKILL; a second worker takes the job when its lease runs out and delivers it again,
    with the same webhook-id: at least once, duplicates recognisable."""
    receiver.script("/killed", Reply(200, delay_s=30))  # the first request never completes
    settings = settings_for(week_database)  # the API without a worker: the processes below
    app = create_app(settings)
    async with uvicorn_serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        db: Database = app.state.db
        user = bearer_token((await signed_in(client))["accessToken"])
        created = await register_endpoint(client, user, receiver, "/killed", ["PROPERTY_SOLD"])
        property_id = await a_property_outside(db, "")
        await watch(client, user, property_id)
        await sell(client, property_id, days_ago=2, price=987_654, dealing="E2EKILL01")

        first = start_worker(week_database, lease_s=3, log=tmp_path / "workers.log")
        try:
            await receiver.wait_for(1, "/killed", timeout=30)
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 10)
        finally:
            if first.poll() is None:
                first.kill()
        second = start_worker(week_database, lease_s=3, log=tmp_path / "workers.log")
        try:
            await receiver.wait_for(2, "/killed", timeout=60)
            endpoint_id = from_global_id(created["endpoint"]["id"], types=("WebhookEndpoint",))[1]

            async def succeeded() -> bool:
                row = await db.fetch_one(
                    sa.select(tables.webhook_deliveries.c.status).where(
                        tables.webhook_deliveries.c.endpoint_id == endpoint_id
                    )
                )
                return row is not None and row[0] == "SUCCEEDED"

            await wait_for(succeeded, timeout=15)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 20)
        received = receiver.on("/killed")
        assert len(received) == 2
        assert received[0].webhook_id == received[1].webhook_id
        assert all(r.verify_error is None for r in received)


async def test_redis_unreachable_webhooks_deliver_and_subscriptions_poll(
    week_database: str, receiver: Receiver
) -> None:
    """With REDIS_URL pointing at nothing: the cache and the broker degrade; the worker and
    its deliveries need only PostgreSQL, and the subscription still gets its alert (by its
    poll)."""
    settings = redis_cache_settings(
        week_database,
        REDIS_URL="redis://127.0.0.1:1/0",
        PROPINTEL_WORKER=True,
        PROPINTEL_WORKER_POLL_S=0.2,
        PROPINTEL_SUBSCRIPTION_POLL_S=0.5,
    )
    assert settings.redis_url != REDIS_URL
    app = create_app(settings)
    async with uvicorn_serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        db: Database = app.state.db
        session = await signed_in(client)
        user = bearer_token(session["accessToken"])
        user_id = await me_id(client, user)
        await register_endpoint(client, user, receiver, "/no-redis", ["PROPERTY_SOLD"])
        property_id = await a_property_outside(db, "")
        await watch(client, user, property_id)
        async with GraphQLWS.connect(base, session["accessToken"]) as socket:
            await socket.subscribe("alerts", SUBSCRIBE)
            await wait_for(subscribed(app.state.broker, user_id), timeout=10)
            await sell(client, property_id, days_ago=3, price=555_555, dealing="E2ENOREDIS")
            (streamed,) = await messages(socket, 1, within=10)
            assert streamed["kind"] == "PROPERTY_SOLD"
            await receiver.wait_for(1, "/no-redis", timeout=15)
        assert receiver.on("/no-redis")[0].verify_error is None
