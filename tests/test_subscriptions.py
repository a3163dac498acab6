"""`subscription { alerts }` over graphql-transport-ws, end to end: the app under a real
uvicorn server (httpx's ASGI transport has no websockets), real users and tokens, real
PostgreSQL and Redis (and SQLite for the embedded default), alerts inserted the way the
worker inserts them (a committed row, then `broker.publish`).

What is checked: delivery within a second (the id and kind of the row), only to its user;
credentials in connection_init (bad -> 4403, none -> UNAUTHENTICATED, API keys work); the
legacy graphql-ws protocol refused; catching up with `after`; an alert committed out of id
order still delivered; the per-socket operation cap; Redis unreachable (the poll delivers
within subscription_poll_s + 1 s) and Redis lost then back (the catch-up on resubscribing
delivers what was published into the void); subscriptions over HTTP refused, never planned.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from app.asgi import create_app
from app.auth.principal import Role
from app.auth.tokens import AccessTokens
from app.graphql.plan import NoPlan, compile_operation
from app.http.ws import SubscriptionHandler
from app.ids import decode_global_id
from app.settings import Settings
from app.streams.broker import AlertBroker
from db import tables
from db.engine import Database, create_engine
from schema.ids import to_global_id
from tests.support.accounts import signed_in
from tests.support.apps import forget_namespace
from tests.support.credentials import ADMIN, JWT_SECRET
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)
from tests.support.graphql import gql
from tests.support.live import free_port, live_server
from tests.support.proxy import Proxy
from tests.support.settings import REDIS_URL, new_namespace, settings_for
from tests.support.ws import Closed, GraphQLWS, uvicorn_serving

ALERTS = "subscription { alerts { id kind createdAt readAt } }"
ALERTS_AFTER = "subscription($after: ID) { alerts(after: $after) { id kind } }"
POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class Served:
    app: Starlette
    base: str

    @property
    def broker(self) -> AlertBroker:
        broker: AlertBroker = self.app.state.broker
        return broker

    @property
    def db(self) -> Database:
        db: Database = self.app.state.db
        return db


@dataclass(frozen=True, slots=True)
class User:
    id: int
    token: str


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Served]:
    app = create_app(settings)
    async with uvicorn_serving(app) as base:
        yield Served(app, base)


@pytest.fixture(scope="module")
async def pg(postgres_url: str) -> AsyncIterator[Served]:
    """PostgreSQL and Redis (a namespace of its own), the cache on: as production runs."""
    namespace = new_namespace("sub")
    settings = settings_for(
        postgres_url,
        REDIS_URL=REDIS_URL,
        PROPINTEL_CACHE_ENABLED=True,
        PROPINTEL_CACHE_NAMESPACE=namespace,
        PROPINTEL_CACHE_WARM=0,
        PROPINTEL_SUBSCRIPTION_POLL_S=POLL_S,
    )
    try:
        async with serve(settings) as served:
            yield served
    finally:
        await forget_namespace(REDIS_URL, namespace)


async def new_user(served: Served | str) -> User:
    """A registered, signed-in USER of the server (a Served, or a base URL)."""
    base = served if isinstance(served, str) else served.base
    async with httpx.AsyncClient(base_url=base) as client:
        token = (await signed_in(client))["accessToken"]
        me = (await gql(client, "{ me { id } }", headers=_bearer(token))).ok()["me"]
    return User(decode_global_id(me["id"])[1], token)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_alert(db: Database, user_id: int, kind: str = "PROPERTY_SOLD") -> int:
    """An alert row, committed (what the worker's matching transaction leaves)."""
    async with db.begin() as conn:
        return int(
            (
                await conn.execute(
                    sa.insert(tables.alerts)
                    .values(
                        user_id=user_id,
                        kind=kind,
                        created_at=datetime.now(UTC),
                        dedupe_key=f"T:{uuid.uuid4().hex}",
                    )
                    .returning(tables.alerts.c.id)
                )
            ).scalar_one()
        )


async def until(condition: Callable[[], bool], within: float = 5) -> None:
    """Polls another component's state (it has no event of its own to wait on)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def listening(broker: AlertBroker, user_id: int, count: int = 1) -> None:
    """Until `count` subscriptions of the user have read their start and wait."""
    await until(lambda: broker.waiting(user_id) >= count)


async def next_alert(ws: GraphQLWS, within: float = 1.0, operation: str = "1") -> dict[str, Any]:
    message = await ws.receive(within)
    assert message["type"] == "next", message
    assert message["id"] == operation
    assert "errors" not in message["payload"], message
    alert: dict[str, Any] = message["payload"]["data"]["alerts"]
    return alert


# -- delivery ----------------------------------------------------------------------------


async def test_an_alert_reaches_its_subscriber_within_a_second(pg: Served) -> None:
    user = await new_user(pg)
    async with GraphQLWS.connect(pg.base, user.token) as ws:
        await ws.subscribe("1", ALERTS)
        await listening(pg.broker, user.id)
        latencies = []
        for kind in ("PROPERTY_SOLD", "SALE_MATCHED"):
            alert_id = await new_alert(pg.db, user.id, kind)
            started = time.perf_counter()
            await pg.broker.publish([user.id])
            alert = await next_alert(ws)
            latencies.append(time.perf_counter() - started)
            assert alert["id"] == to_global_id("Alert", alert_id)
            assert alert["kind"] == kind
            assert alert["readAt"] is None
            assert datetime.fromisoformat(alert["createdAt"]).tzinfo is not None
        await ws.nothing_within(0.3)  # each once
    assert max(latencies) < 1.0, latencies


async def test_a_publish_from_another_process_wakes_the_subscriber(pg: Served) -> None:
    """The worker runs in another process: its broker publishes to Redis, ours listens."""
    user = await new_user(pg)
    worker_broker = AlertBroker(pg.app.state.settings)  # publish only, as a worker's
    try:
        async with GraphQLWS.connect(pg.base, user.token) as ws:
            await ws.subscribe("1", ALERTS)
            await listening(pg.broker, user.id)
            alert_id = await new_alert(pg.db, user.id)
            await worker_broker.publish([user.id])
            assert (await next_alert(ws))["id"] == to_global_id("Alert", alert_id)
    finally:
        await worker_broker.close()


async def test_a_user_sees_only_their_own_alerts(pg: Served) -> None:
    alice, bob = await new_user(pg), await new_user(pg)
    async with (
        GraphQLWS.connect(pg.base, alice.token) as alice_ws,
        GraphQLWS.connect(pg.base, bob.token) as bob_ws,
    ):
        await alice_ws.subscribe("1", ALERTS)
        await bob_ws.subscribe("1", ALERTS)
        await listening(pg.broker, alice.id)
        await listening(pg.broker, bob.id)
        alices = await new_alert(pg.db, alice.id)
        reader = pg.broker.reader
        assert reader is not None
        statements = reader.statements
        # Bob is woken too (a wake-up names users, not alerts): he must read nothing.
        await pg.broker.publish([alice.id, bob.id])
        assert (await next_alert(alice_ws))["id"] == to_global_id("Alert", alices)
        await bob_ws.nothing_within(1.0)
        assert reader.statements == statements + 1  # both read in one statement
        bobs = await new_alert(pg.db, bob.id)
        await pg.broker.publish([bob.id])
        assert (await next_alert(bob_ws))["id"] == to_global_id("Alert", bobs)
        await alice_ws.nothing_within(0.5)


async def test_after_catches_up_then_goes_live(pg: Served) -> None:
    user = await new_user(pg)
    first, second, third = [await new_alert(pg.db, user.id) for _ in range(3)]
    async with GraphQLWS.connect(pg.base, user.token) as ws:
        await ws.subscribe("1", ALERTS_AFTER, {"after": to_global_id("Alert", first)})
        assert (await next_alert(ws))["id"] == to_global_id("Alert", second)
        assert (await next_alert(ws))["id"] == to_global_id("Alert", third)
        await listening(pg.broker, user.id)
        fourth = await new_alert(pg.db, user.id)
        await pg.broker.publish([user.id])
        assert (await next_alert(ws))["id"] == to_global_id("Alert", fourth)
        # An id that is not an alert's is the client's mistake, named.
        await ws.subscribe("2", ALERTS_AFTER, {"after": to_global_id("Property", 1)})
        message = await ws.receive(2)
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_alert_committed_out_of_id_order_is_still_delivered(pg: Served) -> None:
    """Two matching transactions at once: the lower id commits last."""
    user = await new_user(pg)
    async with GraphQLWS.connect(pg.base, user.token) as ws:
        await ws.subscribe("1", ALERTS)
        await listening(pg.broker, user.id)
        async with pg.db.engine.connect() as slow:
            transaction = await slow.begin()
            lower = (
                await slow.execute(
                    sa.insert(tables.alerts)
                    .values(
                        user_id=user.id,
                        kind="SALE_MATCHED",
                        created_at=datetime.now(UTC),
                        dedupe_key=f"T:{uuid.uuid4().hex}",
                    )
                    .returning(tables.alerts.c.id)
                )
            ).scalar_one()
            higher = await new_alert(pg.db, user.id)
            assert higher > lower
            await pg.broker.publish([user.id])
            assert (await next_alert(ws))["id"] == to_global_id("Alert", higher)
            await transaction.commit()
        await pg.broker.publish([user.id])
        assert (await next_alert(ws))["id"] == to_global_id("Alert", lower)
        await ws.nothing_within(0.3)


async def test_ten_operations_per_socket(pg: Served) -> None:
    user = await new_user(pg)
    async with GraphQLWS.connect(pg.base, user.token) as ws:
        for operation in range(10):
            await ws.subscribe(str(operation), ALERTS)
        await listening(pg.broker, user.id, 10)
        await ws.subscribe("10", ALERTS)
        refusal = await ws.receive(2)
        assert (refusal["type"], refusal["id"]) == ("error", "10"), refusal
        assert refusal["payload"][0]["extensions"]["code"] == "BAD_REQUEST"
        assert "At most 10" in refusal["payload"][0]["message"]
        # The ten still work, each gets the alert once.
        alert_id = await new_alert(pg.db, user.id)
        await pg.broker.publish([user.id])
        received = [await ws.receive(2) for _ in range(10)]
        assert sorted(int(m["id"]) for m in received) == list(range(10))
        assert {m["payload"]["data"]["alerts"]["id"] for m in received} == {
            to_global_id("Alert", alert_id)
        }
        # Completing one frees its listener.
        await ws.complete("0")
        await until(lambda: pg.broker.waiting(user.id) == 9)


# -- the real pipeline ----------------------------------------------------------------------

PIPELINE_ALERTS = """subscription { alerts { id kind
    sale { price contractDate } property { id zoning } } }"""
RECORD_SALE = """mutation($input: RecordSaleInput!) { recordSale(input: $input) { id } }"""
UPDATE_PROPERTY = """mutation($id: ID!, $input: UpdatePropertyInput!) {
    updateProperty(id: $id, input: $input) { id zoning } }"""


@pytest.fixture(scope="module")
def writable_pg() -> Iterator[str]:
    """A database of this module's own (one locality's sales): the pipeline test records
    sales and corrects a property, which the session's shared databases must not see."""
    name = pg_database_name("subscriptions")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


