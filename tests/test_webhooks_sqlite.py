"""Webhooks on the embedded SQLite default (the core path): an endpoint made over HTTP, an
alert's delivery by the real worker to a real receiver, verified with `standardwebhooks`; a
500 retried with the same webhook-id; a replay; retention. PostgreSQL's tests are in
tests/test_webhooks.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.ids import decode_global_id
from app.webhooks.tasks import retention
from db import tables
from db.engine import Database
from tests.support.apps import RunningApp, running_app
from tests.support.databases import load_small
from tests.support.graphql import gql
from tests.support.receiver import Receiver, Reply
from tests.support.settings import settings_for
from tests.support.webhooks import CREATE, REPLAY, deliver, make_alerts, new_account

DELIVERIES = """{ me { webhookEndpoints { deliveries(first: 10) { edges { node { id webhookId
    status attempts { statusCode error } } } } } } }"""


@pytest.fixture(scope="module")
def sqlite_webhooks_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('webhooks') / 'webhooks.sqlite3'}"
    load_small(url)
    return url


@pytest.fixture(scope="module")
async def app(sqlite_webhooks_url: str) -> AsyncIterator[RunningApp]:
    async with running_app(settings_for(sqlite_webhooks_url)) as running:
        yield running


async def test_core_path_on_sqlite(app: RunningApp) -> None:
    db: Database = app.state.db
    async with Receiver() as receiver:
        account = await new_account(app.client)
        created = (
            await gql(
                app.client,
                CREATE,
                url=receiver.url("/lite"),
                events=["SALE_MATCHED"],
                headers=account.headers,
            )
        ).ok()["createWebhookEndpoint"]
        receiver.secrets["/lite"] = [created["secret"]]
        receiver.script("/lite", Reply(500))
        (alert_id,) = await make_alerts(db, account.user_id, 1)
        await deliver(db, app.settings)
        first, second = receiver.on("/lite")
        endpoint_pk = decode_global_id(created["endpoint"]["id"])[1]
        assert first.webhook_id == second.webhook_id == f"msg_{endpoint_pk}_{alert_id}"
        assert first.body == second.body
        assert second.verify_error is None
        assert second.verified["type"] == "sale.matched"
        assert json.loads(second.body)["data"]["alertId"]

        data = (await gql(app.client, DELIVERIES, headers=account.headers)).ok()
        (edge,) = data["me"]["webhookEndpoints"][0]["deliveries"]["edges"]
        delivery = edge["node"]
        assert delivery["status"] == "SUCCEEDED"
        assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]

        replayed = await gql(app.client, REPLAY, id=delivery["id"], headers=account.headers)
        assert replayed.ok()["replayWebhookDelivery"]["status"] == "PENDING"
        await deliver(db, app.settings)
        third = receiver.on("/lite")[-1]
        assert len(receiver.on("/lite")) == 3
        assert third.webhook_id == first.webhook_id
        assert third.verify_error is None

    # Retention: an old succeeded delivery goes, with its attempts.
    d = tables.webhook_deliveries
    old = datetime.now(UTC) - timedelta(days=app.settings.webhook_retention_days + 1)
    async with db.begin() as conn:
        await conn.execute(
            sa.update(d).where(d.c.user_id == account.user_id).values(updated_at=old)
        )
    assert (await retention(db, app.settings, datetime.now(UTC)))["succeeded"] == 1
    async with db.connect() as conn:
        attempts = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(tables.webhook_attempts)
            .where(tables.webhook_attempts.c.user_id == account.user_id)
        )
    assert attempts == 0
