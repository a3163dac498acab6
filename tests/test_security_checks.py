"""graphql-cop style checks of the prod profile, in process (issue 6).

The app runs with `PROPINTEL_PROFILE=prod`, its required secrets, the L1 cache on (prod's
default, no Redis) and its real lifespan, on the PostgreSQL slice. Every read and every write
transaction the app makes is counted (`DbSpy`), so a check can tell that a refused request ran
no resolver at all, not merely that it answered with an error.

Anonymous requests throughout, as an attacker would send them; the admin key is sent only where
a check needs a credential on the request (Cache-Control of authenticated answers).

graphql-cop's own checks, request for request, are tests/test_graphql_cop.py; the checks here
that were the same (alias overloading of `__typename`, directive overloading, the circular
introspection query, GraphiQL on /graphql) live there only.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import ValidationError

from app.http.gate import CSRF_HEADER, PREFLIGHT_HEADERS
from tests.support.apps import running_app
from tests.support.prod import (
    GRAPHQL_RESPONSE_JSON,
    PROD_ADMIN_KEY,
    DbSpy,
    ProdApp,
    prod_settings,
    running_prod,
)
from tests.support.settings import settings_for

TOO_COMPLEX = "QUERY_TOO_COMPLEX"

# A cheap real field (a root field with a resolver and a database read).
TEMPE = 'locality(name: "TEMPE", postcode: "2044")'
ORDINARY = """{ locality(name: "Erskineville", postcode: "2043") { district
  properties(first: 5, orderBy: LAST_SALE_PRICE_DESC) {
    edges { node { address lastSalePrice sales(first: 3) { edges { node { contractDate price } } } } }
    pageInfo { hasNextPage endCursor } } } }"""
# What must never reach a client of the prod profile.
LEAKS = ("Traceback", 'File "', "site-packages", "/work/", '.py"', "hunter2")


@pytest.fixture(scope="module")
async def prod(postgres_url: str) -> AsyncIterator[ProdApp]:
    async with running_prod(prod_settings(postgres_url)) as running:
        yield running


@pytest.fixture
def spy(prod: ProdApp) -> DbSpy:
    return prod.spy.reset()


async def post(
    prod: ProdApp, query: str, headers: dict[str, str] | None = None, **variables: Any
) -> httpx.Response:
    payload: dict[str, Any] = {"query": query}
    if variables:
        payload["variables"] = variables
    return await prod.client.post("/graphql", json=payload, headers=headers or {})


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        pytest.fail(f"not JSON (HTTP {response.status_code}): {response.text[:500]}")


def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    body = body_of(response)
    if isinstance(body, dict):
        return list(body.get("errors") or [])
    return []


def codes_of(response: httpx.Response) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in errors_of(response)]


def shown(response: httpx.Response) -> str:
    return (
        f"HTTP {response.status_code} {response.headers.get('content-type')}: {response.text[:600]}"
    )


def assert_not_executed(response: httpx.Response, spy: DbSpy) -> None:
    body = body_of(response)
    assert not isinstance(body, list), f"executed as a batch: {shown(response)}"
    assert body.get("data") is None, f"executed (data in the answer): {shown(response)}"
    assert spy.untouched, (
        f"resolvers ran before the refusal: {spy.reads} reads, {spy.writes} write transactions "
        f"({spy.statements[:3]})"
    )


def assert_too_complex(response: httpx.Response, spy: DbSpy, *limits: str) -> None:
    """Refused with QUERY_TOO_COMPLEX before any resolver ran, the message naming one of the
    limits this request exceeds (a huge attack exceeds several: any of them may be named)."""
    assert response.status_code < 500, shown(response)
    assert_not_executed(response, spy)
    assert TOO_COMPLEX in codes_of(response), f"expected {TOO_COMPLEX}: {shown(response)}"
    messages = " ".join(
        str(e.get("message", ""))
        for e in errors_of(response)
        if (e.get("extensions") or {}).get("code") == TOO_COMPLEX
    ).lower()
    assert any(limit in messages for limit in limits), (
        f"the message should name the limit ({' or '.join(limits)}): {messages!r}"
    )


# ---------------------------------------------------------------- the prod profile itself


def test_prod_needs_its_secrets(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    for name in ("JWT_SECRET", "ADMIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for missing in ("JWT_SECRET", "ADMIN_API_KEY"):
        with pytest.raises(ValidationError, match=missing):
            prod_settings(postgres_url, **{missing: None})
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        prod_settings(postgres_url, JWT_SECRET=secrets.token_hex(15))  # 30 characters
    with pytest.raises(ValidationError, match="ADMIN_API_KEY"):
        prod_settings(postgres_url, ADMIN_API_KEY=secrets.token_hex(7))  # 14 characters


async def test_an_ordinary_query_is_answered(prod: ProdApp, spy: DbSpy) -> None:
    """The control: the limits below refuse attacks, not the README's example."""
    response = await post(prod, ORDINARY)
    assert response.status_code == 200, shown(response)
    body = body_of(response)
    assert not body.get("errors"), shown(response)
    assert body["data"]["locality"]["properties"]["edges"], shown(response)
    assert "extensions" not in body or "sqlStatements" not in body["extensions"], (
        "prod answers carry no debug extensions"
    )


