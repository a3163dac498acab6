"""The ASGI application: Starlette routes, the GraphQL endpoint, and the lifespan that owns
the database engine."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import strawberry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from app.accounts.service import Accounts
from app.alerts.service import AlertService
from app.auth.identify import Authenticator
from app.auth.tokens import AccessTokens
from app.background import build_registry
from app.cache.service import CacheService
from app.estimates.service import ModelRegistry
from app.estimates.tasks import Trainer
from app.graphql.query_limits import QueryAnalyzer
from app.graphql.warming import Warmer
from app.http.direct import DirectRoutes
from app.http.gate import Gate
from app.http.graphiql import graphiql_assets
from app.http.health import healthz, readyz
from app.http.json_door import GraphQLEndpoint
from app.http.metrics import metrics_route, preinitialise
from app.http.observe import Observe
from app.http.rate_limits import RateLimiter
from app.http.view import PropintelGraphQL
from app.http.webapp import webapp_routes
from app.jobs.metrics import JobCatalogue
from app.jobs.service import JobQueue
from app.jobs.worker import Worker
from app.settings import Profile, Settings, get_settings
from app.settings.policies import database_dependency, redis_dependency
from app.streams.broker import AlertBroker
from app.telemetry import multiprocess
from app.telemetry.labels import TALLY
from app.telemetry.logging import configure_logging
from app.telemetry.tracing import create_tracing
from app.webhooks.service import WebhookService
from db.engine import Database, create_engine
from db.tls import asyncpg_ssl
from schema import build_schema

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


def create_app(
    settings: Settings | None = None,
    *,
    schema: strawberry.Schema | None = None,
    span_exporter: SpanExporter | None = None,
) -> Starlette:
    """`schema`: another schema than the product's (tests that add fields of their own).
    `span_exporter`: traces go there (tests: an in-memory exporter), as they would to
    OTEL_EXPORTER_OTLP_ENDPOINT."""
    settings = settings or get_settings()
    tracing = create_tracing(
        settings.otel_endpoint,
        service_name=settings.otel_service_name,
        include_document=settings.otel_include_document,
        exporter=span_exporter,
    )
    postgresql = database_dependency(settings)
    redis = redis_dependency(settings)
    ssl = asyncpg_ssl(settings.db_sslmode, settings.db_sslrootcert)
    db = Database(
        create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            ssl=ssl,
        ),
        pool_size=settings.db_pool_size,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        guard=postgresql.call if settings.database_url.startswith("postgresql") else None,
        ssl=ssl,
    )
    caching = (
        CacheService(settings, db, redis_guard=redis.call, warming=Warmer)
        if settings.cache_enabled
        else None
    )
    production = settings.profile is Profile.PROD
    tokens = AccessTokens(
        settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        settings.access_token_ttl_s,
    )
    authenticator = Authenticator(db, settings, tokens)
    role_limits = (
        settings.query_limits_anonymous,
        settings.query_limits_user,
        settings.query_limits_admin,
    )
    schema = schema or build_schema(
        count_statements=settings.exposes_debug_info,
        production=production,
        max_batch=max(limits.max_batch for limits in role_limits),
    )
    models = ModelRegistry(db, poll_s=settings.model_poll_s)
    trainer = Trainer(db, models, settings.database_url)
    broker = AlertBroker(settings, db)
    # The in-process job worker (PROPINTEL_WORKER, default on; off when `propintel worker`
    # processes run the jobs). It trains models too, in a child process (Trainer).
    # Built with or without a worker here: /metrics names every job kind and period.
    registry = build_registry(
        db=db, settings=settings, broker=broker, models=models, trainer=trainer
    )
    worker = Worker(db, registry, settings) if settings.worker_enabled else None
    jobs_catalogue = JobCatalogue.of(registry)
    preinitialise(jobs_catalogue)
    graphql = PropintelGraphQL(
        db=db,
        settings=settings,
        caching=caching,
        accounts=Accounts(db, settings, tokens, authenticator),
        models=models,
        trainer=trainer,
        alerts=AlertService(db, settings),
        webhooks=WebhookService(db, settings),
        jobs=JobQueue(db, settings),
        broker=broker,
        schema=schema,
        graphql_ide=None if production else "graphiql",
    )
    analyzer = QueryAnalyzer(
        schema._schema,
        default_page_size=settings.max_page_size,
        max_tokens=max(limits.max_tokens for limits in role_limits),
    )
    gate = Gate(
        GraphQLEndpoint(graphql),
        settings=settings,
        authenticator=authenticator,
        rate_limiter=RateLimiter(settings, redis) if settings.rate_limit_enabled else None,
        analyzer=analyzer,
    )
    graphql.analyzer = analyzer  # the same limits for subscriptions (app/http/ws.py)
    graphql.tracing = tracing

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if tracing is not None:
            tracing.start()  # first: startup's statements are traced too
        if caching is not None:
            await caching.start()
        await models.start()
        await broker.start()
        if settings.train_on_start:
            await trainer.start_if_registry_empty()
        if worker is not None:
            await worker.start()
        # Everything built so far (modules, schema, plans) lives as long as the process:
        # move it out of the collector's way, so a full collection scans only what requests
        # create (full collections over the whole heap paused requests for 100-130 ms).
        gc.freeze()
        try:
            yield
        finally:
            if worker is not None:  # first: its jobs may use what follows
                await worker.stop()
            await broker.close()
            await trainer.close()
            await models.close()
            if caching is not None:
                await caching.close()
            await db.dispose()
            TALLY.flush()  # the request metrics still pending (app/telemetry/labels.py)
            # This worker's live gauges leave the sum now (a killed one's leave at the next
            # scrape: app/telemetry/multiprocess.py).
            multiprocess.mark_dead(os.getpid())
            if tracing is not None:
                tracing.shutdown()  # last: flushes the spans of everything above

    app = Starlette(
        routes=[
            Route("/graphql", gate, methods=["GET", "POST"]),
            # Subscriptions (graphql-transport-ws): the credential comes in connection_init,
            # which the view checks (the gate's checks are for HTTP requests).
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            metrics_route(settings, db, jobs_catalogue),
            *([] if production else [graphiql_assets()]),  # GraphiQL's own files
            # The web app at / and its routes (API clients asking / for JSON get the "about").
            *webapp_routes(docs_url=settings.docs_url),
        ],
        lifespan=lifespan,
        middleware=[
            # Outermost: the server span (continuing an incoming traceparent), then the
            # request's record, id, access line and metrics (app/http/observe.py).
            *([Middleware(tracing.asgi_middleware)] if tracing is not None else []),
            Middleware(Observe, operations=graphql.operation_names, production=production),
            # Innermost: GET and POST /graphql to the gate, past the router (app/http/direct.py).
            Middleware(DirectRoutes, routes={"/graphql": gate}),
        ],
    )
    app.state.db = db
    app.state.settings = settings
    app.state.graphql = graphql
    app.state.caching = caching
    app.state.models = models
    app.state.trainer = trainer
    app.state.worker = worker
    app.state.broker = broker
    app.state.dependencies = {"postgresql": postgresql, "redis": redis}
    app.state.tracing = tracing
    return app


def create_default_app() -> Starlette:
    """uvicorn factory (`app.asgi:create_default_app`): settings from the environment. Each
    worker process configures its logs here (`serve` spawns them)."""
    settings = get_settings()
    configure_logging(settings.logs_as_json, settings.log_level)
    return create_app(settings)
