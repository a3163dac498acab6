"""Both executors answer byte for byte alike, on every field the schema has.

The documents are generated from the schema itself: starting at Query, every field of every
object type is selected (a type met again below itself gets its leaves only, an interface
gets an inline fragment per implementation), with real ids and small pages from the test
data. Adding a field to the schema adds it here; a field this walk cannot reach fails the
coverage test instead of going unchecked. Two apps over the same PostgreSQL database, one
with compiled plans and one with Strawberry's executor only, must give identical bodies
(but for the statement count, see below), and the compiled app must have run the plan
(counted) wherever the planner can plan.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
)

from app.graphql.executor import ExecutionCounts
from db.engine import Database, create_engine
from db.repositories.price_models import create_job, update_job
from schema import build_schema
from tests.support.apps import RunningApp, both_executors
from tests.support.credentials import ADMIN, BOOTSTRAP_KEY
from tests.support.settings import settings_for

GRAPHQL_SCHEMA: GraphQLSchema = build_schema(count_statements=True)._schema

# Fields whose answer is this process's own state (counters, breakers): each app has its own,
# so they are reached and must answer, but are not compared. jobQueue is the queue at that
# moment (its oldest job's age grows between the two calls).
PROCESS_STATE = {
    ("Query", "cacheStats"),
    ("Query", "resilienceStatus"),
    ("Query", "jobQueue"),
    # The database advisor: the server's statistics and timings at that moment.
    ("Query", "databaseInsights"),
    ("Query", "explainOperation"),
}


@dataclass(frozen=True, slots=True)
class Ids:
    property: str
    sale: str
    locality: str
    training_job: str


def arguments(ids: Ids) -> dict[tuple[str, str], str]:
    """Arguments of the fields that need them (or whose defaults would make pages large)."""
    return {
        ("Query", "property"): f'(id: "{ids.property}")',
        (
            "Query",
            "properties",
        ): '(first: 3, filter: {postcode: "2043"}, orderBy: LAST_SALE_PRICE_DESC)',
        ("Query", "locality"): '(name: "Erskineville", postcode: "2043")',
        ("Query", "localities"): '(search: "T", first: 3)',
        ("Query", "estimatePrice"): """(input: {localityName: "Tempe", postcode: "2044",
            isStrata: false, areaM2: 400, zoning: "R2", streetName: "Unwins Bridge Rd"},
            asOf: "2024-06-30")""",
        ("Query", "modelTrainingStatus"): f'(id: "{ids.training_job}")',
        ("Query", "explainOperation"): '(query: "{ localities(search: \\"T\\", first: 2) { '
        'totalCount nodes { name } } }")',
        (
            "Locality",
            "properties",
        ): "(first: 2, orderBy: LAST_SALE_DATE_DESC, filter: {isStrata: false})",
        ("Locality", "stats"): '(from: "2020-01-01", isStrata: false)',
        ("Locality", "statsSeries"): '(interval: YEAR, from: "2019-01-01", isStrata: true)',
        ("Query", "searchAddresses"): '(query: "2 stovemaker la erskinevile", first: 3)',
        ("Query", "suggestLocalities"): '(query: "ers", first: 2)',
        ("Property", "sales"): "(first: 2)",
        ("Property", "estimate"): '(asOf: "2024-06-30")',
        ("Property", "comparableSales"): "(first: 2)",
    }


NODE_IDS = ("property", "sale", "locality")


class Walk:
    """Selections that reach every field below a root field; records what they reached."""

    def __init__(self, schema: GraphQLSchema, args: dict[tuple[str, str], str]) -> None:
        self.schema = schema
        self.args = args
        self.reached: set[tuple[str, str]] = set()

    def selection(self, type_: GraphQLObjectType, path: tuple[str, ...]) -> str:
        parts = ["__typename"]
        for name, field in type_.fields.items():
            named = get_named_type(field.type)
            arguments = self.args.get((type_.name, name), "")
            if is_leaf_type(named):
                parts.append(name + arguments)
            elif named.name in path:
                continue  # reached where it is first met; below itself only leaves
            else:
                parts.append(f"{name}{arguments} {{ {self.sub_selection(named, path)} }}")
            self.reached.add((type_.name, name))
        return " ".join(parts)

    def sub_selection(self, named: Any, path: tuple[str, ...]) -> str:
        if isinstance(named, GraphQLObjectType):
            return self.selection(named, (*path, named.name))
        assert isinstance(named, GraphQLInterfaceType)
        fragments = [
            f"... on {t.name} {{ {self.selection(t, (*path, t.name))} }}"
            for t in self.schema.get_possible_types(named)
        ]
        return "__typename " + " ".join(fragments)

    def documents(self, ids: Ids) -> Iterator[tuple[str, str]]:
        """(root field, document) per field of Query; `node` once per Node type."""
        query = self.schema.query_type
        assert query is not None
        for name, field in query.fields.items():
            named = get_named_type(field.type)
            if name == "node":
                self.reached.add(("Query", "node"))
                for kind in NODE_IDS:
                    body = self.sub_selection(named, ("Query",))
                    yield name, f'{{ node(id: "{getattr(ids, kind)}") {{ {body} }} }}'
                continue
            arguments = self.args.get(("Query", name), "")
            self.reached.add(("Query", name))
            if is_leaf_type(named):
                yield name, f"{{ {name}{arguments} }}"
            else:
                body = self.sub_selection(named, ("Query",))
                yield name, f"{{ {name}{arguments} {{ {body} }} }}"


def query_reachable_fields(schema: GraphQLSchema) -> set[tuple[str, str]]:
    """Every (type, field) of every object type a query can reach."""
    assert schema.query_type is not None
    seen: set[str] = set()
    fields: set[tuple[str, str]] = set()
    pending: list[Any] = [schema.query_type]
    while pending:
        type_ = pending.pop()
        if type_.name in seen:
            continue
        seen.add(type_.name)
        if isinstance(type_, GraphQLInterfaceType):
            pending.extend(schema.get_possible_types(type_))
            continue
        for name, field in type_.fields.items():
            fields.add((type_.name, name))
            named = get_named_type(field.type)
            if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                pending.append(named)
    return fields


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def training_job(postgres_url: str, trained_version: int) -> str:
    """A finished training job (for its status), beside the session's active model."""
    url = settings_for(postgres_url).database_url

    async def record() -> str:
        db = Database(create_engine(url))
        try:
            job = await create_job(db, uuid.uuid4().hex, activate=False, requested_by=None)
            now = datetime.now(UTC)
            await update_job(
                db,
                job.id,
                status="SUCCEEDED",
                started_at=now,
                finished_at=now,
                model_version=trained_version,
            )
            return job.id
        finally:
            await db.dispose()

    return asyncio.run(record())