# ---------------------------------------------------------------- introspection, IDE, hints


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { types { name } } }",
        "{ __schema { queryType { name } mutationType { fields { name } } } }",
        'query { __type(name: "Query") { name fields { name } } }',
        'query { __type(name: "Mutation") { fields { name args { name } } } }',
    ],
)
async def test_introspection_is_refused(prod: ProdApp, method: str, query: str) -> None:
    if method == "POST":
        response = await post(prod, query)
    else:
        response = await prod.client.get(
            "/graphql",
            params={"query": query},
            headers={"accept": "application/json", CSRF_HEADER: "1"},
        )
    assert response.status_code < 500, shown(response)
    body = body_of(response)
    data = body.get("data") or {}
    disclosed = data.get("__schema") or data.get("__type")
    assert not disclosed, f"introspection answered in prod: {shown(response)}"
    if "__schema" in query:  # __type may be answered with null; __schema must be an error
        assert body.get("errors"), shown(response)
    for name in ("recordSale", "updateProperty", "cacheStats", "PropertyConnection"):
        assert name not in response.text, f"{name} disclosed: {shown(response)}"


@pytest.mark.parametrize(
    "query",
    [
        "{ propertys(first: 1) { nodes { id } } }",  # root field
        f"{{ {TEMPE} {{ nam postcod }} }}",  # object fields
        "{ properties(frist: 1) { nodes { id } } }",  # argument
        "{ properties(first: 1, orderBy: LAST_SALE_PRICE_DES) { nodes { id } } }",  # enum
        '{ node(id: "x") { ... on Proprety { id } } }',  # type condition
        '{ properties(first: 1, filter: {postcod: "2044"}) { nodes { id } } }',  # input field
        "mutation { recordSal(input: {}) { id } }",  # mutation field
    ],
)
async def test_no_field_suggestions(prod: ProdApp, query: str) -> None:
    response = await post(prod, query)
    assert response.status_code < 500, shown(response)
    errors = errors_of(response)
    assert errors, shown(response)
    for error in errors:
        assert "did you mean" not in str(error.get("message", "")).lower(), (
            f"a suggestion discloses the schema: {error}"
        )


@pytest.mark.parametrize("preflight", [{}, {CSRF_HEADER: "1"}], ids=["bare", "preflighted"])
async def test_no_graphiql_for_a_get_with_a_query(prod: ProdApp, preflight: dict[str, str]) -> None:
    """(A GET of /graphql with no query is graphql-cop's own check, tests/test_graphql_cop.py.)"""
    response = await prod.client.get(
        "/graphql?query=%7B__typename%7D", headers={"accept": "text/html,*/*;q=0.8", **preflight}
    )
    assert response.status_code < 500, shown(response)
    text = response.text.lower()
    assert "graphiql" not in text, f"GraphiQL served in prod: {shown(response)}"
    assert "<html" not in text, f"an HTML page: {shown(response)}"
    assert "<!doctype" not in text, f"an HTML page: {shown(response)}"


# ---------------------------------------------------------------- methods and content types


async def some_property(prod: ProdApp) -> tuple[str, str | None]:
    response = await post(prod, "{ properties(first: 1, orderBy: ID_ASC) { nodes { id zoning } } }")
    node = body_of(response)["data"]["properties"]["nodes"][0]
    return str(node["id"]), node["zoning"]


