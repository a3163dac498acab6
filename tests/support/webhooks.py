"""Helpers of the webhook tests: documents, accounts with their user id, alerts made as the
alerts pipeline makes them, and the real job worker run until nothing is due."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import sqlalchemy as sa

from app.ids import decode_global_id
from app.jobs.registry import JobRegistry
from app.jobs.worker import Worker
from app.settings import Settings
from app.webhooks.tasks import register
from db import tables
from db.engine import Database
from db.repositories.webhooks import create_deliveries
from tests.support.accounts import bearer_token, signed_in
from tests.support.graphql import gql

CREATE = """mutation($url: String!, $events: [AlertKind!]!) {
    createWebhookEndpoint(url: $url, events: $events) {
        endpoint { id url events status disabledReason createdAt } secret } }"""
ROTATE = """mutation($id: ID!) { rotateWebhookSecret(id: $id) { endpoint { id } secret } }"""
DELETE = "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }"
REPLAY = "mutation($id: ID!) { replayWebhookDelivery(id: $id) { id webhookId status } }"
RECOVER = """mutation($id: ID!, $since: DateTime!) {
    recoverWebhookDeliveries(endpointId: $id, since: $since) }"""
ENDPOINTS = """{ me { webhookEndpoints { id url events status disabledReason
    deliveries(first: 5) { edges { node { id } } pageInfo { hasNextPage } } } } }"""


@dataclass(frozen=True)
class Account:
    user_id: int
    headers: dict[str, str]


async def new_account(client: httpx.AsyncClient) -> Account:
    session = await signed_in(client)
    headers = bearer_token(session["accessToken"])
    me = (await gql(client, "{ me { id } }", headers=headers)).ok()["me"]
    return Account(decode_global_id(me["id"])[1], headers)


async def make_alerts(
    db: Database, user_id: int, count: int, *, kind: str = "SALE_MATCHED", data: str | None = None
) -> list[int]:
    """`count` alerts of `kind` for the user (real sales, a saved search "Tempe houses"), and
    their deliveries made in the same transaction, as the matching does it."""
    now = datetime.now(UTC)
    async with db.begin() as conn:
        search_id = await conn.scalar(
            sa.insert(tables.saved_searches)
            .values(
                user_id=user_id,
                name="Tempe houses",
                frequency="INSTANT",
                filter='{"localityName": "TEMPE"}',
                anchor="L:TEMPE",
                locality_name="TEMPE",
                created_at=now,
                updated_at=now,
            )
            .returning(tables.saved_searches.c.id)
        )
        sales = (
            await conn.execute(
                sa.select(tables.sales.c.id, tables.sales.c.property_id)
                .order_by(tables.sales.c.id)
                .limit(count)
            )
        ).all()
        ids = []
        for sale_id, property_id in sales:
            alert_id = await conn.scalar(
                sa.insert(tables.alerts)
                .values(
                    user_id=user_id,
                    kind=kind,
                    created_at=now,
                    saved_search_id=search_id,
                    sale_id=None if kind == "DIGEST" else sale_id,
                    property_id=None if kind == "DIGEST" else property_id,
                    data=data,
                    dedupe_key=f"test:{uuid.uuid4().hex}",
                )
                .returning(tables.alerts.c.id)
            )
            ids.append(int(alert_id))
        await create_deliveries(conn, ids)
    return ids


async def deliver(
    db: Database, settings: Settings, *, concurrency: int = 8, within_s: float = 30
) -> int:
    """Runs the webhook jobs with the real worker until none is due; returns how many runs."""
    registry = JobRegistry()
    register(registry, db=db, settings=settings)
    worker = Worker(
        db, registry, settings, concurrency=concurrency, only_registered=True, run_periodic=False
    )
    return await worker.drain(timeout=within_s)


async def time_travel(db: Database) -> None:
    """Makes every waiting delivery (and its job) due now, as if its time had come."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with db.begin() as conn:
        d = tables.webhook_deliveries
        await conn.execute(
            sa.update(d).where(d.c.status.in_(("PENDING", "FAILED"))).values(next_attempt_at=past)
        )
        j = tables.jobs
        await conn.execute(
            sa.update(j)
            .where(j.c.kind == "webhook.deliver", j.c.status.in_(("QUEUED", "RETRYING")))
            .values(run_at=past)
        )


def today() -> date:
    return datetime.now(UTC).date()