async def test_record_sale_to_subscriber_through_the_worker(writable_pg: str) -> None:
    """watchProperty, then recordSale (admin): the outbox job, the in-process worker's
    matching, its publish after commit, the subscription's read, the nested fields through
    loaders that are fresh for every event (a correction between two events shows)."""
    namespace = new_namespace("sub")
    settings = settings_for(
        writable_pg,
        REDIS_URL=REDIS_URL,
        PROPINTEL_CACHE_ENABLED=True,
        PROPINTEL_CACHE_NAMESPACE=namespace,
        PROPINTEL_CACHE_WARM=0,
        PROPINTEL_WORKER=True,
        PROPINTEL_WORKER_POLL_S=0.2,
    )
    try:
        async with serve(settings) as served:
            rows = await served.db.fetch_all(sa.text("SELECT min(id) FROM properties"))
            property_id = to_global_id("Property", int(rows[0][0]))
            user = await new_user(served)
            async with httpx.AsyncClient(base_url=served.base) as client:
                watch = "mutation($id: ID!) { watchProperty(id: $id) { estimateChangePct } }"
                (await gql(client, watch, id=property_id, headers=_bearer(user.token))).ok()
                async with GraphQLWS.connect(served.base, user.token) as ws:
                    await ws.subscribe("1", PIPELINE_ALERTS)
                    await listening(served.broker, user.id)
                    received = []
                    for price, zoning in ((812_000, "R7"), (845_000, "R8")):
                        fix = {"zoning": zoning}
                        await gql(client, UPDATE_PROPERTY, id=property_id, input=fix, headers=ADMIN)
                        sale = {
                            "propertyId": property_id,
                            "contractDate": date.today().isoformat(),
                            "price": price,
                            "dealingNumber": f"AS{uuid.uuid4().int % 10**6:06d}",
                        }
                        started = time.perf_counter()
                        recorded = await gql(client, RECORD_SALE, input=sale, headers=ADMIN)
                        sale_id = recorded.ok()["recordSale"]["id"]
                        alert = await next_alert(ws, 5)
                        received.append(time.perf_counter() - started)
                        assert alert["kind"] == "PROPERTY_SOLD"
                        assert alert["sale"] == {
                            "price": price,
                            "contractDate": sale["contractDate"],
                        }
                        assert alert["property"] == {"id": property_id, "zoning": zoning}
                        assert sale_id
                    await ws.nothing_within(0.5)
    finally:
        await forget_namespace(REDIS_URL, namespace)
    assert max(received) < 5, received