async def zoning_of(prod: ProdApp, property_id: str) -> str | None:
    response = await post(prod, "query($id: ID!) { property(id: $id) { zoning } }", id=property_id)
    zoning: str | None = body_of(response)["data"]["property"]["zoning"]
    return zoning


def update_zoning(property_id: str, zoning: str) -> str:
    return f'mutation {{ updateProperty(id: "{property_id}", input: {{zoning: "{zoning}"}}) {{ zoning }} }}'


@pytest.mark.parametrize("preflight", [{}, {CSRF_HEADER: "1"}], ids=["bare", "preflighted"])
@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE_JSON])
async def test_mutation_over_get_is_405_and_not_executed(
    prod: ProdApp, accept: str, preflight: dict[str, str]
) -> None:
    """405 with or without the CSRF header: GET never carries a mutation."""
    property_id, zoning = await some_property(prod)
    spy = prod.spy.reset()
    for query in (update_zoning(property_id, "GET1"), "mutation { __typename }"):
        response = await prod.client.get(
            "/graphql",
            params={"query": query},
            headers={
                "accept": accept,
                "authorization": f"Bearer {PROD_ADMIN_KEY}",
                **preflight,
            },
        )
        assert response.status_code == 405, shown(response)
        assert "POST" in response.headers.get("allow", ""), (
            f"a 405 names the allowed methods (RFC 9110): {dict(response.headers)}"
        )
        assert spy.writes == 0, "a write transaction began"
    assert await zoning_of(prod, property_id) == zoning


def unseen_read(label: str) -> str:
    """A read of a resolved field under an alias nobody asked before (no cache answers it)."""
    return f"{{ {label}_{secrets.token_hex(4)}: {TEMPE} {{ id name stats {{ salesCount }} }} }}"


NOT_PREFLIGHTED: list[tuple[str, dict[str, str]]] = [
    ("no header", {}),
    ("an empty CSRF header", {CSRF_HEADER: ""}),
    ("a text/plain content type", {"content-type": "text/plain"}),
    ("a form content type", {"content-type": "application/x-www-form-urlencoded"}),
    ("an unrelated custom header", {"x-requested-with": "XMLHttpRequest"}),
]


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE_JSON, "*/*"])
@pytest.mark.parametrize(
    ("case", "headers"), NOT_PREFLIGHTED, ids=[case for case, _ in NOT_PREFLIGHTED]
)
async def test_get_without_a_preflight_is_refused(
    prod: ProdApp, accept: str, case: str, headers: dict[str, str]
) -> None:
    """CSRF prevention (Apollo Server 4's rule): a GET a cross-site page could send without a
    CORS preflight is a 400 naming the header to add, and runs nothing."""
    spy = prod.spy.reset()
    response = await prod.client.get(
        "/graphql",
        params={"query": unseen_read("csrf_get")},
        headers={"accept": accept, "authorization": f"Bearer {PROD_ADMIN_KEY}", **headers},
    )
    assert response.status_code == 400, f"{case}: {shown(response)}"
    assert response.headers["content-type"].startswith(
        GRAPHQL_RESPONSE_JSON if accept == GRAPHQL_RESPONSE_JSON else "application/json"
    ), shown(response)
    [error] = errors_of(response)
    assert "X-Propintel-CSRF" in error["message"], shown(response)
    assert error["extensions"]["code"] == "BAD_REQUEST", shown(response)
    assert_not_executed(response, spy)


PREFLIGHTED: list[tuple[str, dict[str, str]]] = [
    *((name, {name: "1"}) for name in PREFLIGHT_HEADERS),
    ("apollo-require-preflight: true", {"apollo-require-preflight": "true"}),
    ("x-apollo-operation-name: Q", {"x-apollo-operation-name": "Q"}),
    ("a JSON content type", {"content-type": "application/json"}),
]


@pytest.mark.parametrize(("case", "headers"), PREFLIGHTED, ids=[case for case, _ in PREFLIGHTED])
async def test_get_with_a_preflight_is_answered(
    prod: ProdApp, case: str, headers: dict[str, str]
) -> None:
    for accept in ("application/json", GRAPHQL_RESPONSE_JSON):
        response = await prod.client.get(
            "/graphql",
            params={"query": f"{{ {TEMPE} {{ name }} }}"},
            headers={"accept": accept, **headers},
        )
        assert response.status_code == 200, f"{case} ({accept}): {shown(response)}"
        assert body_of(response) == {"data": {"locality": {"name": "TEMPE"}}}, shown(response)


