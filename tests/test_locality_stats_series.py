"""Locality.statsSeries over HTTP on both backends, checked against the CSV files: each
period's count and quartiles (linear interpolation between ranks, as percentile_cont and
Locality.stats) equal a direct computation; a list of localities costs one statement more."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import httpx
import pytest

from tests.support.graphql import gql
from tests.support.reference import Reference, RefSale, quartiles

SERIES = """
query($name: String!, $postcode: String!, $interval: StatsInterval!, $from: Date, $to: Date,
      $strata: Boolean) {
  locality(name: $name, postcode: $postcode) {
    statsSeries(interval: $interval, from: $from, to: $to, isStrata: $strata) {
      period periodStart salesCount medianPrice p25Price p75Price
    }
  }
}
"""


def period(day: date, interval: str) -> tuple[str, str]:
    if interval == "YEAR":
        return str(day.year), f"{day.year}-01-01"
    quarter = (day.month - 1) // 3 + 1
    return f"{day.year}-Q{quarter}", date(day.year, 3 * quarter - 2, 1).isoformat()


def expected(sales: list[RefSale], interval: str) -> list[dict[str, object]]:
    periods: dict[tuple[str, str], list[int]] = defaultdict(list)
    for sale in sales:
        periods[period(sale.contract_date, interval)].append(sale.price)
    rows = []
    for (label, start), prices in sorted(periods.items(), key=lambda item: item[0][1]):
        q = quartiles(prices)
        assert q is not None
        rows.append(
            {
                "period": label,
                "periodStart": start,
                "salesCount": len(prices),
                "p25Price": pytest.approx(q[0], rel=1e-12),
                "medianPrice": pytest.approx(q[1], rel=1e-12),
                "p75Price": pytest.approx(q[2], rel=1e-12),
            }
        )
    return rows


@pytest.mark.parametrize(
    "window",
    [
        {"interval": "QUARTER"},
        {"interval": "YEAR", "strata": True},
        {"interval": "QUARTER", "from": "2019-02-15", "to": "2021-11-30", "strata": False},
    ],
    ids=["quarters", "years-strata", "window"],
)
@pytest.mark.parametrize("locality", [("ERSKINEVILLE", "2043"), ("BRANXTON", "2335")])
async def test_series_matches_a_direct_computation(
    client: httpx.AsyncClient,
    reference: Reference,
    locality: tuple[str, str],
    window: dict[str, object],
) -> None:
    name, postcode = locality
    data = (await gql(client, SERIES, name=name, postcode=postcode, **window)).ok()
    series = data["locality"]["statsSeries"]
    sales = reference.market_prices(
        locality,
        date_from=date.fromisoformat(str(window["from"])) if "from" in window else None,
        date_to=date.fromisoformat(str(window["to"])) if "to" in window else None,
        strata=window.get("strata"),  # type: ignore[arg-type]
    )
    assert len(series) > 3
    assert series == expected(sales, str(window["interval"]))


async def test_default_interval_is_quarter_and_an_empty_window_is_empty(
    client: httpx.AsyncClient,
) -> None:
    query = """{ locality(name: "TEMPE", postcode: "2044") {
        q: statsSeries(from: "2023-01-01", to: "2023-12-31") { period periodStart }
        none: statsSeries(to: "1980-01-01") { period } } }"""
    data = (await gql(client, query)).ok()["locality"]
    assert [p["period"] for p in data["q"]] == ["2023-Q1", "2023-Q2", "2023-Q3", "2023-Q4"]
    assert data["q"][1]["periodStart"] == "2023-04-01"
    assert data["none"] == []


async def test_inverted_window_is_bad_user_input(client: httpx.AsyncClient) -> None:
    response = await gql(
        client,
        SERIES,
        name="TEMPE",
        postcode="2044",
        interval="YEAR",
        to="2020-01-01",
        **{"from": "2021-01-01"},
    )
    assert response.error_codes() == ["BAD_USER_INPUT"]
    assert "`from`" in response.errors[0]["message"]


async def test_a_list_of_localities_costs_one_statement_more(
    executor_client: httpx.AsyncClient,
) -> None:
    query = """{ localities(first: 10) { nodes { name
        statsSeries(interval: YEAR, from: "2015-01-01") { period salesCount } } } }"""
    response = await gql(executor_client, query)
    nodes = response.ok()["localities"]["nodes"]
    assert sum(1 for n in nodes if n["statsSeries"]) >= 4
    assert response.statements == 2  # the page, every locality's series
