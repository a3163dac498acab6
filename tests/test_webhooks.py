"""Signed webhooks (issue 14) on PostgreSQL, end to end: endpoints over HTTP, deliveries by
the real job worker to a real local receiver (tests/support/receiver.py) that verifies every
request with the `standardwebhooks` package, faults (500, timeouts, 410, 429/503, 3xx), the
retry schedule (by time travel: due times moved into the past, never slept), dead letters,
replay and recovery, retention, isolation and bad input. The SQLite core path is in
tests/test_webhooks_sqlite.py.

Alerts are made as the alerts pipeline makes them: inserted, then
`db.repositories.webhooks.create_deliveries` in the same transaction.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from app.ids import decode_global_id, encode_global_id
from app.settings import Settings
from app.webhooks.schedule import MAX_ATTEMPTS, RETRY_DELAYS
from app.webhooks.tasks import retention
from db import tables
from db.engine import Database
from db.repositories import jobs
from db.repositories import webhooks as webhook_repo
from db.repositories.accounts import owner_scope
from tests.support.apps import RunningApp, running_app, running_app_with_redis
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)
from tests.support.graphql import gql
from tests.support.prod import prod_settings
from tests.support.receiver import Receiver, Reply
from tests.support.settings import redis_cache_settings, settings_for
from tests.support.webhooks import (
    CREATE,
    DELETE,
    ENDPOINTS,
    RECOVER,
    REPLAY,
    ROTATE,
    Account,
    deliver,
    make_alerts,
    new_account,
    time_travel,
)

MAX_ENDPOINTS = 4
TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def webhooks_database() -> Iterator[str]:
    """A database of this module's own: its tests write endpoints, alerts and jobs."""
    name = pg_database_name("webhooks")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="module")