@pytest.fixture(scope="module")
async def apps(
    postgres_url: str, training_job: str
) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    async with both_executors(postgres_url) as apps:
        yield apps


async def post(
    app: RunningApp, query: str, headers: dict[str, str] = ADMIN, **variables: Any
) -> dict[str, Any]:
    response = await app.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return dict(orjson.loads(response.content))


async def signed_in_admin(app: RunningApp) -> dict[str, str]:
    """A real ADMIN account with an API key (so `me` and `apiKeys` have something to show)."""
    email, password = f"parity-{uuid.uuid4().hex[:8]}@example.com", "parity password 1"
    bootstrap = (
        "mutation($e: String!, $p: String!) { bootstrapAdmin(email: $e, password: $p) { id } }"
    )
    login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
    key = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    assert "errors" not in await post(app, bootstrap, key, e=email, p=password)
    token = (await post(app, login, {}, e=email, p=password))["data"]["login"]["accessToken"]
    headers = {"Authorization": f"Bearer {token}"}
    created = await post(app, 'mutation { createApiKey(name: "parity") { key } }', headers)
    assert "errors" not in created, created
    return headers


async def real_ids(app: RunningApp, training_job: str) -> Ids:
    data = (
        await post(
            app,
            """{ locality(name: "ERSKINEVILLE", postcode: "2043") { id
                properties(first: 1) { nodes { id sales(first: 1) { nodes { id } } } } } }""",
        )
    )["data"]["locality"]
    first = data["properties"]["nodes"][0]
    return Ids(first["id"], first["sales"]["nodes"][0]["id"], data["id"], training_job)


