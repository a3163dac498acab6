"""The compiled executor fails closed: what depends on the caller never reaches another
caller, and a permission check is never skipped, on either executor or through any cache.

The product has no per-user field with a batch form yet (issue 14 brings `Property.isWatched`),
so this module adds its own to the real schema: `whoami` at the root and `Greeting.text`
nested under a public object (both `Audience.CALLER`), and `vault`, a public batched field
guarded by a permission class. Each runs through the real app (lifespan, gate, JSON front
door, view, whole-operation cache) on PostgreSQL + Redis and on SQLite (L1 only), with the
compiled executor on and off.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import strawberry
from strawberry.extensions import MaskErrors
from strawberry.permission import BasePermission

from app.auth.principal import Role
from app.context import Context
from app.graphql.plan import NoPlan, OperationPlan, compile_operation
from resolvers.fields import Audience, batched
from schema import Query, build_schema
from tests.support.apps import RunningApp, running_app
from tests.support.credentials import bearer
from tests.support.settings import REDIS_URL, settings_for

# -- fields of the test's own --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GreetingRecord:
    salutation: str


@batched(Audience.CALLER)
async def whoami(parents: list[None], context: Context) -> list[str]:
    return [context.principal.client] * len(parents)


@batched(Audience.PUBLIC)
async def greeting(parents: list[None], context: Context) -> list[GreetingRecord]:
    return [GreetingRecord(salutation="G'day")] * len(parents)


@batched(Audience.CALLER)
async def greeting_text(parents: list[GreetingRecord], context: Context) -> list[str]:
    return [f"{p.salutation}, {context.principal.client}" for p in parents]


@batched(Audience.PUBLIC)
async def vault(parents: list[None], context: Context) -> list[str]:
    return ["the vault's contents"] * len(parents)


class AdminsOnly(BasePermission):
    message = "Admins only."

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        context: Context = info.context
        return context.is_admin


@strawberry.type
class Greeting:
    salutation: str
    text: str = strawberry.field(resolver=greeting_text)


@strawberry.type(name="Query")
class QueryWithCallerFields(Query):
    whoami: str = strawberry.field(resolver=whoami)
    greeting: Greeting = strawberry.field(resolver=greeting, graphql_type=Greeting)
    vault: str = strawberry.field(resolver=vault, permission_classes=[AdminsOnly])


def schema_with_caller_fields(**extra: Any) -> strawberry.Schema:
    return build_schema(count_statements=True, query=QueryWithCallerFields, **extra)


USER_A = bearer(7001, Role.USER)
USER_B = bearer(7002, Role.USER)
ADMIN = bearer(7003, Role.ADMIN)

PER_CALLER = """{ whoami greeting { salutation text }
    properties(first: 2) { nodes { id address } } }"""
PUBLIC = "{ properties(first: 2) { nodes { id address } } }"
GUARDED = "{ vault properties(first: 1) { nodes { id } } }"


# -- the apps --------------------------------------------------------------------------------


APPS = [
    ("postgresql+redis", "compiled"),
    ("postgresql+redis", "standard"),
    ("sqlite", "compiled"),
    ("sqlite", "standard"),
]
COMPILED_APPS = [app for app in APPS if app[1] == "compiled"]


def app_id(param: tuple[str, str]) -> str:
    return "-".join(param)


compiled_apps_only = pytest.mark.parametrize("cached_app", COMPILED_APPS, ids=app_id, indirect=True)
"""For tests of the planner and the whole-operation cache, which only the compiled path has."""


@pytest.fixture(scope="module", params=APPS, ids=app_id)
async def cached_app(
    request: pytest.FixtureRequest, postgres_url: str, sqlite_url: str
) -> AsyncIterator[RunningApp]:
    """The real app with its caches ON (entities and whole operations)."""
    backend, executor = request.param
    overrides: dict[str, Any] = {
        "PROPINTEL_CACHE_ENABLED": True,
        "PROPINTEL_CACHE_WARM": 0,
        "PROPINTEL_COMPILED_EXECUTION": executor == "compiled",
        "PROPINTEL_CACHE_NAMESPACE": f"t{uuid.uuid4().hex[:10]}",
    }
    url = sqlite_url
    if backend != "sqlite":
        url = postgres_url
        overrides["REDIS_URL"] = REDIS_URL
    settings = settings_for(url, **overrides)
    async with running_app(settings, schema=schema_with_caller_fields()) as app:
        yield app


async def post(
    client: httpx.AsyncClient, query: str, headers: dict[str, str]
) -> tuple[dict[str, Any], str | None]:
    response = await client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json(), response.headers.get("x-cache")


def compiled_counts(app: RunningApp) -> Any:
    executor = app.state.graphql.compiled
    return executor.counts if executor is not None else None


# -- per-caller fields -----------------------------------------------------------------------


@compiled_apps_only
async def test_a_public_document_is_cached_across_callers(cached_app: RunningApp) -> None:
    """The control: without this, 'never a hit' below would prove nothing."""
    first, _ = await post(cached_app.client, PUBLIC, USER_A)
    second, cache = await post(cached_app.client, PUBLIC, USER_B)
    assert cache == "hit"
    assert second["data"] == first["data"]


async def test_a_per_caller_field_never_reaches_another_caller(cached_app: RunningApp) -> None:
    counts = compiled_counts(cached_app)
    compiled_before = counts.compiled if counts else 0
    seen: dict[str, set[str]] = {"user:7001": set(), "user:7002": set()}
    for headers, client in [(USER_A, "user:7001"), (USER_B, "user:7002")] * 3:
        body, cache = await post(cached_app.client, PER_CALLER, headers)
        assert "errors" not in body, body
        assert cache != "hit"
        data = body["data"]
        seen[client].add(data["whoami"])
        seen[client].add(data["greeting"]["text"].removeprefix("G'day, "))
        assert data["greeting"]["salutation"] == "G'day"
        assert len(data["properties"]["nodes"]) == 2
    assert seen == {"user:7001": {"user:7001"}, "user:7002": {"user:7002"}}
    if counts is not None:  # the plan answered them all (planned, never stored)
        assert counts.compiled - compiled_before == 6


async def test_the_real_me_field_is_per_user_with_the_caches_on(cached_app: RunningApp) -> None:
    emails = [f"fail-closed-{uuid.uuid4().hex[:8]}@example.com" for _ in range(2)]
    tokens = []
    for email in emails:
        register = (
            """mutation($e: String!, $p: String!) { register(email: $e, password: $p) { id } }"""
        )
        login = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"""
        variables = {"e": email, "p": "correct horse battery"}
        await cached_app.client.post("/graphql", json={"query": register, "variables": variables})
        answer = await cached_app.client.post(
            "/graphql", json={"query": login, "variables": variables}
        )
        tokens.append(answer.json()["data"]["login"]["accessToken"])
    document = "{ me { email role } properties(first: 1) { nodes { id } } }"
    for _ in range(2):
        for email, token in zip(emails, tokens, strict=True):
            body, cache = await post(
                cached_app.client, document, {"Authorization": f"Bearer {token}"}
            )
            assert body["data"]["me"] == {"email": email, "role": "USER"}
            assert cache != "hit"


