"""Saved searches, watches and alerts as a client uses them (tests/test_alerts*.py): the
documents, users with their ids, and running `sales.recorded` jobs as a worker would."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from app.alerts.tasks import AlertTasks
from db import tables
from db.engine import Database
from schema.ids import from_global_id
from tests.support.accounts import bearer_token, signed_in
from tests.support.apps import RunningApp
from tests.support.credentials import ADMIN
from tests.support.graphql import GraphQLResponse, gql
from tests.support.settings import DATA_DIR

CREATE = """mutation($input: CreateSavedSearchInput!) { createSavedSearch(input: $input) {
    id name frequency createdAt lastMatchedAt
    filter { localityName postcode district isStrata nature minLastSalePrice
        maxLastSalePrice soldAfter bbox { minLat minLon maxLat maxLon } } } }"""
UPDATE = """mutation($id: ID!, $input: UpdateSavedSearchInput!) {
    updateSavedSearch(id: $id, input: $input) { id name frequency filter { localityName } } }"""
DELETE = "mutation($id: ID!) { deleteSavedSearch(id: $id) }"
WATCH = """mutation($id: ID!, $pct: Float) { watchProperty(id: $id, estimateChangePct: $pct) {
    id estimateChangePct property { id address } } }"""
WATCH_DEFAULT = "mutation($id: ID!) { watchProperty(id: $id) { id estimateChangePct } }"
UNWATCH = "mutation($id: ID!) { unwatchProperty(id: $id) }"
MINE = """{ me { savedSearches { id name frequency filter { localityName } }
    watches { estimateChangePct property { id address } } } }"""
ALERTS = """query($first: Int, $after: String, $unread: Boolean) {
    me { alerts(first: $first, after: $after, unreadOnly: $unread) {
        edges { cursor node { id kind createdAt readAt sale { id price contractDate }
            property { id address } savedSearch { id name } matchCount
            matchedSales { id } estimateChange { previous current changePct } } }
        pageInfo { hasNextPage endCursor } } } }"""
MARK = "mutation($ids: [ID!], $all: Boolean) { markAlertsRead(ids: $ids, all: $all) }"
RECORD_SALE = """mutation($input: RecordSaleInput!) { recordSale(input: $input) { id price } }"""
PROPERTIES = """query($filter: PropertyFilter) { properties(first: 5, filter: $filter) {
    nodes { id address postcode district isStrata latitude longitude } } }"""
IS_WATCHED = "query($id: ID!) { property(id: $id) { id address isWatched } }"
PROPERTY_ONLY = "query($id: ID!) { property(id: $id) { id address } }"

RAW_WEEK = DATA_DIR / "raw" / "20240108.zip"


class User:
    def __init__(self, headers: dict[str, str], user_id: int) -> None:
        self.headers = headers
        self.id = user_id


async def new_user(client: httpx.AsyncClient) -> User:
    session = await signed_in(client)
    headers = bearer_token(session["accessToken"])
    me = (await gql(client, "{ me { id } }", headers=headers)).ok()["me"]
    return User(headers, from_global_id(me["id"], types=("User",))[1])


async def tempe_properties(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    found = (await gql(client, PROPERTIES, filter={"localityName": "TEMPE"})).ok()
    return list(found["properties"]["nodes"])


def search_input(name: str, frequency: str = "INSTANT", **filter_: Any) -> dict[str, Any]:
    return {"name": name, "frequency": frequency, "filter": filter_ or {"localityName": "Tempe"}}


async def record_sale(client: httpx.AsyncClient, property_id: str, price: int) -> dict[str, Any]:
    dealing = f"AL{datetime.now(UTC).strftime('%H%M%S%f')}"
    sale = {
        "propertyId": property_id,
        "contractDate": date.today().isoformat(),
        "price": price,
        "dealingNumber": dealing,
    }
    return dict((await gql(client, RECORD_SALE, headers=ADMIN, input=sale)).ok()["recordSale"])


async def run_recorded(app: RunningApp) -> list[dict[str, Any]]:
    """Runs the queued `sales.recorded` jobs as a worker would (then marks them done), in
    order; returns their payloads (`rerun` them to run them again)."""
    db: Database = app.state.db
    jobs = tables.jobs
    async with db.begin() as conn:
        rows = (
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.kind == "sales.recorded", jobs.c.status == "QUEUED")
                .values(status="SUCCEEDED", finished_at=datetime.now(UTC))
                .returning(jobs.c.id, jobs.c.payload)
            )
        ).all()
    payloads = [json.loads(payload) for _, payload in sorted(rows)]
    await rerun(app, payloads)
    return payloads


async def rerun(app: RunningApp, payloads: list[dict[str, Any]]) -> int:
    """Runs these `sales.recorded` payloads' matching; returns how many alerts it made."""
    tasks = AlertTasks(app.state.db, app.state.broker)
    made = 0
    for values in payloads:
        result = await tasks.match(values["first_sale_id"], values["last_sale_id"])
        made += len(result.alert_ids)
    return made


async def alerts_of(client: httpx.AsyncClient, user: User, **variables: Any) -> GraphQLResponse:
    return await gql(client, ALERTS, headers=user.headers, **variables)


def nodes(response: GraphQLResponse) -> list[dict[str, Any]]:
    return [edge["node"] for edge in response.ok()["me"]["alerts"]["edges"]]


async def outbox_through_the_worker(url: str, property_index: int, price: int) -> None:
    """An app with its in-process worker: a user watches a property, an admin records a sale
    of it, the worker runs the outbox job; the user has exactly that PROPERTY_SOLD alert."""
    from tests.support.apps import running_app
    from tests.support.settings import settings_for

    async with running_app(settings_for(url, PROPINTEL_WORKER=True)) as running:
        worker = running.state.worker
        assert worker is not None
        client = running.client
        user = await new_user(client)
        place = (await tempe_properties(client))[property_index]
        (await gql(client, WATCH, headers=user.headers, id=place["id"])).ok()
        sale = await record_sale(client, place["id"], price)
        await worker.drain(timeout=20)
        got = nodes(await alerts_of(client, user))
        assert [(a["kind"], a["sale"]["id"]) for a in got] == [("PROPERTY_SOLD", sale["id"])]