# -- credentials and protocol ------------------------------------------------------------


async def test_a_bad_credential_closes_the_socket_with_4403(pg: Served) -> None:
    for credential in ("not-a-jwt", "pik_" + "0" * 40):
        with pytest.raises(Closed) as closed:
            async with GraphQLWS.connect(pg.base, credential):
                pass
        assert (closed.value.code, closed.value.reason) == (4403, "Forbidden")


async def test_anonymous_may_connect_but_alerts_needs_a_user(pg: Served) -> None:
    async with GraphQLWS.connect(pg.base) as ws:
        await ws.subscribe("1", ALERTS)
        message = await ws.receive(2)
    assert message["type"] == "error", message
    assert [e["extensions"]["code"] for e in message["payload"]] == ["UNAUTHENTICATED"]
    assert "connection_init" in message["payload"][0]["message"]


async def test_an_api_key_in_connection_init_works(pg: Served) -> None:
    user = await new_user(pg)
    async with httpx.AsyncClient(base_url=pg.base) as client:
        created = await gql(
            client,
            'mutation { createApiKey(name: "live") { key } }',
            headers=_bearer(user.token),
        )
    key = created.ok()["createApiKey"]["key"]
    async with GraphQLWS.connect(pg.base, payload={"Authorization": f"Bearer {key}"}) as ws:
        await ws.subscribe("1", ALERTS)
        await listening(pg.broker, user.id)
        alert_id = await new_alert(pg.db, user.id)
        await pg.broker.publish([user.id])
        assert (await next_alert(ws))["id"] == to_global_id("Alert", alert_id)