async def test_get_and_graphiql_need_no_header_outside_prod(postgres_url: str) -> None:
    async with running_app(settings_for(postgres_url)) as app:
        response = await app.client.get("/graphql", params={"query": f"{{ {TEMPE} {{ name }} }}"})
        assert response.status_code == 200, shown(response)
        assert body_of(response)["data"] == {"locality": {"name": "TEMPE"}}, shown(response)
        page = await app.client.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200, shown(page)
        assert "graphiql" in page.text.lower(), shown(page)


def _multipart(query: str) -> tuple[bytes, str]:
    boundary = "----propintelcsrf" + secrets.token_hex(8)
    parts = [
        ("operations", json.dumps({"query": query, "variables": {}})),
        ("map", "{}"),
        ("query", query),
    ]
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in parts
    )
    return f"{body}--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def csrf_request(content_type: str, query: str) -> tuple[bytes, str]:
    """What a cross-site form or `fetch(..., {mode: 'no-cors'})` can send without a preflight."""
    if content_type == "text/plain":
        return json.dumps({"query": query}).encode(), "text/plain;charset=UTF-8"
    if content_type == "application/x-www-form-urlencoded":
        return urlencode({"query": query}).encode(), content_type
    return _multipart(query)


SIMPLE_CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]


@pytest.mark.parametrize("content_type", SIMPLE_CONTENT_TYPES)
async def test_csrf_simple_requests_never_execute(prod: ProdApp, content_type: str) -> None:
    property_id, zoning = await some_property(prod)
    # A read nobody asked before (so no cache can answer it without the database) and a write.
    read = f"{{ csrf_{content_type.split('/')[1].replace('-', '_')}: {TEMPE} {{ id name stats {{ salesCount }} }} }}"
    for query in (read, update_zoning(property_id, "CSRF")):
        spy = prod.spy.reset()
        body, header = csrf_request(content_type, query)
        response = await prod.client.post(
            "/graphql",
            content=body,
            headers={
                "content-type": header,
                "origin": "https://evil.example",
                "authorization": f"Bearer {PROD_ADMIN_KEY}",
            },
        )
        assert response.status_code in (400, 415), f"{content_type} not refused: {shown(response)}"
        assert '"data"' not in response.text or body_of(response).get("data") is None, shown(
            response
        )
        assert spy.untouched, f"{content_type}: {spy.reads} reads, {spy.writes} writes"
    assert await zoning_of(prod, property_id) == zoning


async def test_post_without_content_type_is_refused(prod: ProdApp, spy: DbSpy) -> None:
    request = prod.client.build_request(
        "POST", "/graphql", content=json.dumps({"query": f"{{ {TEMPE} {{ id }} }}"}).encode()
    )
    request.headers.pop("content-type", None)
    response = await prod.client.send(request)
    assert 400 <= response.status_code < 500, shown(response)
    assert spy.untouched


MALFORMED: list[tuple[str, Any]] = [
    ("query is an object", {"query": {"obj": "ect"}}),
    ("query is a list", {"query": ["{ __typename }"]}),
    ("query is missing", {"notquery": "{ __typename }"}),
    ("operationName is an object", {"query": "{ __typename }", "operationName": {"a": 1}}),
    ("operationName is a list", {"query": "{ __typename }", "operationName": ["a"]}),
    ("operationName is a number", {"query": "{ __typename }", "operationName": 0}),
    ("variables is a string", {"query": "{ __typename }", "variables": "{}"}),
    ("variables is a list", {"query": "{ __typename }", "variables": [1]}),
    ("the body is a string", "{ __typename }"),
    ("the body is null", None),
]