async def app(webhooks_database: str) -> AsyncIterator[RunningApp]:
    settings = settings_for(
        webhooks_database,
        PROPINTEL_MAX_WEBHOOKS=MAX_ENDPOINTS,
        PROPINTEL_WEBHOOK_TIMEOUT_S=TIMEOUT_S,
    )
    async with running_app(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


@pytest.fixture
def db(app: RunningApp) -> Database:
    database: Database = app.state.db
    return database


@pytest.fixture
def settings(app: RunningApp) -> Settings:
    return app.settings


async def _endpoint(
    app: RunningApp, receiver: Receiver, path: str, events: list[str] | None = None
) -> tuple[Account, dict[str, Any]]:
    account = await new_account(app.client)
    created = (
        await gql(
            app.client,
            CREATE,
            url=receiver.url(path),
            events=events or ["SALE_MATCHED", "PROPERTY_SOLD", "ESTIMATE_CHANGED", "DIGEST"],
            headers=account.headers,
        )
    ).ok()["createWebhookEndpoint"]
    receiver.secrets[path] = [created["secret"]]
    return account, created


async def _deliveries(app: RunningApp, account: Account, status: str | None = None) -> list[Any]:
    query = """query($s: WebhookDeliveryStatus) { me { webhookEndpoints { id deliveries(first: 50,
        status: $s) { edges { node { id webhookId eventType status nextAttemptAt
        attempts { at statusCode durationMs error } } } } } } }"""
    data = (await gql(app.client, query, s=status, headers=account.headers)).ok()
    return [
        edge["node"]
        for endpoint in data["me"]["webhookEndpoints"]
        for edge in endpoint["deliveries"]["edges"]
    ]


async def _endpoints(app: RunningApp, account: Account) -> list[Any]:
    data = (await gql(app.client, ENDPOINTS, headers=account.headers)).ok()
    return list(data["me"]["webhookEndpoints"])


# -- endpoints over HTTP ------------------------------------------------------------------


async def test_create_list_rotate_delete(app: RunningApp, receiver: Receiver) -> None:
    account, created = await _endpoint(app, receiver, "/crud", ["SALE_MATCHED", "DIGEST"])
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    endpoint = created["endpoint"]
    assert endpoint["url"] == receiver.url("/crud")
    assert endpoint["events"] == ["SALE_MATCHED", "DIGEST"]
    assert endpoint["status"] == "ACTIVE"
    assert endpoint["disabledReason"] is None
    assert decode_global_id(endpoint["id"])[0] == "WebhookEndpoint"

    listed = await _endpoints(app, account)
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert listed[0]["deliveries"] == {"edges": [], "pageInfo": {"hasNextPage": False}}

    rotated = (await gql(app.client, ROTATE, id=endpoint["id"], headers=account.headers)).ok()
    new_secret = rotated["rotateWebhookSecret"]["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != secret
    assert rotated["rotateWebhookSecret"]["endpoint"]["id"] == endpoint["id"]

    deleted = await gql(app.client, DELETE, id=endpoint["id"], headers=account.headers)
    assert deleted.ok() == {"deleteWebhookEndpoint": True}
    assert await _endpoints(app, account) == []
    again = await gql(app.client, DELETE, id=endpoint["id"], headers=account.headers)
    assert again.error_codes() == ["NOT_FOUND"]


async def test_anonymous_is_unauthenticated(app: RunningApp, receiver: Receiver) -> None:
    _, created = await _endpoint(app, receiver, "/anonymous")
    endpoint_id = created["endpoint"]["id"]
    for query, variables in (
        (CREATE, {"url": receiver.url("/x"), "events": ["DIGEST"]}),
        (ROTATE, {"id": endpoint_id}),
        (DELETE, {"id": endpoint_id}),
        (REPLAY, {"id": encode_global_id("WebhookDelivery", 1)}),
        (RECOVER, {"id": endpoint_id, "since": "2020-01-01T00:00:00Z"}),
    ):
        assert (await gql(app.client, query, **variables)).error_codes() == ["UNAUTHENTICATED"]


async def test_endpoint_limit(app: RunningApp, receiver: Receiver) -> None:
    account = await new_account(app.client)
    for _ in range(MAX_ENDPOINTS):
        (
            await gql(
                app.client,
                CREATE,
                url=receiver.url("/limit"),
                events=["DIGEST"],
                headers=account.headers,
            )
        ).ok()
    over = await gql(
        app.client, CREATE, url=receiver.url("/limit"), events=["DIGEST"], headers=account.headers
    )
    assert over.error_codes() == ["BAD_USER_INPUT"]
    assert f"{MAX_ENDPOINTS} webhook endpoints" in over.errors[0]["message"]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "spaces"),
        ("no-scheme.example.com/hook", "http or https"),
        ("ftp://example.com/hook", "http or https URL, not ftp"),
        ("http://user:pw@example.com/hook", "credentials"),
        ("http://:80/hook", "no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://example.com/" + "a" * 2000, "longer than 2000"),
        ("http://10.0.0.1/", "private address (10.0.0.1)"),
        ("http://192.168.1.20:8080/hook", "private address (192.168.1.20)"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address (169.254.169.254)"),
        ("http://[fd00:ec2::254]/", "cloud metadata address (fd00:ec2::254)"),
        ("http://169.254.10.1/", "link-local address"),
        ("http://[fe80::1]/", "link-local address"),
        ("http://100.64.0.7/", "shared (CGNAT) address"),
        ("http://224.0.0.1/", "multicast address"),
        ("http://0.0.0.0/", "unspecified address"),
        ("http://240.0.0.1/", "reserved address"),
        ("http://[::ffff:10.0.0.1]/", "private address (10.0.0.1)"),
        ("http://nothing.invalid/hook", "does not resolve"),
    ],
)
async def test_refused_urls(app: RunningApp, url: str, words: str) -> None:
    account = await new_account(app.client)
    response = await gql(app.client, CREATE, url=url, events=["DIGEST"], headers=account.headers)
    assert response.error_codes() == ["BAD_USER_INPUT"], response.body
    assert response.errors[0]["extensions"]["argument"] == "url"
    assert words in response.errors[0]["message"]
    assert "`url`" in response.errors[0]["message"]
    assert await _endpoints(app, account) == []


@pytest.mark.parametrize(
    ("events", "words"),
    [([], "at least one"), (["SALE_MATCHED", "NOPE"], "NOPE"), (["sale.matched"], "sale.matched")],
)
async def test_refused_events(
    app: RunningApp, receiver: Receiver, events: list[str], words: str
) -> None:
    account = await new_account(app.client)
    response = await gql(
        app.client, CREATE, url=receiver.url("/e"), events=events, headers=account.headers
    )
    # An empty list is refused by the service; a name outside the enum by validation.
    assert response.error_codes() in (["BAD_USER_INPUT"], ["GRAPHQL_VALIDATION_FAILED"])
    assert words in response.errors[0]["message"]


async def test_prod_refuses_loopback_and_plain_http(webhooks_database: str) -> None:
    async with running_app(prod_settings(webhooks_database)) as prod:
        account = await new_account(prod.client)
        for url, words in (
            ("https://localhost/hook", "loopback address"),
            ("https://127.0.0.1:8443/hook", "loopback address (127.0.0.1)"),
            ("http://example.com/hook", "must use https"),
        ):
            response = await gql(
                prod.client, CREATE, url=url, events=["DIGEST"], headers=account.headers
            )
            assert response.error_codes() == ["BAD_USER_INPUT"], url
            assert words in response.errors[0]["message"], response.errors
    allowed = prod_settings(webhooks_database, PROPINTEL_WEBHOOK_ALLOWED_HOSTS="localhost")
    async with running_app(allowed) as prod:
        account = await new_account(prod.client)
        response = await gql(
            prod.client,
            CREATE,
            url="https://localhost/hook",
            events=["DIGEST"],
            headers=account.headers,
        )
        assert response.ok()["createWebhookEndpoint"]["endpoint"]["status"] == "ACTIVE"