async def test_the_socket_closes_when_its_access_token_expires(pg: Served) -> None:
    user = await new_user(pg)
    short = AccessTokens(JWT_SECRET, 1).issue(user.id, Role.USER).token
    async with GraphQLWS.connect(pg.base, short) as ws:
        await ws.subscribe("1", ALERTS)
        closed = await ws.closed(within=4)
    assert closed.code == 4403
    assert "expired" in closed.reason


async def test_the_socket_closes_when_its_api_key_is_revoked(
    pg: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SubscriptionHandler, "credential_recheck_s", 0.2)
    user = await new_user(pg)
    async with httpx.AsyncClient(base_url=pg.base) as client:
        created = await gql(
            client,
            'mutation { createApiKey(name: "revoked") { key apiKey { id } } }',
            headers=_bearer(user.token),
        )
        key, key_id = (
            created.ok()["createApiKey"]["key"],
            created.ok()["createApiKey"]["apiKey"]["id"],
        )
        async with GraphQLWS.connect(pg.base, key) as ws:
            await ws.subscribe("1", ALERTS)
            await listening(pg.broker, user.id)
            await ws.nothing_within(0.5)  # still valid: rechecked, kept
            revoke = "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }"
            (await gql(client, revoke, id=key_id, headers=_bearer(user.token))).ok()
            closed = await ws.closed(within=3)
    assert (closed.code, closed.reason) == (4403, "Forbidden: the API key was revoked")
    assert pg.broker.waiting(user.id) == 0


async def test_the_legacy_graphql_ws_protocol_is_refused(pg: Served) -> None:
    async with GraphQLWS.connect(pg.base, protocol="graphql-ws", init=False) as ws:
        closed = await ws.closed()
    assert (closed.code, closed.reason) == (4406, "Subprotocol not acceptable")


