"""Guard for bench/: the statement count of each benchmark query stays fixed.

The same documents the benchmark sends (bench/run.py), on the test slice; a change that adds
a statement to one of them fails here before it shows up as a slower benchmark. On
PostgreSQL a compiled plan builds Q1, Q2 and Q4's JSON in one statement (the row and its
first sales together: app/graphql/json_fields.py); Strawberry's executor and SQLite take two.
"""

from __future__ import annotations

import httpx
import pytest

from bench import run as bench
from schema.ids import to_global_id
from tests.support.graphql import gql


async def first_property_id(client: httpx.AsyncClient) -> str:
    data = (
        await gql(
            client,
            '{ properties(first: 1, filter: {localityName: "TEMPE"}) { edges { node { id } } } }',
        )
    ).ok()
    return str(data["properties"]["edges"][0]["node"]["id"])


def json_path(backend_url: str, executor: str) -> bool:
    return executor == "compiled" and backend_url.startswith("postgresql")


async def test_q1_property_with_sales_costs_one_statement_on_the_json_path_else_two(
    executor_client: httpx.AsyncClient, backend_url: str, executor: str
) -> None:
    query = f"""query($id: ID!) {{ property(id: $id) {{ {bench.PROPERTY_FIELDS}
        sales(first: 10) {{ edges {{ node {{ {bench.SALE_FIELDS} }} }} }} }} }}"""
    response = await gql(executor_client, query, id=await first_property_id(executor_client))
    assert response.ok()["property"]["sales"]["edges"]
    assert response.statements == (1 if json_path(backend_url, executor) else 2)


@pytest.mark.parametrize("pages", [1, 3])
async def test_q2_and_q4_locality_pages_cost_one_statement_on_the_json_path_else_two(
    executor_client: httpx.AsyncClient, pages: int, backend_url: str, executor: str
) -> None:
    request = bench.body(bench.ours_page(20, 5), name="ERSKINEVILLE", postcode="2043")
    after = None
    for _ in range(pages):
        response = await gql(executor_client, request["query"], **request["variables"], after=after)
        page = response.ok()["properties"]
        assert len(page["edges"]) == 20
        assert response.statements == (1 if json_path(backend_url, executor) else 2)
        after = page["pageInfo"]["endCursor"]


async def test_q3_localities_with_stats_cost_two_statements(
    executor_client: httpx.AsyncClient,
) -> None:
    stats = "salesCount medianPrice p25Price p75Price medianPricePerM2"
    response = await gql(
        executor_client,
        f"{{ localities(first: 20) {{ edges {{ node {{ name stats {{ {stats} }} }} }} }} }}",
    )
    assert response.ok()["localities"]["edges"]
    assert response.statements == 2


def test_global_ids_used_by_the_bench_match_the_schema() -> None:
    assert to_global_id("Property", 5) == "UHJvcGVydHk6NQ=="
