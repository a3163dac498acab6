"""The core path of alerts on the embedded SQLite default: saved searches and watches per
user, a recorded sale matched once (SALE_MATCHED, PROPERTY_SOLD, a DAILY digest), a load-data
of a raw weekly zip, and `Property.isWatched` per caller with the L1 cache on.

Same SQL as on PostgreSQL (db/repositories/alerts.py); SQLite has no row-level security, so
the WHERE clauses alone keep users apart, which these tests check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.alerts.tasks import AlertTasks, previous_day
from app.cli import load_sales
from db import tables
from db.engine import Database
from tests.support.alerts import (
    CREATE,
    IS_WATCHED,
    MARK,
    MINE,
    RAW_WEEK,
    WATCH,
    alerts_of,
    new_user,
    nodes,
    outbox_through_the_worker,
    record_sale,
    rerun,
    run_recorded,
    search_input,
    tempe_properties,
)
from tests.support.apps import RunningApp, running_app
from tests.support.databases import load_small
from tests.support.graphql import gql
from tests.support.settings import l1_cache_settings, settings_for


@pytest.fixture(scope="module")
def sqlite_alerts_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('alerts') / 'alerts.sqlite3'}"
    load_small(url)
    return url


@pytest.fixture(scope="module")
async def app(sqlite_alerts_url: str) -> AsyncIterator[RunningApp]:
    async with running_app(settings_for(sqlite_alerts_url)) as app:
        yield app


async def test_a_recorded_sale_is_matched_once_on_sqlite(app: RunningApp) -> None:
    client = app.client
    alice, bob = await new_user(client), await new_user(client)
    place = (await tempe_properties(client))[0]
    instant = (await gql(client, CREATE, headers=alice.headers, input=search_input("Tempe"))).ok()[
        "createSavedSearch"
    ]
    (
        await gql(client, CREATE, headers=alice.headers, input=search_input("Tempe daily", "DAILY"))
    ).ok()
    (
        await gql(
            client,
            CREATE,
            headers=bob.headers,
            input=search_input("cheap", localityName="TEMPE", maxLastSalePrice=1000),
        )
    ).ok()
    (await gql(client, WATCH, headers=bob.headers, id=place["id"], pct=3)).ok()
    mine = (await gql(client, MINE, headers=alice.headers)).ok()["me"]
    assert [s["name"] for s in mine["savedSearches"]] == ["Tempe", "Tempe daily"]
    theirs = (await gql(client, MINE, headers=bob.headers)).ok()["me"]
    assert [s["name"] for s in theirs["savedSearches"]] == ["cheap"]
    assert [w["property"]["id"] for w in theirs["watches"]] == [place["id"]]

    sale = await record_sale(client, place["id"], 955_000)
    payloads = await run_recorded(app)
    assert len(payloads) == 1
    assert await rerun(app, payloads) == 0

    (matched,) = nodes(await alerts_of(client, alice))
    assert matched["kind"] == "SALE_MATCHED"
    assert matched["sale"] == {
        "id": sale["id"],
        "price": 955_000,
        "contractDate": date.today().isoformat(),
    }
    assert matched["savedSearch"] == {"id": instant["id"], "name": "Tempe"}
    assert matched["property"]["id"] == place["id"]
    (sold,) = nodes(await alerts_of(client, bob))  # the 1,000 cap kept "cheap" out
    assert (sold["kind"], sold["sale"]["id"]) == ("PROPERTY_SOLD", sale["id"])

    assert (await gql(client, MARK, headers=alice.headers, ids=[sold["id"]])).error_codes() == [
        "NOT_FOUND"
    ]
    assert (await gql(client, MARK, headers=alice.headers, all=True)).ok() == {"markAlertsRead": 1}
    assert nodes(await alerts_of(client, alice, unread=True)) == []

    tasks = AlertTasks(app.state.db, app.state.broker)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert len((await tasks.digest("DAILY", previous_day(tomorrow))).alert_ids) >= 1
    digest = nodes(await alerts_of(client, alice))[0]
    assert digest["kind"] == "DIGEST"
    assert digest["matchCount"] == 1
    assert digest["matchedSales"] == [{"id": sale["id"]}]
    assert digest["savedSearch"]["name"] == "Tempe daily"


async def test_load_data_makes_alerts_on_sqlite(app: RunningApp, sqlite_alerts_url: str) -> None:
    """A search on a place of the raw weekly zip (TEMPE aside, its sales are new here)."""
    client = app.client
    user = await new_user(client)
    (
        await gql(
            client, CREATE, headers=user.headers, input=search_input("Sydney 2000", postcode="2000")
        )
    ).ok()
    db: Database = app.state.db
    async with db.connect() as conn:
        before = (await conn.execute(sa.select(sa.func.max(tables.sales.c.id)))).scalar_one()
    summary = await load_sales(settings_for(sqlite_alerts_url), [RAW_WEEK], show_progress=False)
    async with db.connect() as conn:
        expected = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(
                    tables.sales.join(tables.properties).join(
                        tables.localities,
                        tables.localities.c.id == tables.properties.c.locality_id,
                    )
                )
                .where(tables.sales.c.id > before, tables.localities.c.postcode == "2000")
            )
        ).scalar_one()
    assert expected > 0
    assert summary.alerts_created >= expected
    got = nodes(await alerts_of(client, user, first=100))
    assert len(got) == expected
    assert len({a["sale"]["id"] for a in got}) == expected
    assert all(a["kind"] == "SALE_MATCHED" for a in got)


async def test_is_watched_per_caller_with_the_l1_cache_on_sqlite(sqlite_alerts_url: str) -> None:
    async with running_app(l1_cache_settings(sqlite_alerts_url)) as running:
        client = running.client
        alice, bob = await new_user(client), await new_user(client)
        place = (await tempe_properties(client))[3]["id"]
        (await gql(client, WATCH, headers=alice.headers, id=place)).ok()
        for _ in range(2):
            for user, expected in ((alice, True), (bob, False)):
                response = await client.post(
                    "/graphql",
                    json={"query": IS_WATCHED, "variables": {"id": place}},
                    headers=user.headers,
                )
                assert response.json()["data"]["property"]["isWatched"] is expected
                assert response.headers.get("x-cache") != "hit"


async def test_the_embedded_worker_runs_the_outbox_on_sqlite(sqlite_alerts_url: str) -> None:
    """The embedded default: the in-process worker claims recordSale's job and matches it."""
    await outbox_through_the_worker(sqlite_alerts_url, 2, 2_222_222)
