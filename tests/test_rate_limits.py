"""Rate limits per client: moving windows in Redis shared by every process, or in memory on
the embedded default. Over the limit: 429, Retry-After, RATE_LIMITED; served again after."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.auth.principal import Role
from tests.support.apps import AppFactory, RunningApp, running_app
from tests.support.credentials import bearer
from tests.support.settings import settings_for

QUERY = {"query": "{ localities(first: 1) { nodes { name } } }"}
LIMITS: dict[str, Any] = {
    "PROPINTEL_RATE_LIMIT_ENABLED": True,
    "RATE_LIMIT_ANONYMOUS": "5/3 seconds",
    "RATE_LIMIT_USER": "8/3 seconds",
    "RATE_LIMIT_ADMIN": "1000/3 seconds",
    "PROPINTEL_TRUSTED_PROXIES": 1,  # tests pose as different clients by X-Forwarded-For
}


async def ask(app: RunningApp, headers: dict[str, str]) -> httpx.Response:
    return await app.client.post("/graphql", json=QUERY, headers=headers)


def client_at(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


async def exhaust(app: RunningApp, headers: dict[str, str], allowed: int) -> httpx.Response:
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
async def shared_apps(pg_redis_app: AppFactory) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    """Two apps (two processes) counting in one Redis namespace; the cache off."""
    shared: dict[str, Any] = {"PROPINTEL_CACHE_NAMESPACE": f"rl{uuid.uuid4().hex[:8]}"}
    async with (
        pg_redis_app(PROPINTEL_CACHE_ENABLED=False, **LIMITS, **shared) as first,
        pg_redis_app(PROPINTEL_CACHE_ENABLED=False, **LIMITS, **shared) as second,
    ):
        yield first, second


async def test_over_the_limit_is_refused_until_the_window_moves(
    shared_apps: tuple[RunningApp, RunningApp],
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


async def test_embedded_mode_limits_in_memory(sqlite_app: AppFactory) -> None:
    async with sqlite_app(**LIMITS) as app:
        me = client_at("198.51.100.1")
        refused = await exhaust(app, me, 5)
        retry_after = check_refusal(refused, 3)
        assert (await ask(app, me)).status_code == 429  # every request past it, not just one
        await asyncio.sleep(retry_after + 0.2)
        assert (await ask(app, me)).status_code == 200


async def test_a_redis_outage_falls_back_to_local_counting(sqlite_url: str) -> None:
    """Nothing listens on this port: every process counts in its own memory instead."""
    settings = settings_for(sqlite_url, **LIMITS, REDIS_URL="redis://127.0.0.1:1/0")
    async with running_app(settings) as app:
        refused = await exhaust(app, client_at("198.51.100.2"), 5)
        check_refusal(refused, 3)
