"""OpenTelemetry traces: off and free unless an OTLP endpoint is set (or a test hands in an
exporter).

Off, nothing is installed: no ASGI middleware, no instrumented driver, and the request path
asks `Tracing | None` (an attribute) before it would make a span; log lines check `active()`,
a module global. On, a `Tracing` owns its TracerProvider (service.name, the OTLP/HTTP
exporter behind a batch processor) and:

- the server span: opentelemetry-instrumentation-asgi's middleware, which continues an
  incoming W3C `traceparent` (the global propagator: tracecontext and baggage);
- a GraphQL span per operation (`operation_span`), made by the HTTP front door and the view
  around execution, so both executors get one (a Strawberry schema extension would turn
  compiled plans off);
- asyncpg and Redis client spans (their contrib instrumentations, process-wide while it runs),
  children of whatever span is current when the statement or command is sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import Link
    from opentelemetry.trace.span import TraceState
    from opentelemetry.util.types import Attributes

# OpenTelemetry semantic conventions (graphql.*); the constants live in the incubating
# module of opentelemetry-semantic-conventions, spelled out here to keep it off our imports.
OPERATION_TYPE = "graphql.operation.type"
OPERATION_NAME = "graphql.operation.name"
DOCUMENT = "graphql.document"
UNTRACED_PATHS = "/healthz,/readyz,/metrics"
"""Probes and scrapes: a span every few seconds that says nothing."""

_running = 0
"""How many `Tracing`s have started in this process (tests may run several, one at a time)."""


def active() -> bool:
    return _running > 0


class Tracing:
    def __init__(self, provider: TracerProvider, *, include_document: bool) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("propintel.graphql")
        self.include_document = include_document
        self._started = False

    def asgi_middleware(self, app: Any) -> Any:
        """The server span around `app` (Starlette: `Middleware(tracing.asgi_middleware)`)."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(
            app,
            excluded_urls=UNTRACED_PATHS,
            tracer_provider=self.provider,
            # A span per ASGI message would double a small request's spans for no insight.
            exclude_spans=["receive", "send"],
        )

    def start(self) -> None:
        """Instruments asyncpg and Redis (process-wide) for this provider."""
        global _running
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        if self._started:
            return
        self._started = True
        _running += 1
        # Never the statements' parameters: they hold what callers sent.
        asyncpg = AsyncPGInstrumentor(capture_parameters=False)  # type: ignore[no-untyped-call]
        asyncpg.instrument(tracer_provider=self.provider)
        RedisInstrumentor().instrument(tracer_provider=self.provider)

    def shutdown(self) -> None:
        """Removes the instrumentation and flushes what the batch processor still holds."""
        global _running
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        if self._started:
            self._started = False
            _running -= 1
            if _running == 0:
                AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
                RedisInstrumentor().uninstrument()
        self.provider.shutdown()

    @contextmanager
    def operation_span(
        self, operation_type: str | None, operation_name: str | None, document: str | None
    ) -> Iterator[Span]:
        """A GraphQL operation's span, named as the conventions say: `{type} {name}`, or the
        type alone, or `GraphQL Operation` when the document does not say."""
        attributes: dict[str, str] = {}
        if operation_type is not None:
            attributes[OPERATION_TYPE] = operation_type
        if operation_name:
            attributes[OPERATION_NAME] = operation_name
        if self.include_document and document is not None:
            attributes[DOCUMENT] = document
        name = " ".join(part for part in (operation_type, operation_name) if part)
        with self.tracer.start_as_current_span(
            name or "GraphQL Operation", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            yield span


def mark_errors(span: Span, codes: list[str]) -> None:
    """An operation whose response holds errors: the span's status says so, with the codes."""
    if codes:
        span.set_status(Status(StatusCode.ERROR, ",".join(sorted(set(codes)))))


def create_tracing(
    endpoint: str | None,
    *,
    service_name: str,
    include_document: bool = False,
    exporter: SpanExporter | None = None,
) -> Tracing | None:
    """None (tracing off) without an endpoint or an exporter. `exporter` (tests: an
    `InMemorySpanExporter`) is fed synchronously, each span as it ends."""
    if endpoint is None and exporter is None:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}), sampler=_request_sampler()
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        assert endpoint is not None
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(endpoint)))
    return Tracing(provider, include_document=include_document)


def _request_sampler() -> Sampler:
    """Traces start at requests: a statement or Redis command with no span around it (the
    alert poll, the job worker, startup) would start a trace of one span every few seconds."""
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )

    class NoClientRoots(Sampler):
        def should_sample(
            self,
            parent_context: Context | None,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Attributes = None,
            links: Sequence[Link] | None = None,
            trace_state: TraceState | None = None,
        ) -> SamplingResult:
            if kind is SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            return ALWAYS_ON.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return "NoClientRoots"

    return ParentBased(root=NoClientRoots())


def _otlp_exporter(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # OTEL_EXPORTER_OTLP_ENDPOINT is the collector's base URL: traces go to its /v1/traces.
    # A traces-only endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is used as it is given.
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return OTLPSpanExporter()
    return OTLPSpanExporter(endpoint=endpoint.removesuffix("/") + "/v1/traces")
