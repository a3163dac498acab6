"""Query limits per role, enforced before any resolver runs (QUERY_TOO_COMPLEX)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.auth.principal import Role
from app.graphql.query_limits import QueryAnalyzer
from app.settings import Settings
from app.settings.query_limits import DEFAULTS, MAX_VALIDATION_ERRORS
from schema import build_schema
from tests.support.apps import running_app
from tests.support.credentials import bearer
from tests.support.settings import settings_for

ADMIN = bearer(1, Role.ADMIN)
USER = bearer(2, Role.USER)

PAGE = "{ properties(first: %d) { edges { node { id sales(first: %d) { nodes { price } } } } } }"


@pytest.fixture(scope="module")
async def limited(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings_for(sqlite_url)) as app:
        yield app.client


async def post(
    client: httpx.AsyncClient, payload: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post("/graphql", json=payload, headers=headers or {})


def refused(response: httpx.Response, limit: str) -> dict[str, Any]:
    body = response.json()
    assert body.get("data") is None, body
    error = body["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
    assert error["extensions"]["limit"] == limit, body
    return dict(error)


def nested(depth: int) -> str:
    """property -> locality -> properties -> ... : `depth` levels of selection sets."""
    inner = "id"
    levels = 1
    while levels < depth:
        inner = f"locality {{ properties(first: 1) {{ nodes {{ {inner} }} }} }}"
        levels += 3
    return f"{{ properties(first: 1) {{ nodes {{ {inner} }} }} }}"


async def test_depth_limit_depends_on_the_role(limited: httpx.AsyncClient) -> None:
    deep = nested(13)
    error = refused(await post(limited, {"query": deep}), "max_depth")
    assert "depth" in error["message"]
    assert "anonymous" in error["message"]
    assert error["extensions"]["maximum"] == 10
    refused(await post(limited, {"query": deep}, USER), "max_depth")
    body = (await post(limited, {"query": deep}, ADMIN)).json()
    assert "errors" not in body, body


async def test_cost_counts_nested_pages(limited: httpx.AsyncClient) -> None:
    error = refused(await post(limited, {"query": PAGE % (100, 100)}), "max_cost")
    assert error["extensions"]["value"] > 10_000
    # The same shape with smaller pages is fine, and variables are priced like literals.
    ok = (await post(limited, {"query": PAGE % (20, 5)})).json()
    assert "errors" not in ok, ok
    by_variable = "query($n: Int!) { properties(first: $n) { nodes { sales(first: $n) { nodes { price } } } } }"
    refused(await post(limited, {"query": by_variable, "variables": {"n": 100}}), "max_cost")
    assert (
        "errors" not in (await post(limited, {"query": by_variable, "variables": {"n": 3}})).json()
    )
    # An admin may ask for more.
    assert "errors" not in (await post(limited, {"query": PAGE % (100, 100)}, ADMIN)).json()


async def test_aliases_fields_directives_and_tokens(limited: httpx.AsyncClient) -> None:
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    refused(await post(limited, {"query": aliases}), "max_aliases")
    assert "errors" not in (await post(limited, {"query": aliases}, USER)).json()
    duplicated = "{ " + "__typename " * 401 + "}"
    refused(await post(limited, {"query": duplicated}), "max_fields")
    directives = "{ " + "__typename @include(if: true) " * 5 + "}"
    refused(await post(limited, {"query": directives}), "max_directives")
    assert "errors" not in (await post(limited, {"query": directives}, USER)).json()
    tokens = " ".join(f"query Q{i} {{ __typename }}" for i in range(450))
    refused(await post(limited, {"query": tokens, "operationName": "Q1"}), "max_tokens")
    huge = "{ __typename }" + " " * 30_000
    refused(await post(limited, {"query": huge}), "max_query_bytes")


COP_DIRECTIVES = "query cop { __typename @aa@aa@aa@aa@aa@aa@aa@aa@aa@aa }"
"""graphql-cop's directive-overloading probe (tests/test_graphql_cop.py)."""


def test_every_role_refuses_graphql_cops_directive_probe() -> None:
    analyzer = QueryAnalyzer(
        build_schema(count_statements=False)._schema, default_page_size=20, max_tokens=20_000
    )
    for role, limits in DEFAULTS.items():
        assert limits.max_directives < 10, role
        for probe in (COP_DIRECTIVES, "query cop { __typename " + "@skip(if:true)" * 10 + " }"):
            violation = analyzer.check(probe, "cop", None, limits)
            assert violation is not None, (role, probe)
            assert (violation.limit, violation.value) == ("max_directives", 10), (role, probe)


