"""The compiled executor (app/graphql) answers exactly as the standard executor does.

Two apps over the same database, one with compiled plans and one without, get the same
documents: every field of every type, aliases, named and inline fragments, __typename, the
Node interface, nulls, variables and literals, cursors, and bad input. The response bodies
must be equal byte for byte (key order included); documents a plan covers must have run
compiled, the others (and every error) through the standard executor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

import app.graphql.executor
from app.graphql.executor import ExecutionCounts
from app.graphql.plan import compile_operation
from tests.support.apps import RunningApp, both_executors

SALE = """id contractDate settlementDate price dealingNumber saleCode interestPct areaM2
    parcelsInSale isMarketSale nonMarketReasons __typename"""
STATS = "salesCount medianPrice p25Price p75Price medianPricePerM2"
LOCALITY = f"id name postcode state district latitude longitude stats {{ {STATS} }}"
PROPERTY = f"""id vgPropertyId strataLot address propertyName unitNumber houseNumber streetName
    postcode district areaM2 zoning nature primaryPurpose isStrata latitude longitude
    lastSalePrice lastSaleDate locality {{ {LOCALITY} }} lastSale {{ {SALE} }}"""
PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"


@dataclass(frozen=True)
class Case:
    name: str
    query: str
    variables: dict[str, Any]
    compiled: bool = True
    """Whether a plan covers it (and it has no error)."""


def cases(property_id: str, sale_id: str, locality_id: str, cursor: str) -> list[Case]:
    return [
        Case(
            "property with every field and its sales",
            f"""query($id: ID!) {{ property(id: $id) {{ {PROPERTY}
                sales(first: 3) {{ {PAGE_INFO} edges {{ cursor node {{ {SALE} }} }}
                nodes {{ id price }} }} }} }}""",
            {"id": property_id},
        ),
        Case(
            "aliases, literals and a missing property",
            f"""{{ a: property(id: "{property_id}") {{ vgPropertyId x: address }}
                b: property(id: "UHJvcGVydHk6OTk5OTk5OTk5") {{ id }} }}""",
            {},
        ),
        Case(
            "filtered page with every filter field, sales, cursors",
            f"""query($after: String) {{ properties(first: 7, after: $after, orderBy: LAST_SALE_PRICE_DESC,
                filter: {{localityName: "erskineville", postcode: "2043", district: null,
                isStrata: false, nature: RESIDENCE, minAreaM2: 10, maxAreaM2: 100000,
                minLastSalePrice: 1000, maxLastSalePrice: 50000000, soldAfter: "2001-01-01",
                soldBefore: "2030-01-01"}}) {{ {PAGE_INFO}
                edges {{ cursor node {{ {PROPERTY} sales(first: 2) {{ edges {{ node {{ {SALE} }} }} }} }} }} }} }}""",
            {"after": None},
        ),
        Case(
            "bbox filter, date order, nodes shortcut",
            """{ properties(first: 5, orderBy: LAST_SALE_DATE_DESC,
                filter: {bbox: {minLat: -34, minLon: 150, maxLat: -33, maxLon: 152}}) {
                nodes { id lastSaleDate locality { name } } } }""",
            {},
        ),
        Case(
            "locality by name with stats windows and its property pages",
            f"""query($name: String!, $postcode: String!, $after: String) {{
                locality(name: $name, postcode: $postcode) {{ {LOCALITY}
                  strata: stats(isStrata: true) {{ {STATS} }}
                  recent: stats(from: "2020-01-01", to: "2024-12-31") {{ {STATS} }}
                  properties(first: 4, after: $after, orderBy: LAST_SALE_PRICE_ASC) {{ {PAGE_INFO}
                    edges {{ cursor node {{ id lastSalePrice address }} }} }} }} }}""",
            {"name": "Tempe", "postcode": "2044", "after": None},
        ),
        Case(
            "locality walk with a cursor",
            """query($after: String) { locality(name: "ERSKINEVILLE", postcode: "2043") {
                properties(first: 3, after: $after) { edges { cursor node { id } } } } }""",
            {"after": cursor},
        ),
        Case(
            "localities with search and stats",
            f"""{{ localities(search: "er", first: 5) {{ {PAGE_INFO}
                edges {{ cursor node {{ {LOCALITY} }} }} nodes {{ name }} }}
                all: localities {{ nodes {{ id name }} }} }}""",
            {},
        ),
        Case(
            "node for each type, with inline and named fragments",
            """query($p: ID!, $s: ID!, $l: ID!) {
                p: node(id: $p) { id __typename ...PropertyBits }
                s: node(id: $s) { id ... on Sale { price property { id address } } }
                l: node(id: $l) { ... on Locality { name stats { salesCount } } ... on Node { id } }
              }
              fragment PropertyBits on Property { vgPropertyId sales(first: 1) { nodes { price } } }""",
            {"p": property_id, "s": sale_id, "l": locality_id},
        ),
        Case(
            "sale to property to locality and back",
            f"""{{ node(id: "{sale_id}") {{ ... on Sale {{ property {{ locality {{ properties(first: 2)
                {{ nodes {{ sales(first: 1) {{ nodes {{ property {{ id }} }} }} }} }} }} }} }} }} }}""",
            {},
        ),
        Case(
            "directives run through the standard executor",
            """query($all: Boolean!) { localities(first: 2) { nodes { name @include(if: $all) id } } }""",
            {"all": False},
            compiled=False,
        ),
        Case(
            "introspection runs through the standard executor",
            '{ __type(name: "Property") { name } localities(first: 1) { nodes { name } } }',
            {},
            compiled=False,
        ),
        Case(
            "page size over the cap: the standard executor reports it",
            "{ localities(first: 500) { nodes { name } } }",
            {},
            compiled=False,
        ),
        Case(
            "bad cursor in a nested field",
            f"""{{ property(id: "{property_id}") {{ id sales(after: "nope") {{ nodes {{ id }} }} }} }}""",
            {},
            compiled=False,
        ),
        Case(
            "bad global id",
            """{ property(id: "bm9wZQ==") { id } }""",
            {},
            compiled=False,
        ),
        Case(
            "variables that do not coerce",
            """query($id: ID!) { property(id: $id) { id } }""",
            {"id": {"not": "an id"}},
            compiled=False,
        ),
        Case(
            "validation error",
            "{ property { nope } }",
            {},
            compiled=False,
        ),
    ]


@pytest.fixture(scope="module")
async def apps(backend_url: str) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    async with both_executors(backend_url) as apps:
        yield apps


async def post(app: RunningApp, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await app.client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return dict(orjson.loads(response.content))


async def ids(app: RunningApp) -> tuple[str, str, str, str]:
    data = (
        await post(
            app,
            """{ locality(name: "ERSKINEVILLE", postcode: "2043") { id
                properties(first: 3) { pageInfo { endCursor }
                  nodes { id sales(first: 1) { nodes { id } } } } } }""",
            {},
        )
    )["data"]["locality"]
    first = data["properties"]["nodes"][0]
    return (
        first["id"],
        first["sales"]["nodes"][0]["id"],
        data["id"],
        data["properties"]["pageInfo"]["endCursor"],
    )


async def test_compiled_and_standard_answers_are_identical(
    apps: tuple[RunningApp, RunningApp],
) -> None:
    compiled_app, standard_app = apps
    counts: ExecutionCounts = compiled_app.state.graphql.compiled.counts
    for case in cases(*await ids(standard_app)):
        before = (counts.compiled, counts.fallbacks)
        mine = await post(compiled_app, case.query, case.variables)
        reference = await post(standard_app, case.query, case.variables)
        mine_statements = mine.pop("extensions", {}).get("sqlStatements")
        reference_statements = reference.pop("extensions", {}).get("sqlStatements")
        assert orjson.dumps(mine) == orjson.dumps(reference), case.name
        ran_compiled = counts.compiled == before[0] + 1
        assert ran_compiled == case.compiled, case.name
        if case.compiled:
            assert "errors" not in mine, case.name
            assert mine_statements is not None
            assert reference_statements is not None
            assert mine_statements <= reference_statements, case.name
        else:
            assert counts.compiled == before[0], case.name


async def test_a_plan_is_compiled_once_per_document(
    apps: tuple[RunningApp, RunningApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled_app, _ = apps
    compiled: list[str] = []

    def counting(schema: Any, query: str, *args: Any) -> Any:
        compiled.append(query)
        return compile_operation(schema, query, *args)

    monkeypatch.setattr(app.graphql.executor, "compile_operation", counting)
    query = "query($n: Int!) { localities(first: $n) { nodes { name } } }"
    for n in (1, 2, 3):
        body = await post(compiled_app, query, {"n": n})
        assert len(body["data"]["localities"]["nodes"]) == n
    assert compiled == [query]