@pytest.mark.parametrize(("case", "payload"), MALFORMED, ids=[case for case, _ in MALFORMED])
async def test_malformed_parameters_are_a_json_400(prod: ProdApp, case: str, payload: Any) -> None:
    """A request the server cannot run is the client's fault: 400 with a JSON body, never a
    5xx (an attacker's cheapest way to fill the error logs and trip alerts)."""
    for accept in ("application/json", GRAPHQL_RESPONSE_JSON):
        # Sent as bytes: httpx's json=None would send no body and no content type at all.
        response = await prod.client.post(
            "/graphql",
            content=json.dumps(payload).encode(),
            headers={"accept": accept, "content-type": "application/json"},
        )
        assert response.status_code == 400, f"{case} ({accept}): {shown(response)}"
        assert response.headers.get("content-type", "").startswith(
            ("application/json", GRAPHQL_RESPONSE_JSON)
        ), f"{case} ({accept}): {shown(response)}"
        assert errors_of(response), f"{case} ({accept}): {shown(response)}"


# ---------------------------------------------------------------- query limits


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


def aliases_of_a_field(count: int) -> str:
    return "{ " + " ".join(f"a{i}: {TEMPE} {{ id }}" for i in range(count)) + " }"


def nested(cycles: int) -> str:
    """locality > properties > nodes > locality > ...: 1 + 3 x `cycles` selection levels,
    each page of size 1 (no cost to speak of: only the depth limit applies)."""
    step = "properties(first: 1) { nodes { locality { "
    return "{ " + TEMPE + " { " + step * cycles + "name" + " } } }" * cycles + " } }"


async def test_alias_overloading_of_a_resolved_field(prod: ProdApp, spy: DbSpy) -> None:
    response = await post(prod, aliases_of_a_field(1000))
    assert_too_complex(response, spy, "alias", "token", "field", "size", "byte", "long", "cost")


async def test_batch_overloading(prod: ProdApp, spy: DbSpy) -> None:
    batch = [{"query": f"query Q{i} {{ a{i}: {TEMPE} {{ id }} }}"} for i in range(100)]
    response = await prod.client.post("/graphql", json=batch)
    assert_too_complex(response, spy, "batch", "operations")


async def test_field_duplication(prod: ProdApp, spy: DbSpy) -> None:
    response = await post(prod, f"{{ {TEMPE} {{ {' '.join(['name'] * 1000)} }} }}")
    assert_too_complex(response, spy, "field", "token", "cost", "size", "byte", "long")


async def test_deep_nesting(prod: ProdApp, spy: DbSpy) -> None:
    query = nested(10)
    assert query.count("{") == 32  # the operation's, then 31 levels of fields
    response = await post(prod, query)
    assert_too_complex(response, spy, "depth")


async def test_connection_cost(prod: ProdApp, spy: DbSpy) -> None:
    """100 properties x 100 sales x (property x 100 sales): a million rows asked for, at
    depth 8 (within any depth limit): only the cost limit can refuse it."""
    query = """{ properties(first: 100) { nodes { id sales(first: 100) { nodes { price
      property { sales(first: 100) { nodes { price contractDate } } } } } } } }"""
    response = await post(prod, query)
    assert_too_complex(response, spy, "cost")


async def test_connection_cost_through_variables(prod: ProdApp, spy: DbSpy) -> None:
    """The same, with the page sizes in variables: the cost counts their values."""
    query = """query($a: Int!, $b: Int!) { properties(first: $a) { nodes { id
      sales(first: $b) { nodes { price property { sales(first: $b) { nodes { price } } } } } } } }"""
    response = await post(prod, query, a=100, b=100)
    assert_too_complex(response, spy, "cost")


# ---------------------------------------------------------------- errors


async def test_unexpected_errors_are_masked(postgres_url: str) -> None:
    async with running_prod(prod_settings(postgres_url, PROPINTEL_CACHE_ENABLED=False)) as app:

        async def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError(
                'boom in File "/srv/propintel/db/secret.py", line 42: password=hunter2'
            )

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(app.app.state.db, "fetch_all", broken)
            response = await post(app, f"{{ {TEMPE} {{ id name }} }}")
    assert response.status_code < 500, shown(response)
    errors = errors_of(response)
    assert errors, shown(response)
    assert [e["message"] for e in errors] == ["Unexpected error."], shown(response)
    assert codes_of(response) == ["INTERNAL_SERVER_ERROR"], shown(response)
    for leak in (*LEAKS, "RuntimeError", "boom", "/srv/"):
        assert leak not in response.text, f"{leak!r} leaked: {shown(response)}"
    for error in errors:
        extensions = error.get("extensions") or {}
        assert not {"exception", "stacktrace", "traceback"} & set(extensions), error


