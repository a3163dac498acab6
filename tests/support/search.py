"""Address search checks shared by the PostgreSQL and SQLite tests: the properties of the
slice, their addresses typed the ways people type them, and how an answer is judged.

How a form is judged: the answer "is" the property when it is the property or one whose
address reads the same as far as the typed text goes (the slice has strata lots recorded
without a unit number, and a query without the unit names the building, not the lot).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from app.search.service import tokens
from tests.support.credentials import ADMIN
from tests.support.graphql import gql

SEARCH = """query($q: String!, $first: Int) { searchAddresses(query: $q, first: $first) {
    score property { id address unitNumber houseNumber streetName lastSalePrice
    locality { name postcode } } } }"""
BATCH = 150
"""Searches per request (aliases, as an admin: the role allows 200)."""
FIRST_BAR, TOP5_BAR = 0.85, 0.95
"""The issue's bars (first for 85% of properties, in the top 5 for 95%)."""

LONG = {
    "ST": "Street",
    "RD": "Road",
    "AVE": "Avenue",
    "DR": "Drive",
    "PL": "Place",
    "CL": "Close",
    "CT": "Court",
    "HWY": "Highway",
    "PDE": "Parade",
    "CCT": "Circuit",
    "GR": "Grove",
    "LANE": "La",
    "STREET": "St",
    "ROAD": "Rd",
    "WAY": "Wy",
}


@dataclass(frozen=True, slots=True)
class Listed:
    id: str
    address: str
    unit: str | None
    house: str | None
    street: str | None
    locality: str

    @property
    def building(self) -> str:
        """The address without the unit."""
        return re.sub(r"^[^/ ]+/", "", self.address) if self.unit else self.address


def lower_case(p: Listed) -> str:
    return p.address.lower()


def street_type_respelled(p: Listed) -> str:
    """'709/2 Stovemaker La, Erskineville': the other spelling of the street type, no
    state or postcode."""
    street = p.address.split(",")[0]
    words = street.split()
    if words and words[-1] in LONG:
        words[-1] = LONG[words[-1]]
    return f"{' '.join(words).title()}, {p.locality.title()}"


def without_unit_prefix(p: Listed) -> str:
    """'2 stovemaker lane erskin': no unit, the locality cut short (as typing)."""
    street = p.building.split(",")[0].lower()
    return f"{street} {p.locality.lower()[: max(4, len(p.locality) * 2 // 3)]}"


FORMS: dict[str, Callable[[Listed], str]] = {
    "lower case": lower_case,
    "street type respelled": street_type_respelled,
    "without unit, prefix": without_unit_prefix,
}


def same(form: str, target: Listed, found: dict[str, Any]) -> bool:
    """The property, or one no search can tell from it: the same address (its normalised
    tokens: "COULSON ST" is "COULSON STREET"), without the unit when the unit was not typed."""
    if found["id"] == target.id:
        return True
    address = found["address"]
    if form == "without unit, prefix":
        address = re.sub(r"^[^/ ]+/", "", address) if found["unitNumber"] else address
        return tokens(address) == tokens(target.building)
    return tokens(address) == tokens(target.address)


async def listed_properties(client: httpx.AsyncClient) -> list[Listed]:
    query = """query($after: String) { properties(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor }
        nodes { id address unitNumber houseNumber streetName locality { name } } } }"""
    found: list[Listed] = []
    after = None
    while True:
        page = (await gql(client, query, after=after)).ok()["properties"]
        found += [
            Listed(
                n["id"],
                n["address"],
                n["unitNumber"],
                n["houseNumber"],
                n["streetName"],
                n["locality"]["name"],
            )
            for n in page["nodes"]
        ]
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def search_many(
    client: httpx.AsyncClient, queries: Sequence[str], first: int = 5
) -> dict[str, list[dict[str, Any]]]:
    """Each distinct query once, BATCH per request (aliases)."""
    distinct = sorted(set(queries))
    answers: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(distinct), BATCH):
        chunk = distinct[start : start + BATCH]
        variables = ", ".join(f"$q{i}: String!" for i in range(len(chunk)))
        fields = " ".join(
            f"a{i}: searchAddresses(query: $q{i}, first: {first}) {{ property {{ id address "
            "unitNumber } }"
            for i in range(len(chunk))
        )
        data = (
            await gql(
                client,
                f"query({variables}) {{ {fields} }}",
                headers=ADMIN,
                **{f"q{i}": q for i, q in enumerate(chunk)},
            )
        ).ok()
        for i, q in enumerate(chunk):
            answers[q] = [m["property"] for m in data[f"a{i}"]]
    return answers