async def test_isolation(app: RunningApp, db: Database, receiver: Receiver) -> None:
    owner, created = await _endpoint(app, receiver, "/isolation")
    endpoint_id = created["endpoint"]["id"]
    await make_alerts(db, owner.user_id, 2)
    await deliver(db, app.settings)
    deliveries = await _deliveries(app, owner)
    assert len(deliveries) == 2

    other = await new_account(app.client)
    assert await _endpoints(app, other) == []
    for query, variables in (
        (ROTATE, {"id": endpoint_id}),
        (DELETE, {"id": endpoint_id}),
        (REPLAY, {"id": deliveries[0]["id"]}),
        (RECOVER, {"id": endpoint_id, "since": "2020-01-01T00:00:00Z"}),
    ):
        response = await gql(app.client, query, headers=other.headers, **variables)
        assert response.error_codes() == ["NOT_FOUND"], query
    # Row-level security: in the other user's scope, not even a statement without a WHERE
    # clause sees the owner's rows.
    async with owner_scope(db, other.user_id) as conn:
        for table in (tables.webhook_endpoints, tables.webhook_deliveries, tables.webhook_attempts):
            assert await conn.scalar(sa.select(sa.func.count()).select_from(table)) == 0
    async with owner_scope(db, owner.user_id) as conn:
        count = sa.select(sa.func.count()).select_from(tables.webhook_deliveries)
        assert await conn.scalar(count) == 2
    # Still the owner's, untouched.
    assert len(await _deliveries(app, owner, "SUCCEEDED")) == 2


# -- delivery -------------------------------------------------------------------------------


