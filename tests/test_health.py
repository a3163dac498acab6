from __future__ import annotations

import httpx

from tests.support.apps import running_app
from tests.support.settings import settings_for


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"]["status"] == "up"


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    async with running_app(settings_for("postgresql://postgres@127.0.0.1:9/none")) as app:
        client = app.client
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"]["status"] == "down"
        breaker = ready.json()["dependencies"]["postgresql"]["breaker"]
        assert breaker["state"] == "CLOSED"
        assert breaker["calls"] >= 1
