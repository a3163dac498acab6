"""Saved searches, watches and alerts over HTTP, on PostgreSQL (and SQLite for the core path,
tests/test_alerts_sqlite.py): CRUD and per-user isolation on both executors, bad input,
`Property.isWatched` per caller through the operation cache, matching of recordSale and
load-data sales (exactly once), digests, and bounded statement counts.

The module has a database of its own (`load_small`: TEMPE's 2023 and 2024 sales): its tests
record sales. Jobs run by calling the handlers (app/alerts/tasks.py) on the queued jobs, as a
worker would, so each test decides when matching happens; one test lets the app's own worker
drain the queue end to end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from app.alerts.tasks import AlertTasks, previous_day, previous_week
from app.cli import load_sales
from db import tables
from db.engine import Database
from schema.ids import from_global_id, to_global_id
from tests.support.alerts import (
    CREATE,
    DELETE,
    IS_WATCHED,
    MARK,
    MINE,
    PROPERTY_ONLY,
    RAW_WEEK,
    UNWATCH,
    UPDATE,
    WATCH,
    WATCH_DEFAULT,
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
from tests.support.apps import RunningApp, both_executors, running_app, running_app_with_redis
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)
from tests.support.graphql import gql
from tests.support.settings import redis_cache_settings, settings_for


@pytest.fixture(scope="module")
def alerts_database() -> Iterator[str]:
    name = pg_database_name("alerts")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="module")
async def app(alerts_database: str) -> AsyncIterator[RunningApp]:
    async with running_app(settings_for(alerts_database, PROPINTEL_MAX_SAVED_SEARCHES=3)) as app:
        yield app


# -- CRUD and isolation ----------------------------------------------------------------------


async def test_saved_searches_and_watches_are_each_users_own(alerts_database: str) -> None:
    async with both_executors(alerts_database) as apps:
        client = apps[0].client
        alice, bob = await new_user(client), await new_user(client)
        place = await tempe_properties(client)
        for running in apps:
            client = running.client
            created = (
                await gql(
                    client,
                    CREATE,
                    headers=alice.headers,
                    input=search_input(
                        "Tempe houses",
                        "DAILY",
                        localityName="Tempe",
                        isStrata=False,
                        nature="RESIDENCE",
                        maxLastSalePrice=2_000_000,
                        soldAfter="2024-01-01",
                    ),
                )
            ).ok()["createSavedSearch"]
            assert created["name"] == "Tempe houses"
            assert created["frequency"] == "DAILY"
            assert created["lastMatchedAt"] is None
            assert created["filter"] == {
                "localityName": "Tempe",  # as given; matching compares upper case
                "postcode": None,
                "district": None,
                "isStrata": False,
                "nature": "RESIDENCE",
                "minLastSalePrice": None,
                "maxLastSalePrice": 2_000_000,
                "soldAfter": "2024-01-01",
                "bbox": None,
            }
            watched = (
                await gql(client, WATCH, headers=alice.headers, id=place[0]["id"], pct=7.5)
            ).ok()["watchProperty"]
            assert watched["estimateChangePct"] == 7.5
            assert watched["property"] == {"id": place[0]["id"], "address": place[0]["address"]}

            mine = (await gql(client, MINE, headers=alice.headers)).ok()["me"]
            assert [s["id"] for s in mine["savedSearches"]] == [created["id"]]
            assert mine["watches"] == [{"estimateChangePct": 7.5, "property": watched["property"]}]
            theirs = (await gql(client, MINE, headers=bob.headers)).ok()["me"]
            assert theirs == {"savedSearches": [], "watches": []}

            # Bob cannot touch Alice's search: NOT_FOUND, as if it did not exist.
            for document, variables in (
                (UPDATE, {"id": created["id"], "input": {"name": "mine now"}}),
                (DELETE, {"id": created["id"]}),
            ):
                refused = await gql(client, document, headers=bob.headers, **variables)
                assert refused.error_codes() == ["NOT_FOUND"]

            updated = (
                await gql(
                    client,
                    UPDATE,
                    headers=alice.headers,
                    id=created["id"],
                    input={"name": "Newtown", "filter": {"postcode": "2042"}},
                )
            ).ok()["updateSavedSearch"]
            assert updated == {
                "id": created["id"],
                "name": "Newtown",
                "frequency": "DAILY",
                "filter": {"localityName": None},
            }
            again = await gql(client, WATCH_DEFAULT, headers=alice.headers, id=place[0]["id"])
            assert again.ok()["watchProperty"] == {"id": watched["id"], "estimateChangePct": 5.0}
            assert (await gql(client, DELETE, headers=alice.headers, id=created["id"])).ok() == {
                "deleteSavedSearch": True
            }
            gone = await gql(client, DELETE, headers=alice.headers, id=created["id"])
            assert gone.error_codes() == ["NOT_FOUND"]
            unwatch = await gql(client, UNWATCH, headers=alice.headers, id=place[0]["id"])
            assert unwatch.ok() == {"unwatchProperty": True}
            twice = await gql(client, UNWATCH, headers=alice.headers, id=place[0]["id"])
            assert twice.ok() == {"unwatchProperty": False}
            assert (await gql(client, MINE, headers=alice.headers)).ok()["me"] == {
                "savedSearches": [],
                "watches": [],
            }


@pytest.mark.parametrize(
    ("filter_", "argument", "words"),
    [
        ({"isStrata": True}, "input.filter", "a saved search needs a place: filter.localityName"),
        ({}, "input.filter", "needs a place"),
        ({"postcode": "20"}, "filter.postcode", "four digits"),
        (
            {"localityName": "TEMPE", "minLastSalePrice": 9, "maxLastSalePrice": 1},
            "filter.minLastSalePrice",
            "greater than",
        ),
        (
            {"bbox": {"minLat": -30, "minLon": 151, "maxLat": -40, "maxLon": 152}},
            "bbox.minLat",
            "greater than",
        ),
    ],
)
async def test_filters_too_broad_or_invalid_are_refused(
    app: RunningApp, filter_: dict[str, Any], argument: str, words: str
) -> None:
    user = await new_user(app.client)
    refused = await gql(
        app.client, CREATE, headers=user.headers, input={"name": "x", "filter": filter_}
    )
    assert refused.error_codes() == ["BAD_USER_INPUT"]
    assert refused.errors[0]["extensions"]["argument"] == argument
    assert words in refused.errors[0]["message"]


async def test_limits_ranges_ids_and_anonymous(app: RunningApp) -> None:
    client = app.client
    user, other = await new_user(client), await new_user(client)
    for n in range(3):  # PROPINTEL_MAX_SAVED_SEARCHES=3 in this module
        (await gql(client, CREATE, headers=user.headers, input=search_input(f"s{n}"))).ok()
    over = await gql(client, CREATE, headers=user.headers, input=search_input("one more"))
    assert over.error_codes() == ["BAD_USER_INPUT"]
    assert "at most 3 saved searches per user" in over.errors[0]["message"]
    # The limit is per user.
    (await gql(client, CREATE, headers=other.headers, input=search_input("theirs"))).ok()

    name = await gql(client, CREATE, headers=other.headers, input=search_input(" "))
    assert name.error_codes() == ["BAD_USER_INPUT"]

    place = (await tempe_properties(client))[0]["id"]
    for pct in (0, -1, 100.5):
        refused = await gql(client, WATCH, headers=user.headers, id=place, pct=pct)
        assert refused.error_codes() == ["BAD_USER_INPUT"], pct
        assert refused.errors[0]["extensions"]["argument"] == "estimateChangePct"
    assert (await gql(client, WATCH, headers=user.headers, id=place, pct=100)).ok()
    missing = to_global_id("Property", 987_654_321)
    assert (await gql(client, WATCH, headers=user.headers, id=missing)).error_codes() == [
        "NOT_FOUND"
    ]
    assert (await gql(client, UNWATCH, headers=user.headers, id=missing)).error_codes() == [
        "NOT_FOUND"
    ]
    for bad in ("nonsense", to_global_id("Sale", 1)):
        assert (await gql(client, WATCH, headers=user.headers, id=bad)).error_codes() == [
            "BAD_USER_INPUT"
        ]
        assert (await gql(client, DELETE, headers=user.headers, id=bad)).error_codes() == [
            "BAD_USER_INPUT"
        ]
    unknown = to_global_id("SavedSearch", 987_654_321)
    assert (await gql(client, DELETE, headers=user.headers, id=unknown)).error_codes() == [
        "NOT_FOUND"
    ]
    assert (await gql(client, MARK, headers=user.headers)).error_codes() == ["BAD_USER_INPUT"]
    both = await gql(client, MARK, headers=user.headers, ids=[], all=True)
    assert both.error_codes() == ["BAD_USER_INPUT"]

    for document, variables in (
        (CREATE, {"input": search_input("anon")}),
        (WATCH, {"id": place}),
        (UNWATCH, {"id": place}),
        (MARK, {"all": True}),
    ):
        assert (await gql(client, document, **variables)).error_codes() == ["UNAUTHENTICATED"]
    assert (await gql(client, MINE)).ok() == {"me": None}
    anonymous = (await gql(client, IS_WATCHED, id=place)).ok()["property"]
    assert anonymous["isWatched"] is False


# -- isWatched through the caches ------------------------------------------------------------


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "standard"])
async def test_is_watched_is_per_caller_with_the_operation_cache_on(
    alerts_database: str, compiled: bool
) -> None:
    settings = redis_cache_settings(alerts_database, PROPINTEL_COMPILED_EXECUTION=compiled)
    async with running_app_with_redis(settings) as running:
        client = running.client
        alice, bob = await new_user(client), await new_user(client)
        place = (await tempe_properties(client))[1]["id"]
        (await gql(client, WATCH, headers=alice.headers, id=place)).ok()

        # The control: a public document is answered from the operation cache.
        for headers in (alice.headers, bob.headers):
            response = await client.post(
                "/graphql",
                json={"query": PROPERTY_ONLY, "variables": {"id": place}},
                headers=headers,
            )
        if compiled:  # (the whole-operation cache is the compiled path's)
            assert response.headers.get("x-cache") == "hit"

        for _ in range(3):
            for user, expected in ((alice, True), (bob, False)):
                response = await client.post(
                    "/graphql",
                    json={"query": IS_WATCHED, "variables": {"id": place}},
                    headers=user.headers,
                )
                body = response.json()
                assert "errors" not in body, body
                assert body["data"]["property"]["isWatched"] is expected
                assert response.headers.get("x-cache") != "hit"
        if compiled:  # planned (one statement per batch), never stored
            assert running.state.graphql.compiled.counts.compiled >= 6


# -- matching --------------------------------------------------------------------------------


async def test_a_recorded_sale_alerts_matching_searches_and_watchers_once(
    app: RunningApp,
) -> None:
    client = app.client
    alice, bob, carol = await new_user(client), await new_user(client), await new_user(client)
    place = (await tempe_properties(client))[2]
    matching = (
        await gql(
            client,
            CREATE,
            headers=alice.headers,
            input=search_input(
                "Tempe under 3M",
                localityName="tempe",
                minLastSalePrice=1000,
                maxLastSalePrice=3_000_000,
            ),
        )
    ).ok()["createSavedSearch"]
    by_postcode = (
        await gql(
            client, CREATE, headers=carol.headers, input=search_input("2044", postcode="2044")
        )
    ).ok()["createSavedSearch"]
    too_cheap = (
        await gql(
            client,
            CREATE,
            headers=bob.headers,
            input=search_input("Tempe over 5M", localityName="TEMPE", minLastSalePrice=5_000_000),
        )
    ).ok()["createSavedSearch"]
    elsewhere = (
        await gql(
            client,
            CREATE,
            headers=bob.headers,
            input=search_input("Aberdare", localityName="ABERDARE"),
        )
    ).ok()["createSavedSearch"]
    assert too_cheap["id"] != elsewhere["id"]
    (await gql(client, WATCH, headers=bob.headers, id=place["id"])).ok()

    sale = await record_sale(client, place["id"], 1_234_567)
    payloads = await run_recorded(app)
    sale_id = from_global_id(sale["id"])[1]
    assert payloads == [{"first_sale_id": sale_id, "last_sale_id": sale_id}]  # the outbox
    assert await rerun(app, payloads) == 0  # a job run twice adds nothing

    alice_alerts = nodes(await alerts_of(client, alice))
    assert [(a["kind"], a["savedSearch"]) for a in alice_alerts] == [
        ("SALE_MATCHED", {"id": matching["id"], "name": "Tempe under 3M"})
    ]
    (alert,) = alice_alerts
    assert alert["sale"] == {
        "id": sale["id"],
        "price": 1_234_567,
        "contractDate": date.today().isoformat(),
    }
    assert alert["property"] == {"id": place["id"], "address": place["address"]}
    assert (alert["readAt"], alert["matchCount"], alert["estimateChange"]) == (None, None, None)
    assert alert["matchedSales"] == []
    assert place["postcode"] == "2044"
    assert [a["savedSearch"]["id"] for a in nodes(await alerts_of(client, carol))] == [
        by_postcode["id"]
    ]
    bob_alerts = nodes(await alerts_of(client, bob))
    assert [(a["kind"], a["sale"]["id"], a["savedSearch"]) for a in bob_alerts] == [
        ("PROPERTY_SOLD", sale["id"], None)
    ]
    last = await gql(client, "{ me { savedSearches { lastMatchedAt } } }", headers=alice.headers)
    assert last.ok()["me"]["savedSearches"][0]["lastMatchedAt"] is not None

    # The watched property's estimate is to be checked; alerts reach no one else.
    db: Database = app.state.db
    async with db.connect() as conn:
        checks = (
            await conn.execute(
                sa.select(tables.jobs.c.payload).where(tables.jobs.c.kind == "estimates.check")
            )
        ).all()
    assert any(json.loads(p)["property_ids"] == [from_global_id(place["id"])[1]] for (p,) in checks)
    other = await new_user(client)
    assert nodes(await alerts_of(client, other)) == []

    # Bob's alert is not Alice's to mark; exactly one of ids/all.
    refused = await gql(client, MARK, headers=alice.headers, ids=[bob_alerts[0]["id"]])
    assert refused.error_codes() == ["NOT_FOUND"]
    assert nodes(await alerts_of(client, bob))[0]["readAt"] is None
    assert (await gql(client, MARK, headers=alice.headers, ids=[alert["id"]])).ok() == {
        "markAlertsRead": 1
    }
    assert (await gql(client, MARK, headers=alice.headers, ids=[alert["id"]])).ok() == {
        "markAlertsRead": 0
    }
    assert nodes(await alerts_of(client, alice, unread=True)) == []
    assert nodes(await alerts_of(client, alice))[0]["readAt"] is not None
    assert (await gql(client, MARK, headers=bob.headers, all=True)).ok() == {"markAlertsRead": 1}


async def test_alert_pages_and_their_statement_count(app: RunningApp) -> None:
    client = app.client
    user = await new_user(client)
    (await gql(client, CREATE, headers=user.headers, input=search_input("all of Tempe"))).ok()
    for place in (await tempe_properties(client))[:4]:
        (await gql(client, WATCH, headers=user.headers, id=place["id"])).ok()
        await record_sale(client, place["id"], 900_000)
    await run_recorded(app)

    everything = nodes(await alerts_of(client, user, first=50))
    assert len(everything) == 8  # each sale: SALE_MATCHED and PROPERTY_SOLD
    ids = [from_global_id(a["id"], types=("Alert",))[1] for a in everything]
    assert ids == sorted(ids, reverse=True)  # newest first

    seen: list[str] = []
    after = None
    while True:
        page = await alerts_of(client, user, first=3, after=after)
        seen += [n["id"] for n in nodes(page)]
        info = page.ok()["me"]["alerts"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == [a["id"] for a in everything]

    # Nested sale, property and saved search: the same statements for 1 alert or 8.
    # (the first 2: a PROPERTY_SOLD and a SALE_MATCHED, so every nested field is read)
    counts = {n: (await alerts_of(client, user, first=n)).statements for n in (2, 8)}
    assert counts[2] == counts[8]
    assert counts[8] is not None
    assert counts[8] <= 12
    bad = await alerts_of(client, user, after="not-a-cursor")
    assert bad.error_codes() == ["BAD_USER_INPUT"]


async def test_digests_gather_a_periods_matches(app: RunningApp) -> None:
    client = app.client
    user = await new_user(client)
    daily = (
        await gql(client, CREATE, headers=user.headers, input=search_input("daily", "DAILY"))
    ).ok()["createSavedSearch"]
    weekly = (
        await gql(client, CREATE, headers=user.headers, input=search_input("weekly", "WEEKLY"))
    ).ok()["createSavedSearch"]
    sales = [
        await record_sale(client, place["id"], 700_000 + i)
        for i, place in enumerate((await tempe_properties(client))[:3])
    ]
    await run_recorded(app)
    assert nodes(await alerts_of(client, user)) == []  # gathered, not sent one by one

    tasks = AlertTasks(app.state.db, app.state.broker)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    made = await tasks.digest("DAILY", previous_day(tomorrow))  # today's matches
    assert user.id in made.user_ids
    assert (await tasks.digest("DAILY", previous_day(tomorrow))).alert_ids == []  # once
    next_week = (datetime.now(UTC) + timedelta(days=7)).isocalendar()
    await tasks.digest("WEEKLY", previous_week(f"{next_week[0]}-W{next_week[1]:02d}"))

    digests = nodes(await alerts_of(client, user))
    assert {d["savedSearch"]["name"] for d in digests} == {"daily", "weekly"}
    for digest in digests:
        assert digest["kind"] == "DIGEST"
        assert digest["matchCount"] == 3
        assert [s["id"] for s in digest["matchedSales"]] == [s["id"] for s in sales]
        assert digest["sale"] is None
    assert daily["id"] != weekly["id"]
    assert previous_week("2026-W01").label == "2025-W52"
    assert previous_day("2026-03-01").start == datetime(2026, 2, 28, tzinfo=UTC)


async def test_load_data_alerts_matching_searches(app: RunningApp, alerts_database: str) -> None:
    """A raw weekly VG zip: its sales outside TEMPE are new to this database."""
    client = app.client
    user = await new_user(client)
    db: Database = app.state.db
    async with db.connect() as conn:
        before = (await conn.execute(sa.select(sa.func.max(tables.sales.c.id)))).scalar_one()
    summary = await load_sales(settings_for(alerts_database), [RAW_WEEK], show_progress=False)
    assert summary.sales_inserted > 100
    async with db.connect() as conn:
        # The busiest locality of the file, to save a search on it (then load again).
        locality, count = (
            await conn.execute(
                sa.select(tables.localities.c.name, sa.func.count())
                .select_from(
                    tables.sales.join(tables.properties).join(
                        tables.localities, tables.localities.c.id == tables.properties.c.locality_id
                    )
                )
                .where(tables.sales.c.id > before)
                .group_by(tables.localities.c.name)
                .order_by(sa.func.count().desc(), tables.localities.c.name)
                .limit(1)
            )
        ).one()
        # Forget the load, so that loading the file again inserts the same sales anew.
        await conn.execute(sa.delete(tables.ingested_files))
        new_ids = sa.select(tables.sales.c.id).where(tables.sales.c.id > before)
        await conn.execute(sa.delete(tables.alerts).where(tables.alerts.c.sale_id.in_(new_ids)))
        await conn.execute(sa.delete(tables.sales).where(tables.sales.c.id > before))
        await conn.commit()
    (
        await gql(
            client, CREATE, headers=user.headers, input=search_input("busy", localityName=locality)
        )
    ).ok()
    again = await load_sales(settings_for(alerts_database), [RAW_WEEK], show_progress=False)
    assert again.sales_inserted == summary.sales_inserted
    assert again.alerts_created >= count
    assert user.id in again.alert_user_ids
    got = nodes(await alerts_of(client, user, first=100))
    assert len(got) == count
    assert {a["kind"] for a in got} == {"SALE_MATCHED"}
    assert len({a["sale"]["id"] for a in got}) == count
    assert await queued_batches(db) == 0  # matched by the load: its outbox job dropped


async def queued_batches(db: Database) -> int:
    jobs = tables.jobs
    rows = await db.fetch_all(
        sa.select(jobs.c.id).where(
            jobs.c.kind == "sales.recorded",
            jobs.c.status == "QUEUED",
            jobs.c.dedupe_key.like("sales.recorded:%"),
        )
    )
    return len(rows)


async def test_a_load_that_dies_before_matching_leaves_its_outbox_job(
    app: RunningApp, alerts_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's sales commit with a `sales.recorded` job for them: should the load die
    before it matches them itself, a worker makes their alerts."""
    from db.repositories import alerts as alerts_repo

    client = app.client
    db: Database = app.state.db
    user = await new_user(client)
    async with db.connect() as conn:
        # The file's sales anew (an earlier test may have loaded it): forget them.
        sales = tables.sales
        of_file = sa.select(sales.c.id).where(sales.c.source_file.like(f"{RAW_WEEK.name}%"))
        await conn.execute(sa.delete(tables.ingested_files))
        await conn.execute(sa.delete(tables.alerts).where(tables.alerts.c.sale_id.in_(of_file)))
        matches = tables.saved_search_matches
        await conn.execute(sa.delete(matches).where(matches.c.sale_id.in_(of_file)))
        await conn.execute(sa.delete(sales).where(sales.c.id.in_(of_file)))
        before = (await conn.execute(sa.select(sa.func.max(sales.c.id)))).scalar_one()
        await conn.commit()
    from collections import Counter

    from db.ingest.readers import SourceRow, read_sales

    postcodes = Counter(r.raw.postcode for r in read_sales(RAW_WEEK) if isinstance(r, SourceRow))
    postcode = postcodes.most_common(1)[0][0].strip()
    search = search_input("busy", postcode=postcode)
    (await gql(client, CREATE, headers=user.headers, input=search)).ok()

    async def dies(*_: object) -> object:
        raise RuntimeError("the load dies here")

    monkeypatch.setattr(alerts_repo, "match_sales", dies)
    with pytest.raises(RuntimeError, match="dies here"):
        await load_sales(settings_for(alerts_database), [RAW_WEEK], show_progress=False)
    monkeypatch.undo()
    assert await queued_batches(db) >= 1
    assert nodes(await alerts_of(client, user, first=100)) == []
    await run_recorded(app)
    assert await queued_batches(db) == 0
    got = nodes(await alerts_of(client, user, first=100))
    async with db.connect() as conn:
        expected = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(tables.sales.join(tables.properties))
                .where(tables.sales.c.id > before, tables.properties.c.postcode == postcode)
            )
        ).scalar_one()
    assert expected > 0
    assert len(got) == expected


