from __future__ import annotations

import httpx

from tests.support.apps import running_app
from tests.support.prod import prod_settings
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


async def test_the_root_answers_api_clients_json_and_browsers_the_web_app(
    client: httpx.AsyncClient,
) -> None:
    # The web app's page itself: tests/test_web_app.py.
    about = await client.get("/", headers={"accept": "application/json"})
    assert about.headers["content-type"] == "application/json"
    assert about.json()["graphql"] == "/graphql"
    page = await client.get("/", headers={"accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert (await client.post("/")).status_code == 405


async def test_the_root_in_prod_says_where_the_api_and_its_docs_are(sqlite_url: str) -> None:
    docs = "https://docs.example.com/propintel"
    async with running_app(prod_settings(sqlite_url, PROPINTEL_DOCS_URL=docs)) as app:
        response = await app.client.get("/", headers={"accept": "application/json"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        about = response.json()
        assert (about["graphql"], about["docs"]) == ("/graphql", docs)
        assert "graphiql" not in response.text.lower()
        # The example it gives answers.
        answer = await app.client.post("/graphql", json=about["example"])
        assert answer.status_code == 200
        assert "errors" not in answer.json()
    async with running_app(prod_settings(sqlite_url)) as app:
        about = (await app.client.get("/")).json()
        assert about["graphql"] == "/graphql"
        assert "docs" not in about  # none configured: nothing to link to
