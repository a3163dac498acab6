"""The HTTP edge's request metrics (app/http/observe.py, the gate, the views, the websocket):
GraphQL operations by type, allow-listed name and outcome, their durations, error codes,
query costs, executor paths, rate-limit decisions and HTTP requests by route and status
class, read from the process's registry around real requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client import REGISTRY

from app.asgi import create_app
from app.telemetry.labels import TALLY
from tests.support.apps import running_app
from tests.support.settings import settings_for
from tests.support.ws import GraphQLWS, uvicorn_serving

Sample = tuple[str, tuple[tuple[str, str], ...]]


def sample(name: str, **labels: str) -> Sample:
    return name, tuple(sorted(labels.items()))


def read(key: Sample) -> float:
    TALLY.flush()  # the edge writes its counts in batches (app/telemetry/labels.py)
    name, labels = key
    return REGISTRY.get_sample_value(name, dict(labels)) or 0.0


@contextmanager
def counting(*keys: Sample) -> Iterator[dict[Sample, float]]:
    """Yields a dict that holds, once the block ends, how much each sample grew in it."""
    before = {key: read(key) for key in keys}
    grown: dict[Sample, float] = {}
    yield grown
    grown.update({key: read(key) - before[key] for key in keys})


def requests(operation_type: str, operation: str, outcome: str) -> Sample:
    return sample(
        "propintel_graphql_requests_total",
        operation_type=operation_type,
        operation=operation,
        outcome=outcome,
    )


def errors(code: str) -> Sample:
    return sample("propintel_graphql_errors_total", code=code)


def http(route: str, status: str) -> Sample:
    return sample("propintel_http_requests_total", route=route, status=status)


def executor(path: str) -> Sample:
    return sample("propintel_executor_operations_total", path=path)


LIST = "{ localities(first: 2) { nodes { name } } }"
DURATION = sample(
    "propintel_graphql_request_duration_seconds_count", operation_type="query", operation="Q1"
)
COST_COUNT = sample("propintel_graphql_query_cost_count", operation_type="query")
COST_SUM = sample("propintel_graphql_query_cost_sum", operation_type="query")


async def test_operations_are_counted_by_type_allowed_name_and_outcome(postgres_url: str) -> None:
    settings = settings_for(postgres_url, PROPINTEL_METRICS_OPERATIONS="OurDashboard")
    keys = (
        requests("query", "Q1", "ok"),
        requests("query", "OurDashboard", "ok"),
        requests("query", "other", "ok"),
        requests("query", "anonymous", "ok"),
        requests("query", "Q2", "client_error"),
        requests("query", "Q3", "client_error"),
        requests("query", "Q2", "error"),
        requests("query", "Q3", "error"),
        requests("unknown", "anonymous", "rejected"),
        errors("GRAPHQL_VALIDATION_FAILED"),
        errors("BAD_USER_INPUT"),
        errors("BAD_REQUEST"),
        executor("compiled"),
        executor("standard"),
        http("/graphql", "2xx"),
        http("/graphql", "4xx"),
        http("/healthz", "2xx"),
        http("other", "4xx"),
        DURATION,
        COST_COUNT,
        COST_SUM,
    )
    async with running_app(settings) as app:
        client = app.client
        with counting(*keys) as grown:
            for name in ("Q1", "OurDashboard", "SomeClientsOwnName"):
                answer = await client.post("/graphql", json={"query": f"query {name} {LIST}"})
                assert answer.json()["data"]["localities"]["nodes"], answer.text
            assert "errors" not in (await client.post("/graphql", json={"query": LIST})).json()
            failed = await client.post("/graphql", json={"query": "query Q2 { nope }"})
            assert failed.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
            bad_id = await client.post(
                "/graphql", json={"query": 'query Q3 { property(id: "x") { id } }'}
            )
            assert bad_id.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            refused = await client.post("/graphql", content=b"{}")  # no JSON content type
            assert refused.status_code == 415
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/no/such/page")).status_code == 404
    assert grown == {
        requests("query", "Q1", "ok"): 1,
        requests("query", "OurDashboard", "ok"): 1,  # allow-listed by the setting
        requests("query", "other", "ok"): 1,  # a name nobody listed
        requests("query", "anonymous", "ok"): 1,
        # Errors the request caused are its own, not ours (they do not page).
        requests("query", "Q2", "client_error"): 1,
        requests("query", "Q3", "client_error"): 1,
        requests("query", "Q2", "error"): 0,
        requests("query", "Q3", "error"): 0,
        requests("unknown", "anonymous", "rejected"): 1,  # refused before it was parsed
        errors("GRAPHQL_VALIDATION_FAILED"): 1,
        errors("BAD_USER_INPUT"): 1,
        errors("BAD_REQUEST"): 1,
        executor("compiled"): 4,  # the plans answered the four lists
        executor("standard"): 1,  # no plan for a document that does not validate
        http("/graphql", "2xx"): 6,
        http("/graphql", "4xx"): 1,
        http("/healthz", "2xx"): 1,
        http("other", "4xx"): 1,  # never the path a client made up
        DURATION: 1,
        COST_COUNT: 6,  # every operation admitted by the query limits
        COST_SUM: grown[COST_SUM],
    }
    assert grown[COST_SUM] >= 4 * 3  # localities, nodes, name: at least 3 each


async def test_errors_of_ours_are_errors_and_the_requests_own_are_client_errors(
    postgres_url: str,
) -> None:
    """The outcome says whose fault an error is (the error-ratio alert pages on `error`
    only): SERVICE_UNAVAILABLE (here, a deadline no database call can meet) is ours; a
    document that does not validate is the request's, even on the same server then."""
    settings = settings_for(postgres_url, PROPINTEL_REQUEST_TIMEOUT_S=0.000001)
    ours = requests("query", "Q1", "error")
    theirs = requests("query", "Q2", "client_error")
    keys = (ours, theirs, requests("query", "Q1", "client_error"), requests("query", "Q2", "error"))
    async with running_app(settings) as app:
        with counting(*keys, errors("SERVICE_UNAVAILABLE")) as grown:
            unavailable = await app.client.post("/graphql", json={"query": f"query Q1 {LIST}"})
            assert [e["extensions"]["code"] for e in unavailable.json()["errors"]] == [
                "SERVICE_UNAVAILABLE"
            ]
            invalid = await app.client.post("/graphql", json={"query": "query Q2 { nope }"})
            assert invalid.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert grown == {
        ours: 1,
        theirs: 1,
        requests("query", "Q1", "client_error"): 0,
        requests("query", "Q2", "error"): 0,
        errors("SERVICE_UNAVAILABLE"): 1,
    }