async def test_the_apps_worker_runs_the_outbox_end_to_end(alerts_database: str) -> None:
    """No handler called by hand: recordSale's job is claimed and run by the in-process
    worker (app/background.py registers app/alerts/tasks.py)."""
    await outbox_through_the_worker(alerts_database, 4, 1_111_111)


async def test_an_estimate_change_reads_its_data(app: RunningApp) -> None:
    """ESTIMATE_CHANGED alerts are made by the estimate watches (app/estimates/watches.py),
    which write `data` as {"previous", "current", "changePct", "modelVersion"}."""
    client = app.client
    user = await new_user(client)
    place = (await tempe_properties(client))[0]
    db: Database = app.state.db
    async with db.begin() as conn:
        await conn.execute(
            sa.insert(tables.alerts).values(
                user_id=user.id,
                kind="ESTIMATE_CHANGED",
                created_at=datetime.now(UTC),
                property_id=from_global_id(place["id"])[1],
                data=json.dumps(
                    {
                        "previous": 1_000_000,
                        "current": 1_080_000,
                        "changePct": 8.0,
                        "modelVersion": 3,
                    }
                ),
                dedupe_key=f"E:test:{user.id}",
            )
        )
    (alert,) = nodes(await alerts_of(client, user))
    assert alert["kind"] == "ESTIMATE_CHANGED"
    assert alert["estimateChange"] == {
        "previous": 1_000_000,
        "current": 1_080_000,
        "changePct": 8.0,
    }
    assert alert["property"]["id"] == place["id"]
    assert (alert["sale"], alert["savedSearch"], alert["matchCount"]) == (None, None, None)