async def rates(
    client: httpx.AsyncClient, properties: list[Listed], *, rotate: bool = False
) -> dict[str, tuple[float, float]]:
    """(first, top 5) rates per form. `rotate`: each property typed one of the forms in turn
    (a third of the searches), not all of them."""
    result = {}
    for number, (form, typed) in enumerate(FORMS.items()):
        chosen = properties[number :: len(FORMS)] if rotate else properties
        queries = {p.id: typed(p) for p in chosen}
        answers = await search_many(client, list(queries.values()))
        first = top5 = 0
        for p in chosen:
            found = answers[queries[p.id]]
            first += bool(found) and same(form, p, found[0])
            top5 += any(same(form, p, f) for f in found[:5])
        result[form] = (first / len(chosen), top5 / len(chosen))
    return result


async def check_every_property_is_found(
    client: httpx.AsyncClient, *, rotate: bool, every: int = 1
) -> None:
    """`every`: each n-th property of the slice only (id order)."""
    properties = await listed_properties(client)
    assert len(properties) > 7000
    properties = properties[::every]
    for form, (first, top5) in (await rates(client, properties, rotate=rotate)).items():
        assert first >= FIRST_BAR, (form, first, top5)
        assert top5 >= TOP5_BAR, (form, first, top5)


async def top(client: httpx.AsyncClient, query: str, first: int = 5) -> list[dict[str, Any]]:
    answer = (await gql(client, SEARCH, q=query, first=first)).ok()["searchAddresses"]
    scores = [m["score"] for m in answer]
    assert scores == sorted(scores, reverse=True)
    return [m["property"] for m in answer]


STOVEMAKER = "709/2 STOVEMAKER LANE, ERSKINEVILLE NSW 2043"
WENTWORTH = "20 WENTWORTH ST, TEMPE NSW 2044"
ABERDARE = "110 A ABERDARE RD, ABERDARE NSW 2325"
CASES = [
    # (typed, the address of the first answer)
    ("709/2 stovemaker lane, erskineville nsw 2043", STOVEMAKER),
    ("unit 709 2 stovemaker la", STOVEMAKER),
    ("u709 2 Stovemaker Lane", STOVEMAKER),
    ("Unit 709, 2 Stovemaker Ln Erskineville", STOVEMAKER),
    # one typo per word, in the street and in the locality
    ("20 wentwroth st", WENTWORTH),
    ("20 wentworth st temep", WENTWORTH),
    ("709/2 stovemakr lane erskinevile", STOVEMAKER),
    # street types, locality or postcode or neither
    ("20 Wentworth Street, Tempe", WENTWORTH),
    ("20 WENTWORTH ST 2044", WENTWORTH),
    # as you type: the last word is a prefix (of the street type's long spelling too)
    ("20 wentworth stre", WENTWORTH),
    ("20 wentworth st te", WENTWORTH),
    # a house number's suffix, however written; punctuation
    ("110a aberdare road", ABERDARE),
    ("110 A Aberdare Rd.", ABERDARE),
]

SUGGEST = """query($q: String!, $first: Int) { suggestLocalities(query: $q, first: $first) {
    score locality { name postcode } } }"""
SUGGEST_CASES = [
    ("tem", ("TEMPE", "2044")),
    ("Erskinevile", ("ERSKINEVILLE", "2043")),
    ("2325", ("ABERDARE", "2325")),
    ("branxton 23", ("BRANXTON", "2335")),
]


async def suggested(client: httpx.AsyncClient, typed: str) -> list[tuple[str, str]]:
    found = (await gql(client, SUGGEST, q=typed, first=3)).ok()["suggestLocalities"]
    assert [m["score"] for m in found] == sorted((m["score"] for m in found), reverse=True)
    return [(m["locality"]["name"], m["locality"]["postcode"]) for m in found]


BAD_INPUT = [
    ({"q": ""}, "query"),
    ({"q": "   "}, "query"),
    ({"q": "x" * 201}, "query"),
    ({"q": "1 smith st", "first": 0}, "first"),
    ({"q": "1 smith st", "first": 21}, "first"),
]


async def check_bad_input(
    client: httpx.AsyncClient, document: str, variables: dict[str, Any], argument: str
) -> None:
    response = await gql(client, document, **variables)
    assert response.error_codes() == ["BAD_USER_INPUT"]
    assert f"`{argument}`" in response.errors[0]["message"]
    assert response.errors[0]["extensions"]["argument"] == argument