async def test_delivery_is_signed_to_the_standard(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account, created = await _endpoint(app, receiver, "/signed")
    (alert_id,) = await make_alerts(db, account.user_id, 1)
    before = datetime.now(UTC)
    await deliver(db, app.settings)
    (request,) = receiver.on("/signed")
    assert request.verify_error is None
    assert request.verified is not None
    # Exactly the Standard Webhooks headers (and the transport's own).
    endpoint_pk = decode_global_id(created["endpoint"]["id"])[1]
    assert request.headers["webhook-id"] == f"msg_{endpoint_pk}_{alert_id}"
    assert request.headers["content-type"] == "application/json"
    timestamp = int(request.headers["webhook-timestamp"])
    assert before.timestamp() - 1 <= timestamp <= datetime.now(UTC).timestamp() + 1
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 1
    assert signatures[0].startswith("v1,")
    webhook_headers = {k for k in request.headers if k.startswith("webhook-")}
    assert webhook_headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    # The body: the event, the alert's time, global ids and the useful fields.
    body = json.loads(request.body)
    assert body == request.verified
    assert len(request.body) < 20_000
    assert body["type"] == "sale.matched"
    alert = await _alert_row(db, alert_id)
    assert datetime.fromisoformat(body["timestamp"]) == alert["created_at"]
    data = body["data"]
    assert data["alertId"] == encode_global_id("Alert", alert_id)
    assert data["property"]["id"] == encode_global_id("Property", alert["property_id"])
    assert data["property"]["address"].endswith("TEMPE NSW 2044")
    assert data["sale"]["id"] == encode_global_id("Sale", alert["sale_id"])
    assert data["sale"]["price"] == alert["price"]
    assert data["sale"]["contractDate"] == alert["contract_date"].isoformat()
    assert data["savedSearch"] == {
        "id": encode_global_id("SavedSearch", alert["saved_search_id"]),
        "name": "Tempe houses",
    }
    # What the API says about it.
    (delivery,) = await _deliveries(app, account)
    assert delivery["webhookId"] == request.webhook_id
    assert delivery["eventType"] == "sale.matched"
    assert delivery["status"] == "SUCCEEDED"
    assert delivery["nextAttemptAt"] is None
    (attempt,) = delivery["attempts"]
    assert attempt["statusCode"] == 200
    assert attempt["error"] is None
    assert attempt["durationMs"] >= 0


async def test_rotation_signs_with_both_secrets(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account, created = await _endpoint(app, receiver, "/rotate")
    old = created["secret"]
    rotated = await gql(app.client, ROTATE, id=created["endpoint"]["id"], headers=account.headers)
    new = rotated.ok()["rotateWebhookSecret"]["secret"]
    receiver.secrets["/rotate"] = [new]
    await make_alerts(db, account.user_id, 1)
    await deliver(db, app.settings)
    (request,) = receiver.on("/rotate")
    assert request.verify_error is None
    first, second = request.headers["webhook-signature"].split(" ")
    # Each signature verifies alone, with its own secret only.
    for signature, secret, wrong in ((first, new, old), (second, old, new)):
        headers = {**request.headers, "webhook-signature": signature}
        assert Webhook(secret).verify(request.body, headers) == json.loads(request.body)
        with pytest.raises(Exception, match="No matching signature"):
            Webhook(wrong).verify(request.body, headers)
    # After 24 h only the new one signs.
    async with db.begin() as conn:
        await conn.execute(
            sa.update(tables.webhook_endpoints)
            .where(tables.webhook_endpoints.c.id == decode_global_id(created["endpoint"]["id"])[1])
            .values(previous_secret_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    await make_alerts(db, account.user_id, 1)
    await deliver(db, app.settings)
    latest = receiver.on("/rotate")[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).verify(latest.body, latest.headers)


async def test_500_then_200_is_retried_with_the_same_id(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account, _ = await _endpoint(app, receiver, "/flaky")
    receiver.script("/flaky", Reply(500))
    await make_alerts(db, account.user_id, 1)
    await deliver(db, app.settings)  # the first retry is immediate: both run now
    first, second = receiver.on("/flaky")
    assert first.webhook_id == second.webhook_id
    assert first.body == second.body  # the stored body, byte for byte
    assert first.verify_error is None
    assert second.verify_error is None
    (delivery,) = await _deliveries(app, account)
    assert delivery["status"] == "SUCCEEDED"
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]
    assert "500" in delivery["attempts"][0]["error"]


async def test_timeout_is_a_failed_attempt(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account, _ = await _endpoint(app, receiver, "/slow")
    receiver.script("/slow", Reply(delay_s=TIMEOUT_S * 4))
    await make_alerts(db, account.user_id, 1)
    await deliver(db, app.settings)
    assert len(receiver.on("/slow")) == 2
    (delivery,) = await _deliveries(app, account)
    slow, fine = delivery["attempts"]
    assert slow["statusCode"] is None
    assert slow["error"] == f"no answer within {TIMEOUT_S:g} s"
    assert TIMEOUT_S * 1000 * 0.9 <= slow["durationMs"] < TIMEOUT_S * 1000 * 3
    assert fine["statusCode"] == 200
    assert delivery["status"] == "SUCCEEDED"


async def test_410_disables_the_endpoint(app: RunningApp, db: Database, receiver: Receiver) -> None:
    account, _ = await _endpoint(app, receiver, "/gone")
    receiver.script("/gone", Reply(410))
    await make_alerts(db, account.user_id, 2)
    await deliver(db, app.settings, concurrency=1)
    assert len(receiver.on("/gone")) == 1  # the second was never sent
    (endpoint,) = await _endpoints(app, account)
    assert endpoint["status"] == "DISABLED"
    assert endpoint["disabledReason"] == "the endpoint answered 410 Gone"
    # The one answered 410 is dead (recoverable once the endpoint is back); the other,
    # never sent, cancelled.
    statuses = [d["status"] for d in await _deliveries(app, account)]  # newest first
    assert statuses == ["CANCELLED", "DEAD"]
    # A disabled endpoint gets no new deliveries.
    await make_alerts(db, account.user_id, 1)
    assert len(await _deliveries(app, account)) == 2


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(
    app: RunningApp, db: Database, receiver: Receiver, status: int
) -> None:
    path = f"/busy{status}"
    account, _ = await _endpoint(app, receiver, path)
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=300), usegmt=True)
    retry_after = "120" if status == 429 else later
    receiver.script(path, Reply(status, {"retry-after": retry_after}))
    await make_alerts(db, account.user_id, 1)
    await deliver(db, app.settings)
    assert len(receiver.on(path)) == 1  # not retried at once (the schedule's first retry)
    (delivery,) = await _deliveries(app, account)
    assert delivery["status"] == "FAILED"
    attempt = delivery["attempts"][0]
    waited = datetime.fromisoformat(delivery["nextAttemptAt"]) - datetime.fromisoformat(
        attempt["at"]
    )
    expected = 120 if status == 429 else 300
    assert expected - 3 <= waited.total_seconds() <= expected + 3
    await time_travel(db)
    await deliver(db, app.settings)
    assert len(receiver.on(path)) == 2
    assert (await _deliveries(app, account))[0]["status"] == "SUCCEEDED"


async def test_redirects_are_failures(app: RunningApp, db: Database, receiver: Receiver) -> None:
    account, _ = await _endpoint(app, receiver, "/moved")
    receiver.script("/moved", Reply(302, {"location": receiver.url("/elsewhere")}))
    await make_alerts(db, account.user_id, 1)
    await deliver(db, app.settings)
    assert receiver.on("/elsewhere") == []  # never followed
    attempts = (await _deliveries(app, account))[0]["attempts"]
    assert attempts[0]["statusCode"] == 302
    assert "redirects are not followed" in attempts[0]["error"]
    assert attempts[1]["statusCode"] == 200  # the immediate retry


async def test_a_refused_address_fails_the_attempt(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account, created = await _endpoint(app, receiver, "/moved-away")
    # The URL now leads somewhere private (as if its DNS had changed since it was checked).
    async with db.begin() as conn:
        await conn.execute(
            sa.update(tables.webhook_endpoints)
            .where(tables.webhook_endpoints.c.id == decode_global_id(created["endpoint"]["id"])[1])
            .values(url="http://10.0.0.5:9/hook")
        )
    await make_alerts(db, account.user_id, 1)
    await deliver(db, app.settings)
    (delivery,) = await _deliveries(app, account)
    assert delivery["status"] == "FAILED"
    assert len(delivery["attempts"]) == 2  # the first, and the immediate retry
    for attempt in delivery["attempts"]:
        assert attempt["statusCode"] is None
        assert "private address (10.0.0.5)" in attempt["error"]


async def test_schedule_then_dead_letter(app: RunningApp, db: Database, receiver: Receiver) -> None:
    account, created = await _endpoint(app, receiver, "/down")
    receiver.script("/down", *[Reply(500)] * MAX_ATTEMPTS)
    await make_alerts(db, account.user_id, 1)
    gaps: list[float] = []
    for _ in range(MAX_ATTEMPTS):
        await deliver(db, app.settings)
        (delivery,) = await _deliveries(app, account)
        if delivery["status"] == "DEAD":
            break
        assert delivery["status"] == "FAILED"
        at = datetime.fromisoformat(delivery["attempts"][-1]["at"])
        gaps.append((datetime.fromisoformat(delivery["nextAttemptAt"]) - at).total_seconds())
        await time_travel(db)
    requests = receiver.on("/down")
    assert len(requests) == MAX_ATTEMPTS == 9
    assert len({r.webhook_id for r in requests}) == 1
    assert all(r.verify_error is None for r in requests)
    (delivery,) = await _deliveries(app, account)
    assert delivery["status"] == "DEAD"
    assert delivery["nextAttemptAt"] is None
    assert [a["statusCode"] for a in delivery["attempts"]] == [500] * 9
    # The first retry runs at once (in the same drain); then Svix's schedule, with ±10% jitter.
    # Duration of an attempt runs into the gap measured from its start: allow a second.
    expected = [d.total_seconds() for d in RETRY_DELAYS[1:]]
    assert len(gaps) == len(expected)
    for gap, want in zip(gaps, expected, strict=True):
        assert want * 0.9 - 1 <= gap <= want * 1.1 + 1, (gaps, expected)
    endpoint_pk = decode_global_id(created["endpoint"]["id"])[1]
    async with db.connect() as conn:
        failing_since = await conn.scalar(
            sa.select(tables.webhook_endpoints.c.failing_since).where(
                tables.webhook_endpoints.c.id == endpoint_pk
            )
        )
    assert failing_since is not None

    # Replayed: pending again, same webhook-id and body, a new series of attempts.
    replayed = await gql(app.client, REPLAY, id=delivery["id"], headers=account.headers)
    assert replayed.ok()["replayWebhookDelivery"]["status"] == "PENDING"
    await deliver(db, app.settings)
    last = receiver.on("/down")[-1]
    assert last.webhook_id == requests[0].webhook_id
    assert last.body == requests[0].body
    (delivery,) = await _deliveries(app, account)
    assert delivery["status"] == "SUCCEEDED"
    async with db.connect() as conn:
        failing_since = await conn.scalar(
            sa.select(tables.webhook_endpoints.c.failing_since).where(
                tables.webhook_endpoints.c.id == endpoint_pk
            )
        )
    assert failing_since is None  # healthy again


async def test_failing_for_five_days_disables(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account, created = await _endpoint(app, receiver, "/failing")
    endpoint_pk = decode_global_id(created["endpoint"]["id"])[1]
    async with db.begin() as conn:
        await conn.execute(
            sa.update(tables.webhook_endpoints)
            .where(tables.webhook_endpoints.c.id == endpoint_pk)
            .values(failing_since=datetime.now(UTC) - timedelta(days=5, minutes=1))
        )
    receiver.script("/failing", Reply(500))
    await make_alerts(db, account.user_id, 1)
    await deliver(db, app.settings)
    assert len(receiver.on("/failing")) == 1
    (endpoint,) = await _endpoints(app, account)
    assert endpoint["status"] == "DISABLED"
    assert endpoint["disabledReason"] == "failing for 5 days"
    assert (await _deliveries(app, account))[0]["status"] == "DEAD"

    # Turned back on, then recovered: what it missed is sent, with its webhook-id.
    enable = "mutation($id: ID!) { enableWebhookEndpoint(id: $id) { status disabledReason } }"
    enabled = await gql(app.client, enable, id=created["endpoint"]["id"], headers=account.headers)
    assert enabled.ok()["enableWebhookEndpoint"] == {"status": "ACTIVE", "disabledReason": None}
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    recovered = await gql(
        app.client, RECOVER, id=created["endpoint"]["id"], since=since, headers=account.headers
    )
    assert recovered.ok() == {"recoverWebhookDeliveries": 1}
    await deliver(db, app.settings)
    first, second = receiver.on("/failing")
    assert second.webhook_id == first.webhook_id
    assert second.verify_error is None
    assert (await _deliveries(app, account))[0]["status"] == "SUCCEEDED"


async def test_recover_replays_failed_and_dead_since(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account, created = await _endpoint(app, receiver, "/recover")
    since = datetime.now(UTC)
    await make_alerts(db, account.user_id, 3)
    await deliver(db, app.settings)
    first_ids = sorted(r.webhook_id for r in receiver.on("/recover"))
    assert len(first_ids) == 3
    # Two of them failed for good (as an outage would leave them), one succeeded.
    async with db.begin() as conn:
        d = tables.webhook_deliveries
        ids = (
            (
                await conn.execute(
                    sa.select(d.c.id)
                    .where(d.c.user_id == account.user_id)
                    .order_by(d.c.id)
                    .limit(2)
                )
            )
            .scalars()
            .all()
        )
        await conn.execute(sa.update(d).where(d.c.id == ids[0]).values(status="DEAD"))
        await conn.execute(
            sa.update(d)
            .where(d.c.id == ids[1])
            .values(status="FAILED", next_attempt_at=datetime.now(UTC) + timedelta(hours=5))
        )
    endpoint_id = created["endpoint"]["id"]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    none = await gql(app.client, RECOVER, id=endpoint_id, since=later, headers=account.headers)
    assert none.ok() == {"recoverWebhookDeliveries": 0}
    recovered = await gql(
        app.client, RECOVER, id=endpoint_id, since=since.isoformat(), headers=account.headers
    )
    assert recovered.ok() == {"recoverWebhookDeliveries": 2}
    await deliver(db, app.settings)
    again = receiver.on("/recover")[3:]
    assert len(again) == 2
    assert {r.webhook_id for r in again} <= set(first_ids)
    assert all(r.verify_error is None for r in again)
    assert {d["status"] for d in await _deliveries(app, account)} == {"SUCCEEDED"}


async def test_every_event_at_least_once(app: RunningApp, db: Database, receiver: Receiver) -> None:
    """Alerts for two endpoints of two users, the receiver failing a third of the first
    answers: every delivery arrives, duplicates only with the same webhook-id, and each is
    acknowledged once."""
    one, _ = await _endpoint(app, receiver, "/many-a")
    two, _ = await _endpoint(app, receiver, "/many-b")
    receiver.script("/many-a", *[Reply(500) if i % 3 == 0 else Reply() for i in range(20)])
    receiver.script("/many-b", *[Reply(503) if i % 3 == 1 else Reply() for i in range(20)])
    alerts = [*await make_alerts(db, one.user_id, 20), *await make_alerts(db, two.user_id, 20)]
    assert len(alerts) == 40
    d = tables.webhook_deliveries
    mine = sa.select(d.c.message_id, d.c.status).where(d.c.alert_id.in_(alerts))
    for _ in range(10):  # retries and cap turn-aways wait: their time is made to come
        await deliver(db, app.settings, concurrency=16)
        async with db.connect() as conn:
            rows = (await conn.execute(mine)).all()
        if {row[1] for row in rows} == {"SUCCEEDED"}:
            break
        await time_travel(db)
    got = receiver.on("/many-a") + receiver.on("/many-b")
    expected = {row[0] for row in rows}
    assert len(expected) == 40
    assert {row[1] for row in rows} == {"SUCCEEDED"}
    assert {r.webhook_id for r in got} == expected
    acknowledged = [r.webhook_id for r in got if 200 <= r.status < 300]
    assert sorted(acknowledged) == sorted(expected)  # each exactly once
    assert all(r.verify_error is None for r in got)
    assert len(got) == 40 + 7 + 7  # every failure retried once


async def test_deliveries_are_batched_and_paged(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account = await new_account(app.client)
    query = """query($after: String, $s: WebhookDeliveryStatus) { me { webhookEndpoints {
        deliveries(first: 2, after: $after, status: $s) { edges { cursor node { id status
        attempts { statusCode } } } pageInfo { hasNextPage endCursor } } } } }"""

    async def statements() -> int:
        response = await gql(app.client, query, headers=account.headers)
        response.ok()
        assert response.statements is not None
        return response.statements

    for n in range(3):
        created = await gql(
            app.client,
            CREATE,
            url=receiver.url(f"/batch{n}"),
            events=["SALE_MATCHED"],
            headers=account.headers,
        )
        created.ok()
        await make_alerts(db, account.user_id, 3)
        await deliver(db, app.settings)
        if n == 0:
            one_endpoint = await statements()
    # One statement per level whatever the number of endpoints: three endpoints cost what
    # one did.
    assert await statements() == one_endpoint
    data = (await gql(app.client, query, headers=account.headers)).ok()
    endpoints = data["me"]["webhookEndpoints"]
    assert len(endpoints) == 3
    # Alerts fan out to every endpoint of their user that takes their kind.
    assert [len(e["deliveries"]["edges"]) for e in endpoints] == [2, 2, 2]
    first_page = endpoints[0]["deliveries"]
    assert first_page["pageInfo"]["hasNextPage"] is True
    ids = [decode_global_id(e["node"]["id"])[1] for e in first_page["edges"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    seen = list(ids)
    after = first_page["pageInfo"]["endCursor"]
    while after is not None:
        page = (await gql(app.client, query, after=after, headers=account.headers)).ok()
        connection = page["me"]["webhookEndpoints"][0]["deliveries"]
        seen += [decode_global_id(e["node"]["id"])[1] for e in connection["edges"]]
        after = (
            connection["pageInfo"]["endCursor"] if connection["pageInfo"]["hasNextPage"] else None
        )
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == 9
    failed = (await gql(app.client, query, s="FAILED", headers=account.headers)).ok()
    assert all(e["deliveries"]["edges"] == [] for e in failed["me"]["webhookEndpoints"])
    bad = await gql(app.client, query, after="nonsense", headers=account.headers)
    assert bad.error_codes() == ["BAD_USER_INPUT"]


async def test_retention_deletes_old_succeeded_only(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account, _ = await _endpoint(app, receiver, "/retention")
    await make_alerts(db, account.user_id, 5)
    await deliver(db, app.settings)
    now = datetime.now(UTC)
    days = app.settings.webhook_retention_days
    failed_days = app.settings.webhook_failed_retention_days
    d = tables.webhook_deliveries
    async with db.begin() as conn:
        ids = (
            (
                await conn.execute(
                    sa.select(d.c.id).where(d.c.user_id == account.user_id).order_by(d.c.id)
                )
            )
            .scalars()
            .all()
        )
        ages = [  # (status, age in days)
            ("SUCCEEDED", days + 1),  # purged
            ("SUCCEEDED", days - 1),  # kept
            ("DEAD", days + 1),  # kept: failures are kept longer
            ("DEAD", failed_days + 1),  # purged
            ("CANCELLED", failed_days - 1),  # kept
        ]
        for delivery_id, (status, age) in zip(ids, ages, strict=True):
            await conn.execute(
                sa.update(d)
                .where(d.c.id == delivery_id)
                .values(status=status, updated_at=now - timedelta(days=age))
            )
    purged = await retention(db, app.settings, now)
    assert purged["succeeded"] >= 1
    assert purged["failed"] >= 1
    async with db.connect() as conn:
        left = (
            (await conn.execute(sa.select(d.c.id).where(d.c.user_id == account.user_id)))
            .scalars()
            .all()
        )
        attempts = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(tables.webhook_attempts)
            .where(tables.webhook_attempts.c.delivery_id.in_([ids[0], ids[3]]))
        )
    assert sorted(left) == [ids[1], ids[2], ids[4]]
    assert attempts == 0  # gone with their deliveries


async def _alert_row(db: Database, alert_id: int) -> dict[str, Any]:
    a, s = tables.alerts, tables.sales
    async with db.connect() as conn:
        row = (
            (
                await conn.execute(
                    sa.select(
                        a.c.created_at,
                        a.c.property_id,
                        a.c.sale_id,
                        a.c.saved_search_id,
                        s.c.price,
                        s.c.contract_date,
                    )
                    .select_from(a.join(s, s.c.id == a.c.sale_id))
                    .where(a.c.id == alert_id)
                )
            )
            .mappings()
            .one()
        )
    return dict(row)


async def test_digest_body_describes_its_sales(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    account, _ = await _endpoint(app, receiver, "/digest", ["DIGEST"])
    async with db.connect() as conn:
        sales = (
            await conn.execute(
                sa.select(tables.sales.c.id, tables.sales.c.price)
                .order_by(tables.sales.c.id)
                .limit(3)
            )
        ).all()
    data = json.dumps({"period": "2026-12-01", "matchCount": 3, "saleIds": [s[0] for s in sales]})
    await make_alerts(db, account.user_id, 1, kind="DIGEST", data=data)
    await deliver(db, app.settings)
    (request,) = receiver.on("/digest")
    body = request.verified
    assert body["type"] == "alerts.digest"
    assert body["data"]["period"] == "2026-12-01"
    assert body["data"]["matchCount"] == 3
    matches = body["data"]["matches"]
    assert [m["sale"]["id"] for m in matches] == [encode_global_id("Sale", s[0]) for s in sales]
    assert [m["sale"]["price"] for m in matches] == [s[1] for s in sales]
    assert all(m["property"]["address"].endswith("TEMPE NSW 2044") for m in matches)


async def test_a_second_job_for_one_delivery_sends_it_once(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    """Two jobs of one delivery (a replay while its retry waited, a lease recovered): each
    attempt is claimed by one of them, so the receiver hears it once."""
    account, _ = await _endpoint(app, receiver, "/twice")
    await make_alerts(db, account.user_id, 1)
    d = tables.webhook_deliveries
    async with db.begin() as conn:
        delivery_id = await conn.scalar(sa.select(d.c.id).where(d.c.user_id == account.user_id))
        for _ in range(3):
            await jobs.enqueue(conn, "webhook.deliver", {"delivery_id": delivery_id})
    await deliver(db, app.settings)
    assert len(receiver.on("/twice")) == 1
    (delivery,) = await _deliveries(app, account)
    assert delivery["status"] == "SUCCEEDED"
    assert len(delivery["attempts"]) == 1


async def test_an_attempt_cut_short_is_made_again(
    app: RunningApp, db: Database, receiver: Receiver
) -> None:
    """A worker that dies mid-attempt (claimed, never recorded) leaves the attempt due again
    once its hold expires; the retry carries the same webhook-id."""
    account, _ = await _endpoint(app, receiver, "/cut")
    await make_alerts(db, account.user_id, 1)
    d = tables.webhook_deliveries
    async with db.connect() as conn:
        delivery_id = await conn.scalar(sa.select(d.c.id).where(d.c.user_id == account.user_id))
    now = datetime.now(UTC)
    assert await webhook_repo.claim_attempt(db, delivery_id, now, now + timedelta(minutes=1))
    await deliver(db, app.settings)
    assert receiver.on("/cut") == []  # held: the dead worker's attempt might still land
    await time_travel(db)
    await deliver(db, app.settings)
    (request,) = receiver.on("/cut")
    assert request.verify_error is None
    assert (await _deliveries(app, account))[0]["status"] == "SUCCEEDED"


@pytest.mark.parametrize("compiled", [True, False])
async def test_isolation_through_the_cache(
    webhooks_database: str, receiver: Receiver, compiled: bool
) -> None:
    """The same document from two users, the two-tier cache on (Redis), on either executor:
    each sees only their own endpoints and deliveries."""
    settings = redis_cache_settings(webhooks_database, PROPINTEL_COMPILED_EXECUTION=compiled)
    async with running_app_with_redis(settings) as cached:
        db: Database = cached.state.db
        query = """{ me { webhookEndpoints { id url deliveries(first: 5) { edges { node {
            id webhookId } } } } } }"""
        seen = []
        for n in range(2):
            account, created = await _endpoint(cached, receiver, f"/cached{n}{compiled}")
            await make_alerts(db, account.user_id, 1)
            for _ in range(2):  # twice: the second may come from a cache
                data = (await gql(cached.client, query, headers=account.headers)).ok()
                (endpoint,) = data["me"]["webhookEndpoints"]
                assert endpoint["id"] == created["endpoint"]["id"]
                (edge,) = endpoint["deliveries"]["edges"]
                seen.append(edge["node"]["webhookId"])
        assert seen[0] == seen[1] != seen[2] == seen[3]


async def test_another_users_endpoints_are_not_reachable_through_set_user_role(
    app: RunningApp, receiver: Receiver
) -> None:
    """setUserRole answers with the target account: its endpoints stay its own."""
    from app.auth.principal import Role
    from tests.support.credentials import bearer

    owner, _ = await _endpoint(app, receiver, "/through-role")
    email = (await gql(app.client, "{ me { email } }", headers=owner.headers)).ok()["me"]["email"]
    admin_id = (await new_account(app.client)).user_id
    answer = await gql(
        app.client,
        """mutation($e: String!) { setUserRole(email: $e, role: USER) {
            email webhookEndpoints { url } } }""",
        e=email,
        headers=bearer(admin_id, Role.ADMIN),
    )
    assert answer.error_codes() == ["FORBIDDEN"]
    assert "through-role" not in answer.response.text


def test_retry_after_a_receiver_cannot_break() -> None:
    """Absurd or non-ASCII digits in Retry-After are capped or ignored, never raised."""
    from datetime import UTC, datetime

    from app.webhooks.schedule import LONGEST_DELAY, parse_retry_after

    now = datetime.now(UTC)
    assert parse_retry_after("99999999999999", now) == LONGEST_DELAY
    assert parse_retry_after("\u00b2", now) is None
    assert parse_retry_after("120", now) is not None
