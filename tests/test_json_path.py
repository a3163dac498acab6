"""The JSON path (PostgreSQL builds the response's JSON: app/graphql/json_fields.py) answers
byte for byte what Strawberry's executor answers, over HTTP, on real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from bench import run as bench
from tests.support.apps import RunningApp, both_executors

Apps = tuple[RunningApp, RunningApp]


@pytest.fixture(scope="module")
async def apps(postgres_url: str) -> AsyncIterator[Apps]:
    async with both_executors(postgres_url) as apps:
        yield apps


async def answers(apps: Apps, query: str, **variables: Any) -> tuple[dict[str, Any], bytes]:
    """The compiled app's body (checked equal to the reference's but for the statement count)
    and the raw bytes of its data."""
    compiled, standard = apps
    payload = {"query": query, "variables": variables}
    mine = await compiled.client.post("/graphql", json=payload)
    reference = await standard.client.post("/graphql", json=payload)
    assert mine.status_code == reference.status_code == 200
    mine_body, reference_body = orjson.loads(mine.content), orjson.loads(reference.content)
    statements = (mine_body.get("extensions") or {}).pop("sqlStatements", None)
    (reference_body.get("extensions") or {}).pop("sqlStatements", None)
    assert orjson.dumps(mine_body) == orjson.dumps(reference_body)
    mine_body.setdefault("extensions", {})["sqlStatements"] = statements
    return mine_body, mine.content


Q1 = f"""query($id: ID!) {{ property(id: $id) {{ {bench.PROPERTY_FIELDS}
    sales(first: 10) {{ edges {{ node {{ {bench.SALE_FIELDS} }} }} }} }} }}"""


async def first_property_id(apps: Apps) -> str:
    body, _ = await answers(
        apps, '{ properties(first: 1, filter: {localityName: "TEMPE"}) { edges { node { id } } } }'
    )
    return str(body["data"]["properties"]["edges"][0]["node"]["id"])


async def test_q1_is_one_statement(apps: Apps) -> None:
    body, _ = await answers(apps, Q1, id=await first_property_id(apps))
    assert body["data"]["property"]["sales"]["edges"]
    assert body["extensions"]["sqlStatements"] == 1


async def test_q2_pages(apps: Apps) -> None:
    request = bench.body(bench.ours_page(20, 5), name="ERSKINEVILLE", postcode="2043")
    after = None
    for _ in range(3):
        body, _raw = await answers(apps, request["query"], **request["variables"], after=after)
        page = body["data"]["properties"]
        assert len(page["edges"]) == 20
        assert body["extensions"]["sqlStatements"] == 1
        after = page["pageInfo"]["endCursor"]