# -- tests ---------------------------------------------------------------------------------


def test_the_walk_reaches_every_field_a_query_can_reach() -> None:
    ids = Ids("UHJvcGVydHk6MQ==", "U2FsZTox", "TG9jYWxpdHk6MQ==", "0" * 32)
    walk = Walk(GRAPHQL_SCHEMA, arguments(ids))
    documents = list(walk.documents(ids))
    assert documents
    assert query_reachable_fields(GRAPHQL_SCHEMA) - walk.reached == set()


async def test_generated_documents_answer_identically_on_both_executors(
    apps: tuple[RunningApp, RunningApp], training_job: str
) -> None:
    compiled_app, standard_app = apps
    counts: ExecutionCounts = compiled_app.state.graphql.compiled.counts
    ids = await real_ids(standard_app, training_job)
    admin = await signed_in_admin(standard_app)
    walk = Walk(GRAPHQL_SCHEMA, arguments(ids))
    planned: set[str] = set()
    for root, document in walk.documents(ids):
        before = counts.compiled
        mine = await post(compiled_app, document, admin)
        reference = await post(standard_app, document, admin)
        assert "errors" not in reference, (root, reference["errors"])
        if ("Query", root) in PROCESS_STATE:
            assert "errors" not in mine, (root, mine["errors"])
            continue
        # Statement counts are left out: which loads of a DataLoader share a batch depends on
        # when the statements before them return, so a deep document may cost one more or
        # one fewer on either executor. The statement-count tests bound them on both.
        mine.pop("extensions", None)
        reference.pop("extensions", None)
        assert orjson.dumps(mine) == orjson.dumps(reference), root
        if counts.compiled > before:
            planned.add(root)
    # Everything public and batched is planned; the other roots are admin and account fields
    # and estimatePrice (resolvers of their own, with checks a plan does not run).
    assert planned == {
        "property",
        "node",
        "properties",
        "locality",
        "localities",
        "searchAddresses",
        "suggestLocalities",
    }, dict(counts.unplanned)


async def test_a_fallback_runs_the_plan_once_and_is_counted(
    apps: tuple[RunningApp, RunningApp],
) -> None:
    """A page size past the limit is refused by the resolver: the plan starts, falls back,
    and Strawberry's executor reports the error; the plan is not run a second time."""
    compiled_app, standard_app = apps
    counts: ExecutionCounts = compiled_app.state.graphql.compiled.counts
    query = "query($n: Int!) { properties(first: $n) { nodes { id } } }"
    before = (counts.compiled, counts.fallbacks)
    mine = await post(compiled_app, query, n=1000)
    reference = await post(standard_app, query, n=1000)
    assert mine == reference
    assert [e["extensions"]["code"] for e in mine["errors"]] == ["BAD_USER_INPUT"]
    assert (counts.compiled, counts.fallbacks) == (before[0], before[1] + 1)


async def test_unplanned_documents_are_counted_by_reason(
    apps: tuple[RunningApp, RunningApp],
) -> None:
    compiled_app, _ = apps
    counts: ExecutionCounts = compiled_app.state.graphql.compiled.counts
    before = dict(counts.unplanned)
    await post(compiled_app, "{ me { id } }")
    await post(compiled_app, "{ __typename @include(if: true) }")
    await post(compiled_app, "{ nope }")
    await post(compiled_app, "mutation { logout }")
    grown = {k: v - before.get(k, 0) for k, v in counts.unplanned.items()}
    assert {k: v for k, v in grown.items() if v} == {
        "Query.me is not declared batched": 1,
        "directives": 1,
        "validation error": 1,
        "mutation": 1,
    }
