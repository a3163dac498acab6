"""The app as a server runs it: `create_app`, then its lifespan (cache start, model registry,
training on first start, warming; and on the way out, the same stopped and the database
disposed), then requests over httpx's ASGI transport.

The lifespan runs through asgi-lifespan's LifespanManager, in a task of its own: pytest-asyncio
may set a fixture up and tear it down in different tasks, which a lifespan held open in the
fixture's own task (an anyio task group, Starlette's TestClient) does not survive.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import strawberry
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace.export import SpanExporter
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.datastructures import State

from app.asgi import create_app
from app.settings import Settings
from tests.support.settings import settings_for

BASE_URL = "http://propintel.test"


@dataclass(frozen=True, slots=True)
class RunningApp:
    app: Starlette
    """The app itself (`app.state`: db, settings, graphql, caching, models, trainer, ...)."""
    client: httpx.AsyncClient
    """A client of the running app (base URL `BASE_URL`)."""
    asgi: Any
    """What a transport should call: the app behind the lifespan manager."""

    @property
    def state(self) -> State:
        return self.app.state

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    def new_client(self, **options: Any) -> httpx.AsyncClient:
        """Another client of the same app (its own headers, cookies, or transport options:
        `raise_app_exceptions=False`); the caller closes it (`async with`)."""
        return asgi_client(self.asgi, **options)


class AppFactory(Protocol):
    """A fixture that starts apps: `async with factory(schema=..., **settings) as running:`."""

    def __call__(
        self, *, schema: strawberry.Schema | None = None, **overrides: Any
    ) -> contextlib.AbstractAsyncContextManager[RunningApp]: ...


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings,
    *,
    schema: strawberry.Schema | None = None,
    raise_app_exceptions: bool = True,
    startup_timeout: float = 60,
    span_exporter: SpanExporter | None = None,
) -> AsyncIterator[RunningApp]:
    """`create_app(settings, schema=schema)` with its lifespan running, and a client.

    `raise_app_exceptions=False`: an exception escaping the app becomes a 500 answer, as a
    server would send, instead of being raised in the test. `span_exporter`: tracing on,
    its spans there (an `InMemorySpanExporter`)."""
    app = create_app(settings, schema=schema, span_exporter=span_exporter)
    lifespan = LifespanManager(app, startup_timeout=startup_timeout, shutdown_timeout=60)
    try:
        async with (
            lifespan,
            asgi_client(lifespan.app, raise_app_exceptions=raise_app_exceptions) as client,
        ):
            yield RunningApp(app=app, client=client, asgi=lifespan.app)
    finally:
        # The lifespan freezes the heap after startup (app/asgi.py): fine for a process that
        # runs one app, a leak for a test run that starts dozens. Let the collector see it all
        # again.
        gc.unfreeze()


@contextlib.asynccontextmanager
async def running_app_with_redis(
    settings: Settings,
    *,
    schema: strawberry.Schema | None = None,
    forget: bool = True,
    span_exporter: SpanExporter | None = None,
) -> AsyncIterator[RunningApp]:
    """`running_app`, then (`forget`) the Redis keys of the app's namespace deleted: a
    namespace of the test's own leaves nothing behind."""
    try:
        async with running_app(settings, schema=schema, span_exporter=span_exporter) as running:
            yield running
    finally:
        if forget and settings.redis_url is not None:
            await forget_namespace(settings.redis_url, settings.cache_namespace)


async def forget_namespace(redis_url: str, namespace: str) -> None:
    """Deletes every Redis key of `namespace` (the cache's and the rate limits')."""
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{namespace}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def both_executors(url: str) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    """Two apps over the database at `url`: compiled plans on, and Strawberry's executor
    only (the reference), for tests that hold them equal."""
    async with (
        running_app(settings_for(url)) as compiled,
        running_app(settings_for(url, PROPINTEL_COMPILED_EXECUTION=False)) as standard,
    ):
        assert compiled.state.graphql.compiled is not None
        assert standard.state.graphql.compiled is None
        yield compiled, standard


def asgi_client(
    asgi: Any, *, raise_app_exceptions: bool = True, timeout: float = 30, **options: Any
) -> httpx.AsyncClient:
    """A client calling `asgi` in process (httpx's ASGI transport runs no lifespan: give it
    a `RunningApp.asgi`)."""
    transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=timeout, **options)
