"""Address search on the embedded SQLite path (FTS5), the same core cases as on PostgreSQL:
every third property of the slice typed one of the three ways in turn (PostgreSQL's test
types every property all three ways; this keeps the SQLite run to ~2,400 searches), typos,
unit forms, localities, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.apps import AppFactory, running_app
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
from tests.support.settings import settings_for


@pytest.fixture(scope="module")
async def sqlite_client(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings_for(sqlite_url)) as running:
        yield running.client


async def test_properties_are_found_typed_one_of_three_ways(
    sqlite_client: httpx.AsyncClient,
) -> None:
    await check_every_property_is_found(sqlite_client, rotate=True, every=3)


@pytest.mark.parametrize(("typed", "expected"), CASES)
async def test_typed_forms_find_the_address_first(
    sqlite_client: httpx.AsyncClient, typed: str, expected: str
) -> None:
    found = await top(sqlite_client, typed)
    assert found, typed
    assert found[0]["address"] == expected, [f["address"] for f in found]


@pytest.mark.parametrize(("typed", "expected"), SUGGEST_CASES)
async def test_suggest_localities(
    sqlite_client: httpx.AsyncClient, typed: str, expected: tuple[str, str]
) -> None:
    assert expected in (await suggested(sqlite_client, typed))[:2]


@pytest.mark.parametrize(("variables", "argument"), BAD_INPUT[::2])
async def test_bad_input_names_the_argument(
    sqlite_client: httpx.AsyncClient, variables: dict[str, Any], argument: str
) -> None:
    await check_bad_input(sqlite_client, SEARCH, variables, argument)
    await check_bad_input(sqlite_client, SUGGEST, variables, argument)


async def test_searches_and_series_are_served_from_the_cache_the_second_time(
    sqlite_app: AppFactory,
) -> None:
    """The embedded default (cache on, L1): a repeated search, and a repeated series, cost
    no statement, and answer the same."""
    series = """{ locality(name: "TEMPE", postcode: "2044") {
        statsSeries(interval: YEAR, from: "2020-01-01") { period periodStart salesCount
        medianPrice } } }"""
    async with sqlite_app() as running:
        for document, variables in ((SEARCH, {"q": "20 wentworth st tem"}), (series, {})):
            first = await gql(running.client, document, **variables)
            again = await gql(running.client, document, **variables)
            assert first.ok() == again.ok()
            assert first.statements
            assert again.statements == 0
