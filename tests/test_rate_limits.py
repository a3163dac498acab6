"""Rate limits per client: moving windows in Redis shared by every process, or in memory on
the embedded default. Over the limit: 429, Retry-After, RATE_LIMITED; served again after."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.asgi import create_app
from app.auth.principal import Role
from tests.conftest import settings_for
from tests.credentials import bearer

REDIS_URL = os.environ.get("PROPINTEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUERY = {"query": "{ localities(first: 1) { nodes { name } } }"}
LIMITS = {
    "PROPINTEL_RATE_LIMIT_ENABLED": True,
    "RATE_LIMIT_ANONYMOUS": "5/3 seconds",
    "RATE_LIMIT_USER": "8/3 seconds",
    "RATE_LIMIT_ADMIN": "1000/3 seconds",
    "PROPINTEL_TRUSTED_PROXIES": 1,  # tests pose as different clients by X-Forwarded-For
}


def limited_app(url: str, **overrides: Any) -> Starlette:
    return create_app(settings_for(url, **LIMITS, **overrides))


async def ask(app: Starlette, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://propintel.test") as client:
        return await client.post("/graphql", json=QUERY, headers=headers)


def client_at(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


async def exhaust(app: Starlette, headers: dict[str, str], allowed: int) -> httpx.Response:
    """Spends the window's budget, checks the request past it is refused, returns that."""
    for _ in range(allowed):
        response = await ask(app, headers)
        assert response.status_code == 200, response.text
    refused = await ask(app, headers)
    assert refused.status_code == 429, refused.text
    return refused


def check_refusal(response: httpx.Response, window_s: float) -> int:
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window_s
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfterSeconds"] == retry_after
    assert "5 per 3 seconds" in error["message"] or "8 per 3 seconds" in error["message"]
    return retry_after


@pytest.fixture
async def shared_apps(postgres_url: str) -> AsyncIterator[tuple[Starlette, Starlette]]:
    namespace = f"rl{uuid.uuid4().hex[:8]}"
    apps = tuple(
        limited_app(postgres_url, REDIS_URL=REDIS_URL, PROPINTEL_CACHE_NAMESPACE=namespace)
        for _ in range(2)
    )
    yield apps[0], apps[1]
    for app in apps:
        await app.state.db.dispose()


async def test_over_the_limit_is_refused_until_the_window_moves(
    shared_apps: tuple[Starlette, Starlette],
) -> None:
    first, second = shared_apps
    me = client_at("203.0.113.7")
    # The two processes count against one budget (the window lives in Redis).
    for app in (first, second, first, second, first):
        assert (await ask(app, me)).status_code == 200
    started = time.monotonic()
    refusals = [await ask(app, me) for app in (second, first, second)]
    assert {r.status_code for r in refusals} == {429}
    retry_after = check_refusal(refusals[0], 3)
    # Others are not affected: another address, a user (counted by id, with its own limit).
    assert (await ask(first, client_at("203.0.113.8"))).status_code == 200
    user = client_at("203.0.113.7", **bearer(42, Role.USER))
    await exhaust(second, user, 8)
    # Served again once the window has moved past the first requests.
    await asyncio.sleep(max(0.0, retry_after - (time.monotonic() - started)) + 0.2)
    assert (await ask(first, me)).status_code == 200


async def test_embedded_mode_limits_in_memory(sqlite_url: str) -> None:
    app = limited_app(sqlite_url)
    try:
        me = client_at("198.51.100.1")
        refused = await exhaust(app, me, 5)
        retry_after = check_refusal(refused, 3)
        assert (await ask(app, me)).status_code == 429  # every request past it, not just one
        await asyncio.sleep(retry_after + 0.2)
        assert (await ask(app, me)).status_code == 200
    finally:
        await app.state.db.dispose()


async def test_a_redis_outage_falls_back_to_local_counting(sqlite_url: str) -> None:
    """Nothing listens on this port: every process counts in its own memory instead."""
    app = limited_app(sqlite_url, REDIS_URL="redis://127.0.0.1:1/0", PROPINTEL_CACHE_ENABLED=False)
    try:
        refused = await exhaust(app, client_at("198.51.100.2"), 5)
        check_refusal(refused, 3)
    finally:
        await app.state.db.dispose()