async def test_only_subscriptions_within_the_query_limits_run_over_the_socket(
    pg: Served,
) -> None:
    """Queries and mutations over the socket would skip the gate (rate and query limits):
    refused. A subscription runs its document on every event: the role's limits apply."""
    user = await new_user(pg)
    nested = "property { sales { nodes { " * 5 + "id" + " } } }" * 5
    deep = "subscription { alerts { " + nested + " } }"
    async with GraphQLWS.connect(pg.base, user.token) as ws:
        for operation, document in (
            ("q", "{ me { id } }"),
            ("m", 'mutation { createApiKey(name: "over the socket") { key } }'),
        ):
            await ws.subscribe(operation, document)
            refusal = await ws.receive(2)
            assert (refusal["type"], refusal["id"]) == ("error", operation), refusal
            assert refusal["payload"][0]["extensions"]["code"] == "BAD_REQUEST"
            assert "HTTP requests" in refusal["payload"][0]["message"]
        await ws.subscribe("deep", deep)
        refusal = await ws.receive(2)
        assert refusal["type"] == "error", refusal
        extensions = refusal["payload"][0]["extensions"]
        assert (extensions["code"], extensions["limit"]) == ("QUERY_TOO_COMPLEX", "max_depth")
        assert extensions["maximum"] == pg.app.state.settings.query_limits_user.max_depth
        # Nothing of those runs; the socket still serves a subscription (ids are free again).
        await ws.subscribe("q", ALERTS)
        await listening(pg.broker, user.id)
        assert pg.broker.waiting(user.id) == 1
    async with httpx.AsyncClient(base_url=pg.base) as client:
        keys = await gql(client, "{ apiKeys { name } }", headers=_bearer(user.token))
    assert keys.ok()["apiKeys"] == []


async def test_a_subscription_over_http_is_refused_and_never_planned(pg: Served) -> None:
    graphql = pg.app.state.graphql
    assert graphql.compiled is not None
    assert graphql.plan_for("POST", ALERTS, None) is None
    assert isinstance(compile_operation(graphql.schema, ALERTS, None), NoPlan)
    async with httpx.AsyncClient(base_url=pg.base) as client:
        for headers in ({}, {"Accept": "multipart/mixed"}, {"Accept": "text/event-stream"}):
            response = await client.post("/graphql", json={"query": ALERTS}, headers=headers)
            assert response.status_code == 400, response.text
            body = response.json()
            assert body["data"] is None
            assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_REQUEST"]
            assert "graphql-transport-ws" in body["errors"][0]["message"]


# -- without Redis, Redis down -------------------------------------------------------------


async def test_redis_unreachable_subscribers_are_served_by_the_poll(postgres_url: str) -> None:
    closed_port = free_port()
    settings = settings_for(
        postgres_url,
        REDIS_URL=f"redis://127.0.0.1:{closed_port}/0",
        PROPINTEL_SUBSCRIPTION_POLL_S=POLL_S,
    )
    async with serve(settings) as served:
        user = await new_user(served)
        async with GraphQLWS.connect(served.base, user.token) as ws:
            await ws.subscribe("1", ALERTS)
            await listening(served.broker, user.id)
            assert served.broker.degraded
            # Made by another process whose publish went nowhere: the poll finds it.
            alert_id = await new_alert(served.db, user.id)
            started = time.perf_counter()
            assert (await next_alert(ws, POLL_S + 1))["id"] == to_global_id("Alert", alert_id)
            assert time.perf_counter() - started < POLL_S + 1
            # This process's own publish fails fast and wakes its subscribers directly.
            alert_id = await new_alert(served.db, user.id)
            await served.broker.publish([user.id])
            assert (await next_alert(ws))["id"] == to_global_id("Alert", alert_id)


