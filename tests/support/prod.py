"""The prod profile in process: its settings (with secrets of this test run), the running app,
and a spy on every database read and write transaction the app makes."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.settings import Profile, Settings
from tests.support.apps import running_app
from tests.support.settings import settings_for

PROD_JWT_SECRET = secrets.token_hex(24)  # 48 characters, fresh per test process
PROD_ADMIN_KEY = secrets.token_hex(12)  # 24 characters
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def prod_settings(url: str, **overrides: Any) -> Settings:
    """The prod profile with its required secrets; the L1 cache on as in production (no Redis,
    no warming: the tests must see what the database path does on a cold cache)."""
    values: dict[str, Any] = {
        "PROPINTEL_PROFILE": Profile.PROD,
        "JWT_SECRET": PROD_JWT_SECRET,
        "ADMIN_API_KEY": PROD_ADMIN_KEY,
        "PROPINTEL_CACHE_ENABLED": True,
        "REDIS_URL": None,
        "PROPINTEL_CACHE_WARM": 0,
        **overrides,
    }
    return settings_for(url, **values)


@dataclass
class DbSpy:
    """Counts the app's database reads (`Database.fetch_all`, which every repository read and
    compiled plan goes through) and write transactions (`Database.begin`)."""

    reads: int = 0
    writes: int = 0
    statements: list[str] = field(default_factory=list)

    def reset(self) -> DbSpy:
        self.reads = self.writes = 0
        self.statements.clear()
        return self

    @property
    def untouched(self) -> bool:
        return self.reads == 0 and self.writes == 0


@dataclass
class ProdApp:
    app: Starlette
    client: httpx.AsyncClient
    spy: DbSpy


def install_spy(app: Starlette, patch: pytest.MonkeyPatch) -> DbSpy:
    db = app.state.db
    spy = DbSpy()
    fetch_all = db.fetch_all
    begin = db.begin

    async def counting_fetch_all(statement: Any, *args: Any, **kwargs: Any) -> Any:
        spy.reads += 1
        spy.statements.append(str(statement)[:120])
        return await fetch_all(statement, *args, **kwargs)

    def counting_begin(*args: Any, **kwargs: Any) -> Any:
        spy.writes += 1
        return begin(*args, **kwargs)

    patch.setattr(db, "fetch_all", counting_fetch_all)
    patch.setattr(db, "begin", counting_begin)
    return spy


@contextlib.asynccontextmanager
async def running_prod(settings: Settings) -> AsyncIterator[ProdApp]:
    """The app with its real lifespan, a client that gets a 500 (as a server would send)
    for an exception escaping the app, and a spy on its database from the end of startup on."""
    async with running_app(settings, raise_app_exceptions=False) as running:
        with pytest.MonkeyPatch.context() as patch:
            spy = install_spy(running.app, patch)
            yield ProdApp(running.app, running.client, spy)
