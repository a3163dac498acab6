"""Bad input gets a GraphQL error with a code and a message that names the problem."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.support.credentials import ADMIN
from tests.support.graphql import gql

PROPERTIES = """query($first: Int!, $after: String, $filter: PropertyFilter, $order: PropertyOrder! = ID_ASC) {
  properties(first: $first, after: $after, filter: $filter, orderBy: $order) {
    pageInfo { endCursor } edges { node { id } } } }"""


def forged_cursor(*values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ({"first": 101}, "`first` must be between 0 and 100"),
        ({"first": -1}, "`first` must be between 0 and 100"),
        ({"first": 5, "after": "not-a-cursor"}, "invalid cursor"),
        ({"first": 5, "after": "!!!"}, "invalid cursor"),
        ({"first": 5, "after": forged_cursor("ID_ASC", "x")}, "expected an integer"),
        ({"first": 5, "after": forged_cursor("ID_ASC", 2**63)}, "an integer out of range"),
        ({"first": 5, "after": forged_cursor("LAST_SALE_PRICE_ASC", 1, 2)}, "belongs to order"),
        (
            {"first": 5, "filter": {"minLastSalePrice": 10, "maxLastSalePrice": 5}},
            "is greater than",
        ),
        ({"first": 5, "filter": {"minAreaM2": -1}}, "must not be negative"),
        ({"first": 5, "filter": {"postcode": "20431"}}, "four digits"),
        (
            {"first": 5, "filter": {"soldAfter": "2024-01-02", "soldBefore": "2024-01-01"}},
            "greater",
        ),
        ({"first": 5, "filter": {"localityName": "x" * 65}}, "1 to 64 characters"),
        (
            {
                "first": 5,
                "filter": {"bbox": {"minLat": -91, "maxLat": 0, "minLon": 0, "maxLon": 1}},
            },
            "within ±90°",
        ),
        (
            {
                "first": 5,
                "filter": {"bbox": {"minLat": -30, "maxLat": -31, "minLon": 0, "maxLon": 1}},
            },
            "is greater than",
        ),
    ],
)
async def test_bad_list_arguments_are_bad_user_input(
    client: httpx.AsyncClient, variables: dict[str, object], fragment: str
) -> None:
    response = await gql(client, PROPERTIES, **variables)
    assert response.data is None
    assert response.error_codes() == ["BAD_USER_INPUT"]
    assert fragment in response.errors[0]["message"]


async def test_a_cursor_from_another_order_is_refused(client: httpx.AsyncClient) -> None:
    page = (await gql(client, PROPERTIES, first=1)).ok()
    cursor = page["properties"]["pageInfo"]["endCursor"]
    response = await gql(client, PROPERTIES, first=1, after=cursor, order="LAST_SALE_PRICE_DESC")
    assert response.error_codes() == ["BAD_USER_INPUT"]
    assert "belongs to order 'ID_ASC'" in response.errors[0]["message"]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ('{ property(id: "nonsense") { id } }', "is not an id this API issued"),
        (
            '{ property(id: "TG9jYWxpdHk6MQ==") { id } }',
            "is the id of a Locality, not of a Property",
        ),
        ('{ node(id: "Rm9vOjE=") { id } }', "is not an id this API issued"),
        ('{ locality(name: "Tempe", postcode: "abc") { id } }', "four digits"),
        ('{ locality(name: "", postcode: "2044") { id } }', "1 to 64 characters"),
        (
            '{ locality(name: "Tempe", postcode: "2044") { stats(from: "2020-01-01", to: "2019-01-01") { salesCount } } }',
            "`from` (2020-01-01) is greater than `to` (2019-01-01)",
        ),
        ("{ localities(first: 1000) { edges { cursor } } }", "`first` must be between 0 and 100"),
        ('{ localities(search: "' + "x" * 65 + '") { edges { cursor } } }', "1 to 64 characters"),
        (
            "{ properties(first: 1) { edges { node { sales(first: 500) { edges { cursor } } } } } }",
            "`first` must be between 0 and 100",
        ),
    ],
)
async def test_bad_arguments_anywhere_are_bad_user_input(
    client: httpx.AsyncClient, query: str, fragment: str
) -> None:
    response = await gql(client, query)
    assert response.error_codes() == ["BAD_USER_INPUT"], response.errors
    assert fragment in response.errors[0]["message"]


def global_id(type_name: str, number: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{number}".encode()).decode()


BIGINT_MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("query", "type_name", "argument"),
    [
        ("query($id: ID!) { property(id: $id) { id } }", "Property", "id"),
        ("query($id: ID!) { node(id: $id) { id } }", "Property", "id"),
        ("query($id: ID!) { node(id: $id) { id } }", "Sale", "id"),
        ("query($id: ID!) { node(id: $id) { id } }", "Locality", "id"),
        ("mutation($id: ID!) { unwatchProperty(id: $id) }", "Property", "id"),
        ("mutation($id: ID!) { deleteSavedSearch(id: $id) }", "SavedSearch", "id"),
        (
            'mutation($id: ID!) { updateProperty(id: $id, input: {zoning: "R2"}) { id } }',
            "Property",
            "id",
        ),
        (
            'mutation($id: ID!) { recordSale(input: {propertyId: $id, contractDate: "2024-01-02",'
            ' price: 1, dealingNumber: "AA00001"}) { id } }',
            "Property",
            "input.propertyId",
        ),
    ],
)
@pytest.mark.parametrize("number", [BIGINT_MAX + 1, 99999999999999999999])
async def test_an_id_past_the_keys_range_is_one_this_api_never_issued(
    executor_client: httpx.AsyncClient, query: str, type_name: str, argument: str, number: int
) -> None:
    """Keys are 64-bit: a number past them is refused like any id we did not issue (not
    handed to the database driver, which refuses it as an internal error), on both
    executors and both backends."""
    too_big = global_id(type_name, number)
    response = await gql(executor_client, query, id=too_big, headers=ADMIN)
    (error,) = response.errors
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}, error
    assert error["message"] == f"{too_big!r} is not an id this API issued"


async def test_the_last_key_is_an_id_of_nothing(executor_client: httpx.AsyncClient) -> None:
    last = global_id("Property", BIGINT_MAX)
    query = "query($id: ID!) { property(id: $id) { id } node(id: $id) { id } }"
    assert (await gql(executor_client, query, id=last)).ok() == {"property": None, "node": None}


async def test_unknown_ids_are_null_not_errors(client: httpx.AsyncClient) -> None:
    unknown = base64.urlsafe_b64encode(b"Property:999999999").decode()
    response = await gql(
        client, "query($id: ID!) { property(id: $id) { id } node(id: $id) { id } }", id=unknown
    )
    assert response.ok() == {"property": None, "node": None}


async def test_the_schema_says_what_null_means_for_a_lookup(client: httpx.AsyncClient) -> None:
    """A lookup that finds nothing answers null, no error: the field's description says so
    (introspection is on outside the prod profile)."""
    query = '{ __type(name: "Query") { fields { name description args { name description } } } }'
    fields = {f["name"]: f for f in (await gql(client, query)).ok()["__type"]["fields"]}
    assert "null when there is no such locality" in fields["locality"]["description"]
    assert "null when there is no such property" in fields["property"]["description"]
    assert "null when there is no such object" in fields["node"]["description"]
    arguments = {a["name"]: a["description"] for a in fields["locality"]["args"]}
    assert arguments == {
        "name": "Locality name, case-insensitive, e.g. 'Newtown'.",
        "postcode": "Four-digit postcode.",
    }
    unknown = '{ locality(name: "Atlantis", postcode: "2000") { id } }'
    assert (await gql(client, unknown)).ok() == {"locality": None}


async def test_invalid_documents_have_codes(client: httpx.AsyncClient) -> None:
    syntax = await gql(client, "{ properties(first: 1) { edges ")
    assert syntax.error_codes() == ["GRAPHQL_PARSE_FAILED"]
    unknown_field = await gql(client, "{ properties { nope } }")
    assert unknown_field.error_codes() == ["GRAPHQL_VALIDATION_FAILED"]
    assert "nope" in unknown_field.errors[0]["message"]
    wrong_type = await gql(client, '{ properties(first: "ten") { edges { cursor } } }')
    assert wrong_type.error_codes() == ["GRAPHQL_VALIDATION_FAILED"]


async def test_variables_that_do_not_coerce_are_bad_user_input(client: httpx.AsyncClient) -> None:
    query = "query($id: ID!, $n: Int) { property(id: $id) { sales(first: $n) { nodes { id } } } }"
    wrong = await gql(client, query, id={"not": "an id"}, n=1)
    assert wrong.error_codes() == ["BAD_USER_INPUT"]
    assert "$id" in wrong.errors[0]["message"]
    missing = await gql(client, query, n=1)
    assert missing.error_codes() == ["BAD_USER_INPUT"]
    too_big = await gql(client, query, id="UHJvcGVydHk6MQ==", n=2**40)
    assert too_big.error_codes() == ["BAD_USER_INPUT"]
    assert "$n" in too_big.errors[0]["message"]


@pytest.mark.parametrize(
    ("query", "variables", "argument", "message"),
    [
        (
            'query($d: Date) { locality(name: "Tempe", postcode: "2044") {'
            " stats(from: $d) { salesCount } } }",
            {"d": "not a date"},
            "from",
            "Variable '$d' (argument `from` of `stats`) has invalid value: Value cannot "
            "represent a Date: \"not a date\". Invalid isoformat string: 'not a date'",
        ),
        (
            "query($f: PropertyFilter) { properties(filter: $f) { nodes { id } } }",
            {"f": {"soldAfter": "31/12/2024"}},
            "filter",
            "Variable '$f' (argument `filter` of `properties`) has invalid value at .soldAfter: "
            'Value cannot represent a Date: "31/12/2024".',
        ),
        (
            "query($d: Date) { properties(filter: {soldBefore: $d}) { nodes { id } } }",
            {"d": 20240101},
            "filter.soldBefore",
            "Variable '$d' (argument `filter.soldBefore` of `properties`) has invalid value",
        ),
        (
            "query($n: Int) { localities(first: $n) { nodes { name } } }",
            {"n": "ten"},
            "first",
            "Variable '$n' (argument `first` of `localities`) has invalid value",
        ),
    ],
)
async def test_a_bad_variable_is_named_with_the_argument_it_is_given_to(
    executor_client: httpx.AsyncClient,
    query: str,
    variables: dict[str, object],
    argument: str,
    message: str,
) -> None:
    response = await gql(executor_client, query, **variables)
    assert response.data is None
    (error,) = response.errors
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert error["message"].startswith(message), error["message"]


async def test_a_variable_given_to_two_arguments_names_both(client: httpx.AsyncClient) -> None:
    query = """query($d: Date) { locality(name: "Tempe", postcode: "2044") {
        stats(from: $d, to: $d) { salesCount } } }"""
    (error,) = (await gql(client, query, d="yesterday")).errors
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}  # no one argument to name
    assert error["message"].startswith(
        "Variable '$d' (argument `from` of `stats`, argument `to` of `stats`) has invalid value"
    )


async def test_non_json_body_is_a_clear_400_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.text