async def test_directives_are_refused_before_validation(limited: httpx.AsyncClient) -> None:
    """One QUERY_TOO_COMPLEX error, not one validation error per unknown directive, for every
    role; the count is of the whole document, where validation would look."""
    for headers in (None, USER, ADMIN):
        response = await post(limited, {"query": COP_DIRECTIVES, "operationName": "cop"}, headers)
        error = refused(response, "max_directives")
        assert len(response.json()["errors"]) == 1
        assert error["extensions"]["value"] == 10
    at = "@include(if: true)"
    elsewhere = {
        "a fragment no operation spreads": f"{{ __typename }} fragment F on Query {{ __typename {at * 5} }}",
        "another operation": f"query A {{ __typename }} query B {{ __typename {at * 5} }}",
        "variable definitions": "query($a: Int " + "@aa " * 5 + ") { __typename }",
        "the operation itself": "query Q " + "@aa " * 5 + "{ __typename }",
    }
    for where, query in elsewhere.items():
        payload = {"query": query, "operationName": "A" if "query A" in query else None}
        error = refused(await post(limited, payload), "max_directives")
        assert error["extensions"]["value"] == 5, where
    # An honest document: a field or two shown on a condition.
    honest = """query($withSales: Boolean!) { properties(first: 2) { nodes { id
      address @include(if: true) sales(first: 1) @include(if: $withSales) { nodes { price } }
      locality @skip(if: $withSales) { name } } } }"""
    body = (await post(limited, {"query": honest, "variables": {"withSales": True}})).json()
    assert "errors" not in body, body
    assert len(body["data"]["properties"]["nodes"]) == 2


async def test_validation_errors_are_bounded(sqlite_url: str) -> None:
    """However many mistakes a document makes (here 300 unknown fields, within the field
    limit), its answer holds MAX_VALIDATION_ERRORS of them and one saying validation stopped;
    the same body from both executors."""
    query = "{ " + " ".join(f"nosuchfield{i}" for i in range(300)) + " }"
    bodies = []
    for compiled in (True, False):
        async with running_app(
            settings_for(sqlite_url, PROPINTEL_COMPILED_EXECUTION=compiled)
        ) as app:
            response = await post(app.client, {"query": query})
            assert response.status_code == 200
            bodies.append(response.json())
            batch = (await post(app.client, [{"query": query}] * 2)).json()
            assert [len(answer["errors"]) for answer in batch] == [MAX_VALIDATION_ERRORS + 1] * 2
    assert bodies[0] == bodies[1]
    errors = bodies[0]["errors"]
    assert len(errors) == MAX_VALIDATION_ERRORS + 1
    assert errors[0]["message"] == "Cannot query field 'nosuchfield0' on type 'Query'."
    assert errors[-1]["message"].startswith("Too many validation errors")
    assert {e["extensions"]["code"] for e in errors} == {"GRAPHQL_VALIDATION_FAILED"}


async def test_fragment_bombs_stop_at_the_field_limit(limited: httpx.AsyncClient) -> None:
    """Each fragment spreads the next twice: 2^20 fields if expanded. The walk stops at the
    field limit, so refusing it takes no longer than a normal query."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(20)]
    fragments.append("fragment F20 on Query { __typename }")
    bomb = "query { ...F0 } " + " ".join(fragments)
    started = time.perf_counter()
    refused(await post(limited, {"query": bomb}), "max_fields")
    assert time.perf_counter() - started < 2  # a bound on work, not a speed benchmark
    cyclic = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }"
    body = (await post(limited, {"query": cyclic})).json()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_batches_are_limited_per_role(limited: httpx.AsyncClient) -> None:
    one = {"query": "{ localities(first: 1) { nodes { name } } }"}
    answers = (await post(limited, [one, one])).json()
    assert [a["data"]["localities"]["nodes"][0]["name"] for a in answers] == ["ABERDARE"] * 2
    refused(await post(limited, [one] * 6), "max_batch")
    assert len((await post(limited, [one] * 6, USER)).json()) == 6


async def test_refused_mutations_do_not_run(limited: httpx.AsyncClient, sqlite_url: str) -> None:
    email = f"alias-{uuid.uuid4().hex[:8]}@example.com"
    registrations = " ".join(
        f'r{i}: register(email: "{i}{email}", password: "long enough password") {{ email }}'
        for i in range(31)
    )
    refused(await post(limited, {"query": f"mutation {{ {registrations} }}"}), "max_aliases")
    login = 'mutation { login(email: "0%s", password: "long enough password") { accessToken } }'
    body = (await post(limited, {"query": login % email})).json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"  # never registered


async def test_graphql_response_media_type_gets_400(limited: httpx.AsyncClient) -> None:
    response = await limited.post(
        "/graphql",
        json={"query": PAGE % (100, 100)},
        headers={"accept": "application/graphql-response+json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    refused(response, "max_cost")


def test_limits_come_from_settings(sqlite_url: str) -> None:
    settings = Settings(
        DATABASE_URL=sqlite_url,
        PROPINTEL_QUERY_LIMITS_USER='{"max_depth": 20}',  # type: ignore[arg-type]
    )
    assert settings.query_limits_user.max_depth == 20
    assert settings.query_limits_user.max_cost == 50_000  # the role's default kept
    with pytest.raises(ValueError, match="max_depht"):
        Settings(DATABASE_URL=sqlite_url, PROPINTEL_QUERY_LIMITS_USER='{"max_depht": 20}')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a rate limit"):
        Settings(DATABASE_URL=sqlite_url, RATE_LIMIT_USER="lots")
