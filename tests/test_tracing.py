"""Traces, in process (an in-memory exporter): an incoming `traceparent` is continued through
the server span, the GraphQL span (on both executors) and the asyncpg and Redis spans under
it; tracing off installs nothing. The live server's OTLP export to a local receiver is
checked in tests/test_logging.py (one live server for logs and traces)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import pytest
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app.http.direct import DirectRoutes
from app.http.observe import Observe
from app.telemetry import tracing
from tests.support.apps import running_app, running_app_with_redis
from tests.support.settings import COMPILED_EXECUTION, redis_cache_settings, settings_for

DOCUMENT = "query TracedLocalities { localities(first: 3) { nodes { name postcode } } }"


def traceparent() -> tuple[str, str, str]:
    """(header, trace id, parent span id): a caller's W3C trace context, sampled."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def hex_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def parent_id(span: ReadableSpan) -> str | None:
    return format(span.parent.span_id, "016x") if span.parent is not None else None


def of_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if hex_trace(span) == trace_id]


def under(span: ReadableSpan, ancestor: ReadableSpan, spans: Sequence[ReadableSpan]) -> bool:
    """Whether `ancestor` is `span`'s parent, or its parent's, ... within `spans`."""
    by_id = {hex_id(s): s for s in spans}
    parent = parent_id(span)
    while parent is not None:
        if parent == hex_id(ancestor):
            return True
        found = by_id.get(parent)
        parent = parent_id(found) if found is not None else None
    return False


def one(spans: Sequence[ReadableSpan], what: str) -> ReadableSpan:
    assert len(spans) == 1, (what, [s.name for s in spans])
    return spans[0]


@pytest.mark.parametrize("executor", sorted(COMPILED_EXECUTION))
async def test_a_traceparent_is_continued_down_to_the_database(
    postgres_url: str, executor: str
) -> None:
    """On both executors: the compiled plan (answered by the JSON front door) and
    Strawberry's (the view): no schema extension, which would turn plans off."""
    exporter = InMemorySpanExporter()
    settings = settings_for(postgres_url, PROPINTEL_COMPILED_EXECUTION=COMPILED_EXECUTION[executor])
    async with running_app(settings, span_exporter=exporter) as app:
        header, trace_id, caller_span = traceparent()
        response = await app.client.post(
            "/graphql", json={"query": DOCUMENT}, headers={"traceparent": header}
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["localities"]["nodes"], response.text
        compiled = app.state.graphql.compiled
        if executor == "compiled":
            assert compiled is not None
            assert compiled.counts.compiled == 1
        else:
            assert compiled is None

    spans = of_trace(exporter, trace_id)
    server = one([s for s in spans if s.kind is SpanKind.SERVER], "server span")
    assert server.name == "POST /graphql"
    assert parent_id(server) == caller_span  # the caller's span is its parent
    assert server.parent is not None
    assert server.parent.is_remote
    graphql = one([s for s in spans if s.name == "query TracedLocalities"], "GraphQL span")
    assert parent_id(graphql) == hex_id(server)
    assert dict(graphql.attributes or {}) == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "TracedLocalities",
    }  # no graphql.document unless asked for
    statements = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    assert statements, [s.name for s in spans]
    for statement in statements:
        assert statement.kind is SpanKind.CLIENT
        assert under(statement, graphql, spans), statement.name
        assert "localities" in str((statement.attributes or {}).get("db.statement"))


async def test_an_error_marks_the_graphql_span_and_the_document_is_there_when_asked(
    postgres_url: str,
) -> None:
    exporter = InMemorySpanExporter()
    settings = settings_for(postgres_url, PROPINTEL_OTEL_INCLUDE_DOCUMENT=True)
    async with running_app(settings, span_exporter=exporter) as app:
        header, trace_id, _ = traceparent()
        bad = "query Wrong { localities(first: 1) { nodes { nope } } }"
        response = await app.client.post(
            "/graphql", json={"query": bad}, headers={"traceparent": header}
        )
        assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        header, good_trace, _ = traceparent()
        await app.client.post("/graphql", json={"query": DOCUMENT}, headers={"traceparent": header})

    failed = one([s for s in of_trace(exporter, trace_id) if s.name == "query Wrong"], "failed")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "GRAPHQL_VALIDATION_FAILED"
    assert (failed.attributes or {})["graphql.document"] == bad
    answered = [s for s in of_trace(exporter, good_trace) if s.name == "query TracedLocalities"]
    assert (one(answered, "answered").attributes or {})["graphql.document"] == DOCUMENT
    assert answered[0].status.status_code is StatusCode.UNSET


async def test_redis_commands_are_spans_of_the_request(postgres_url: str) -> None:
    exporter = InMemorySpanExporter()
    async with running_app_with_redis(
        redis_cache_settings(postgres_url), span_exporter=exporter
    ) as app:
        header, trace_id, _ = traceparent()
        response = await app.client.post(
            "/graphql", json={"query": DOCUMENT}, headers={"traceparent": header}
        )
        assert response.headers.get("x-cache") == "miss", response.headers

    spans = of_trace(exporter, trace_id)
    graphql = one([s for s in spans if s.name == "query TracedLocalities"], "GraphQL span")
    commands = [s for s in spans if (s.attributes or {}).get("db.system") == "redis"]
    assert commands, [s.name for s in spans]
    assert all(s.kind is SpanKind.CLIENT and under(s, graphql, spans) for s in commands)


async def test_spans_outside_requests_start_no_trace(postgres_url: str) -> None:
    """The alert poll and startup's statements run outside any request: no one-span traces
    of them (the sampler drops client spans without a parent)."""
    exporter = InMemorySpanExporter()
    async with running_app(settings_for(postgres_url), span_exporter=exporter) as app:
        assert (await app.client.get("/readyz")).status_code == 200  # not traced either
    assert exporter.get_finished_spans() == ()


async def test_tracing_off_installs_nothing(postgres_url: str) -> None:
    async with running_app(settings_for(postgres_url)) as app:
        assert app.state.tracing is None
        assert app.state.graphql.tracing is None
        installed: list[object] = [m.cls for m in app.app.user_middleware]
        assert installed == [Observe, DirectRoutes]  # the edge and the router bypass only
        assert not tracing.active()
        assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
        assert not RedisInstrumentor().is_instrumented_by_opentelemetry
        response = await app.client.post(
            "/graphql", json={"query": DOCUMENT}, headers={"traceparent": traceparent()[0]}
        )
        assert response.status_code == 200
        assert "traceparent" not in response.headers
