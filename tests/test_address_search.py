"""Address search on PostgreSQL over HTTP: every property of the slice found from its own
address typed three ways (tests/support/search.py says how an answer is judged), typos and
unit forms, localities, bad input, one statement per search."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.apps import AppFactory, forget_namespace
from tests.support.graphql import gql
from tests.support.search import (
    BAD_INPUT,
    CASES,
    SEARCH,
    SUGGEST,
    SUGGEST_CASES,
    check_bad_input,
    check_every_property_is_found,
    suggested,
    top,
)
from tests.support.settings import REDIS_URL, new_namespace


async def test_every_property_is_found_from_its_address_typed_three_ways(
    pg_client: httpx.AsyncClient,
) -> None:
    await check_every_property_is_found(pg_client, rotate=False)


@pytest.mark.parametrize(("typed", "expected"), CASES)
async def test_typed_forms_find_the_address_first(
    pg_client: httpx.AsyncClient, typed: str, expected: str
) -> None:
    found = await top(pg_client, typed)
    assert found, typed
    assert found[0]["address"] == expected, [f["address"] for f in found]


async def test_the_unit_decides_between_the_lots_of_a_building(
    pg_client: httpx.AsyncClient,
) -> None:
    for unit in ("709", "512"):
        found = await top(pg_client, f"{unit}/2 stovemaker lane")
        assert found[0]["unitNumber"] == unit
    building = await top(pg_client, "2 stovemaker lane erskineville", first=20)
    assert len(building) == 20
    assert {f["address"].split("/", 1)[1] for f in building if f["unitNumber"]} == {
        "2 STOVEMAKER LANE, ERSKINEVILLE NSW 2043"
    }


async def test_nothing_to_match_is_an_empty_list(pg_client: httpx.AsyncClient) -> None:
    assert await top(pg_client, "99999 nowhere boulevard") == []
    assert await top(pg_client, "/// ,,,") == []


@pytest.mark.parametrize(("typed", "expected"), SUGGEST_CASES)
async def test_suggest_localities(
    pg_client: httpx.AsyncClient, typed: str, expected: tuple[str, str]
) -> None:
    names = await suggested(pg_client, typed)
    assert expected in names[:2], names


@pytest.mark.parametrize(("variables", "argument"), BAD_INPUT)
@pytest.mark.parametrize("document", [SEARCH, SUGGEST], ids=["addresses", "localities"])
async def test_bad_input_names_the_argument(
    pg_client: httpx.AsyncClient, document: str, variables: dict[str, Any], argument: str
) -> None:
    await check_bad_input(pg_client, document, variables, argument)


async def test_a_search_is_one_statement(executor_client: httpx.AsyncClient) -> None:
    """Both backends and executors: the property, its address and its locality come with the
    search's one statement."""
    response = await gql(executor_client, SEARCH, q="2 stovemaker lane erskineville", first=20)
    assert len(response.ok()["searchAddresses"]) == 20
    assert response.statements == 1
    typo = await gql(executor_client, SEARCH, q="2 stovemakr lane", first=3)
    assert typo.ok()["searchAddresses"]
    assert typo.statements == 1
    suggest = await gql(executor_client, SUGGEST, q="ers")
    assert suggest.ok()["suggestLocalities"]
    assert suggest.statements == 1


async def test_a_second_process_reads_searches_and_series_from_redis(
    pg_redis_app: AppFactory,
) -> None:
    """Cached as the cache's codec knows them (records and scalars): what one process stored
    in Redis, another reads back and answers the same without a statement."""
    namespace = new_namespace()
    series = """{ locality(name: "TEMPE", postcode: "2044") {
        statsSeries(from: "2022-01-01") { period periodStart salesCount p25Price } } }"""
    documents: list[tuple[str, dict[str, Any]]] = [
        (SEARCH, {"q": "709/2 stovemaker la"}),
        (SUGGEST, {"q": "ers"}),
        (series, {}),
    ]
    try:
        async with pg_redis_app(PROPINTEL_CACHE_NAMESPACE=namespace) as writer:
            stored = [(await gql(writer.client, d, **v)).ok() for d, v in documents]
        async with pg_redis_app(PROPINTEL_CACHE_NAMESPACE=namespace) as reader:
            for (document, variables), answer in zip(documents, stored, strict=True):
                again = await gql(reader.client, document, **variables)
                assert again.ok() == answer
                assert again.statements == 0
            # Another document over the same search: the search's entry itself, decoded.
            other = "query($q: String!) { searchAddresses(query: $q) { property { address } } }"
            addresses = await gql(reader.client, other, q="709/2 stovemaker la")
            assert [m["property"]["address"] for m in addresses.ok()["searchAddresses"]] == [
                m["property"]["address"] for m in stored[0]["searchAddresses"]
            ]
            assert addresses.statements == 0
    finally:
        await forget_namespace(REDIS_URL, namespace)
