"""The ASGI application: Starlette routes, the GraphQL endpoint, and the lifespan that owns
the database engine."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
from app.http.front import front_door
from app.http.gate import Gate
from app.http.graphiql import graphiql_assets
from app.http.headers import SecurityHeaders
from app.http.health import healthz, readyz
from app.http.json_door import GraphQLEndpoint
from app.http.rate_limits import RateLimiter
from app.http.view import PropintelGraphQL
from app.jobs.service import JobQueue
from app.jobs.worker import Worker
from app.settings import Profile, Settings, get_settings
from app.settings.policies import database_dependency, redis_dependency
from app.streams.broker import AlertBroker
from app.webhooks.service import WebhookService
from db.engine import Database, create_engine
from db.tls import asyncpg_ssl
from schema import build_schema


def create_app(
    settings: Settings | None = None, *, schema: strawberry.Schema | None = None
) -> Starlette:
    """`schema`: another schema than the product's (tests that add fields of their own)."""
    settings = settings or get_settings()
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
    worker = (
        Worker(
            db,
            build_registry(db=db, settings=settings, broker=broker, models=models, trainer=trainer),
            settings,
        )
        if settings.worker_enabled
        else None
    )
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

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
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

    app = Starlette(
        routes=[
            Route("/", front_door(production=production, docs_url=settings.docs_url)),
            Route("/graphql", gate, methods=["GET", "POST"]),
            # Subscriptions (graphql-transport-ws): the credential comes in connection_init,
            # which the view checks (the gate's checks are for HTTP requests).
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *([] if production else [graphiql_assets()]),  # GraphiQL's own files
        ],
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders, production=production)],
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
    return app


def create_default_app() -> Starlette:
    """uvicorn factory (`app.asgi:create_default_app`): settings from the environment."""
    return create_app()