async def test_is_watched_costs_one_batch_for_a_whole_page(alerts_database: str) -> None:
    """A page of properties with `isWatched`: the same statements for 2 or 20 (one
    owner-scoped query for the batch), on both executors."""
    page = """query($n: Int!) { properties(first: $n, filter: {localityName: "TEMPE"}) {
        nodes { id isWatched } } }"""
    async with both_executors(alerts_database) as apps:
        user = await new_user(apps[0].client)
        place = (await tempe_properties(apps[0].client))[0]["id"]
        (await gql(apps[0].client, WATCH, headers=user.headers, id=place)).ok()
        for running in apps:
            answers = {
                n: await gql(running.client, page, headers=user.headers, n=n) for n in (2, 20)
            }
            assert answers[2].statements == answers[20].statements
            found = answers[20].ok()["properties"]["nodes"]
            assert len(found) == 20
            assert [p["id"] for p in found if p["isWatched"]] == [place]
            anonymous = (await gql(running.client, page, n=20)).ok()["properties"]["nodes"]
            assert not any(p["isWatched"] for p in anonymous)


# -- the outbox of watches and corrections ---------------------------------------------------

UPDATE_PROPERTY = """mutation($id: ID!, $input: UpdatePropertyInput!) {
    updateProperty(id: $id, input: $input) { id zoning } }"""