async def test_rate_limit_decisions_by_role(postgres_url: str) -> None:
    settings = settings_for(
        postgres_url, PROPINTEL_RATE_LIMIT_ENABLED=True, RATE_LIMIT_ANONYMOUS="2/minute"
    )
    allowed = sample("propintel_ratelimit_decisions_total", role="anonymous", decision="allowed")
    limited = sample("propintel_ratelimit_decisions_total", role="anonymous", decision="limited")
    rejected = requests("query", "anonymous", "rejected")
    async with running_app(settings) as app:
        with counting(allowed, limited, rejected, errors("RATE_LIMITED")) as grown:
            statuses = [
                (await app.client.post("/graphql", json={"query": LIST})).status_code
                for _ in range(3)
            ]
    assert statuses == [200, 200, 429]
    # Refused before the operation was read: its type is unknown, not counted as a query.
    assert grown == {allowed: 2, limited: 1, rejected: 0, errors("RATE_LIMITED"): 1}


async def test_each_subscription_is_counted_once(postgres_url: str) -> None:
    subscribed = requests("subscription", "anonymous", "ok")
    refused = requests("subscription", "anonymous", "rejected")
    keys = (subscribed, refused, errors("BAD_REQUEST"), http("/graphql", "1xx"))
    app = create_app(settings_for(postgres_url))
    async with uvicorn_serving(app) as base:
        with counting(*keys) as grown:
            async with GraphQLWS.connect(base) as ws:
                await ws.subscribe("1", "subscription { alerts { id } }")
                await ws.receive(5)  # anonymous: the subscription answers UNAUTHENTICATED
                await ws.subscribe("2", "{ me { id } }")  # not a subscription: refused
                refusal = await ws.receive(5)
                assert refusal["type"] == "error", refusal
            async with httpx.AsyncClient(base_url=base) as client:  # the socket's end is counted
                await client.get("/healthz")
    assert grown == {
        subscribed: 1,
        refused: 1,
        errors("BAD_REQUEST"): 1,
        http("/graphql", "1xx"): 1,
    }