async def test_domain_errors_keep_their_code_and_message(prod: ProdApp) -> None:
    response = await post(prod, '{ property(id: "nonsense") { id } }')
    assert codes_of(response) == ["BAD_USER_INPUT"], shown(response)
    assert "is not an id this API issued" in errors_of(response)[0]["message"]
    response = await post(prod, update_zoning("UHJvcGVydHk6MQ==", "R2"))
    assert codes_of(response)[0] in ("FORBIDDEN", "UNAUTHENTICATED"), shown(response)


# ---------------------------------------------------------------- headers and media types


def assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert headers.get("x-content-type-options", "").lower() == "nosniff", dict(headers)
    assert headers.get("referrer-policy", "").lower() in {
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    }, dict(headers)
    frame_options = headers.get("x-frame-options", "").upper()
    csp = headers.get("content-security-policy", "")
    assert frame_options in {"DENY", "SAMEORIGIN"} or "frame-ancestors" in csp, dict(headers)
    hsts = headers.get("strict-transport-security")
    if hsts is not None:
        match = re.search(r"max-age=(\d+)", hsts)
        assert match is not None, hsts
        assert int(match.group(1)) > 0, hsts


async def test_security_headers(prod: ProdApp) -> None:
    responses = {
        "POST query": await post(prod, "{ __typename }"),
        "POST validation error": await post(prod, "{ nosuchfield }"),
        "POST parse error": await post(prod, "{"),
        "GET query": await prod.client.get("/graphql", params={"query": "{ __typename }"}),
        "GET without a query": await prod.client.get("/graphql", headers={"accept": "text/html"}),
        "POST text/plain": await prod.client.post(
            "/graphql",
            content=b'{"query": "{ __typename }"}',
            headers={"content-type": "text/plain"},
        ),
        "POST too complex": await post(prod, aliases(1000)),
    }
    for name, response in responses.items():
        try:
            assert_security_headers(response)
        except AssertionError as missing:
            raise AssertionError(f"{name} (HTTP {response.status_code}): {missing}") from None


async def test_authenticated_answers_are_not_stored(prod: ProdApp) -> None:
    for query in ("{ __typename }", f"{{ {TEMPE} {{ id }} }}", "{ cacheStats { tiers { tier } } }"):
        response = await post(prod, query, headers={"authorization": f"Bearer {PROD_ADMIN_KEY}"})
        assert "no-store" in response.headers.get("cache-control", ""), (
            f"{query}: {dict(response.headers)}"
        )


async def test_graphql_response_json(prod: ProdApp) -> None:
    headers = {"accept": GRAPHQL_RESPONSE_JSON}
    ok = await post(prod, f"{{ {TEMPE} {{ name }} }}", headers=headers)
    assert ok.status_code == 200, shown(ok)
    assert ok.headers.get("content-type", "").startswith(GRAPHQL_RESPONSE_JSON), shown(ok)
    assert body_of(ok)["data"] == {"locality": {"name": "TEMPE"}}, shown(ok)
    for name, query in (("validation", "{ nosuchfield }"), ("parse", "{ locality(")):
        failed = await post(prod, query, headers=headers)
        assert failed.status_code == 400, f"{name} error: {shown(failed)}"
        assert failed.headers.get("content-type", "").startswith(GRAPHQL_RESPONSE_JSON), shown(
            failed
        )
        assert "data" not in body_of(failed), f"{name} error: {shown(failed)}"
    # Preferred over application/json when both are acceptable.
    both = await post(
        prod,
        "{ __typename }",
        headers={"accept": f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9"},
    )
    assert both.headers.get("content-type", "").startswith(GRAPHQL_RESPONSE_JSON), shown(both)


async def test_plain_json_clients_still_get_application_json(prod: ProdApp) -> None:
    for accept in ("application/json", "*/*", None):
        headers = {"accept": accept} if accept else {}
        response = await post(prod, "{ nosuchfield }", headers=headers)
        assert response.headers.get("content-type", "").startswith("application/json"), shown(
            response
        )
        assert response.status_code in (200, 400), shown(response)