# -- permission classes ----------------------------------------------------------------------


async def test_a_permission_guarded_field_is_enforced(cached_app: RunningApp) -> None:
    for _ in range(2):  # the second time through every cache there is
        refused, _ = await post(cached_app.client, GUARDED, USER_A)
        assert refused["data"] is None
        assert [e["message"] for e in refused["errors"]] == ["Admins only."]
        assert refused["errors"][0]["path"] == ["vault"]
        allowed, _ = await post(cached_app.client, GUARDED, ADMIN)
        assert allowed["data"]["vault"] == "the vault's contents"
        again, _ = await post(cached_app.client, GUARDED, USER_B)
        assert again["data"] is None


@compiled_apps_only
async def test_the_planner_refuses_a_guarded_field_and_counts_why(cached_app: RunningApp) -> None:
    counts = compiled_counts(cached_app)
    before = counts.unplanned["Query.vault has permission classes or extensions"]
    await post(cached_app.client, GUARDED, USER_A)
    assert counts.unplanned["Query.vault has permission classes or extensions"] == before + 1


# -- what the planner decides ----------------------------------------------------------------


def test_plans_of_caller_fields_are_planned_but_never_cacheable() -> None:
    schema = schema_with_caller_fields()
    public = compile_operation(schema, PUBLIC, None)
    per_caller = compile_operation(schema, PER_CALLER, None)
    nested = compile_operation(schema, "{ greeting { text } }", None)
    assert isinstance(public, OperationPlan)
    assert isinstance(per_caller, OperationPlan)
    assert isinstance(nested, OperationPlan)
    assert public.cacheable
    assert not per_caller.cacheable
    assert not nested.cacheable


def test_fields_with_extensions_are_not_planned() -> None:
    from strawberry.extensions import FieldExtension

    class Upper(FieldExtension):
        def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
            return str(next_(source, info, **kwargs)).upper()

    @strawberry.type(name="Query")
    class WithExtension(Query):
        shout: str = strawberry.field(resolver=lambda: "quiet", extensions=[Upper()])

    schema = build_schema(count_statements=True, query=WithExtension)
    assert compile_operation(schema, "{ shout }", None) == NoPlan(
        "Query.shout has permission classes or extensions"
    )


async def test_an_unknown_schema_extension_turns_plans_off(postgres_url: str) -> None:
    """A schema extension may hook resolution or results: a schema with one the planner does
    not know is answered by Strawberry's executor alone."""
    schema = schema_with_caller_fields()
    schema.extensions = (*schema.extensions, MaskErrors)
    async with running_app(settings_for(postgres_url), schema=schema) as app:
        body, _ = await post(app.client, PUBLIC, USER_A)
        assert len(body["data"]["properties"]["nodes"]) == 2
        counts = app.state.graphql.compiled.counts
        assert counts.compiled == 0
        assert counts.unplanned == {"schema extension MaskErrors": 1}