async def queued_checks(app: RunningApp, property_id: int) -> int:
    jobs = tables.jobs
    rows = await app.state.db.fetch_all(
        sa.select(jobs.c.payload).where(jobs.c.kind == "estimates.check", jobs.c.status == "QUEUED")
    )
    return sum(property_id in json.loads(row[0])["property_ids"] for row in rows)


async def test_a_new_watch_and_a_correction_queue_estimate_checks(app: RunningApp) -> None:
    """watchProperty queues the watch's first estimate in its own (owner-scoped: row-level
    security) transaction; updateProperty of a watched property queues a check, since a
    corrected area or zoning moves the estimate; of an unwatched one, nothing."""
    client = app.client
    alice = await new_user(client)
    # Two properties no other test of this module watches (their watches would count).
    unwatched_rows = await app.state.db.fetch_all(
        sa.select(tables.properties.c.id)
        .where(~tables.properties.c.id.in_(sa.select(tables.watches.c.property_id)))
        .order_by(tables.properties.c.id.desc())
        .limit(2)
    )
    watched_pk, unwatched_pk = (int(row[0]) for row in unwatched_rows)
    watched = {"id": to_global_id("Property", watched_pk)}
    unwatched = {"id": to_global_id("Property", unwatched_pk)}
    before = await queued_checks(app, watched_pk)
    (await gql(client, WATCH, headers=alice.headers, id=watched["id"], pct=7.5)).ok()
    assert await queued_checks(app, watched_pk) == before + 1
    # Watching again only changes the threshold: no second first estimate.
    (await gql(client, WATCH, headers=alice.headers, id=watched["id"], pct=9)).ok()
    assert await queued_checks(app, watched_pk) == before + 1

    from tests.support.credentials import ADMIN

    for property_, pk, more in ((watched, watched_pk, 1), (unwatched, unwatched_pk, 0)):
        queued = await queued_checks(app, pk)
        (
            await gql(
                client, UPDATE_PROPERTY, headers=ADMIN, id=property_["id"], input={"zoning": "R3"}
            )
        ).ok()
        assert await queued_checks(app, pk) == queued + more