async def test_redis_lost_and_back_subscribers_catch_up(postgres_url: str) -> None:
    """Redis goes away under a subscriber (a proxy cut); a wake-up published meanwhile is lost
    (here: none at all), and the poll is slow: resubscribing wakes everyone once."""
    proxy = Proxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    settings = settings_for(
        postgres_url,
        REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0",
        PROPINTEL_CACHE_NAMESPACE=new_namespace("sub"),
        PROPINTEL_SUBSCRIPTION_POLL_S=30,  # the catch-up must do it, not the poll
    )
    try:
        async with serve(settings) as served:
            user = await new_user(served)
            async with GraphQLWS.connect(served.base, user.token) as ws:
                await ws.subscribe("1", ALERTS)
                await listening(served.broker, user.id)
                assert not served.broker.degraded
                await proxy.cut()
                await until(lambda: served.broker.degraded)
                await listening(served.broker, user.id)  # read once on losing it
                alert_id = await new_alert(served.db, user.id)
                await ws.nothing_within(0.5)
                await proxy.restore()
                started = time.perf_counter()
                assert (await next_alert(ws, 8))["id"] == to_global_id("Alert", alert_id)
                assert not served.broker.degraded
                assert time.perf_counter() - started < 8
                # And live again through Redis.
                await listening(served.broker, user.id)
                alert_id = await new_alert(served.db, user.id)
                await served.broker.publish([user.id])
                assert (await next_alert(ws))["id"] == to_global_id("Alert", alert_id)
    finally:
        await proxy.cut()


async def test_a_subscription_outlives_a_database_outage(postgres_url: str) -> None:
    """PostgreSQL unreachable under a live subscription (a proxy cut): its reads fail, it
    keeps the socket and retries; once the database is back, the alert made meanwhile (by a
    process that could still reach it) arrives."""
    target = sa.engine.make_url(settings_for(postgres_url).database_url)
    proxy = Proxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    through_proxy = target.set(port=proxy.port).render_as_string(hide_password=False)
    settings = settings_for(through_proxy, REDIS_URL=None, PROPINTEL_SUBSCRIPTION_POLL_S=POLL_S)
    direct = Database(create_engine(settings_for(postgres_url).database_url))
    try:
        async with serve(settings) as served:
            user = await new_user(served)
            async with GraphQLWS.connect(served.base, user.token) as ws:
                await ws.subscribe("1", ALERTS)
                await listening(served.broker, user.id)
                await proxy.cut()
                alert_id = await new_alert(direct, user.id)
                await served.broker.publish([user.id])  # its read fails: retried
                await ws.nothing_within(1.0)
                await proxy.restore()
                assert (await next_alert(ws, 6))["id"] == to_global_id("Alert", alert_id)
                await ws.nothing_within(0.3)  # once
    finally:
        await proxy.cut()
        await direct.dispose()


@pytest.mark.slow
async def test_propintel_serve_streams_alerts(sqlite_url: str) -> None:
    """`propintel serve` itself (its own process, uvicorn's default websocket implementation),
    on the embedded default: an alert another process commits reaches the subscriber."""
    env = {
        "DATABASE_URL": sqlite_url,
        "JWT_SECRET": JWT_SECRET,
        "PROPINTEL_WORKER": "false",
        "PROPINTEL_SUBSCRIPTION_POLL_S": str(POLL_S),
    }
    with live_server(env, ready_path="/healthz") as base:
        user = await new_user(base)
        db = Database(create_engine(settings_for(sqlite_url).database_url))
        try:
            # Another process: no broker to ask whether the subscription has started, so it
            # starts `after` a known alert and the next one arrives however the two race.
            seen = await new_alert(db, user.id)
            async with GraphQLWS.connect(base, user.token) as ws:
                await ws.subscribe("1", ALERTS_AFTER, {"after": to_global_id("Alert", seen)})
                alert_id = await new_alert(db, user.id)
                alert = await next_alert(ws, POLL_S + 2)
                assert alert["id"] == to_global_id("Alert", alert_id)
                await ws.nothing_within(0.3)
        finally:
            await db.dispose()


async def test_embedded_sqlite_without_redis(sqlite_url: str) -> None:
    """The embedded default: one process, no Redis; publish wakes subscribers directly, the
    poll finds alerts another process made (a `propintel load-data`)."""
    settings = settings_for(sqlite_url, REDIS_URL=None, PROPINTEL_SUBSCRIPTION_POLL_S=POLL_S)
    async with serve(settings) as served:
        user = await new_user(served)
        async with GraphQLWS.connect(served.base, user.token) as ws:
            await ws.subscribe("1", ALERTS)
            await listening(served.broker, user.id)
            alert_id = await new_alert(served.db, user.id)
            started = time.perf_counter()
            await served.broker.publish([user.id])
            assert (await next_alert(ws))["id"] == to_global_id("Alert", alert_id)
            assert time.perf_counter() - started < 1
            alert_id = await new_alert(served.db, user.id)  # nobody publishes
            assert (await next_alert(ws, POLL_S + 1))["id"] == to_global_id("Alert", alert_id)
