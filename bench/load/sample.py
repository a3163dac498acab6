"""What the Locust users need from the database and the server, taken once at the start of a
run: real property ids and addresses, locality ids, signed-in users' tokens and an admin's.

The file is JSON (`PROPINTEL_LOAD_SAMPLE` names it for bench/load/locustfile.py):

    {"run_id": "...", "properties": [{"id": "UHJvcGVydHk6...", "address": "2/14 king st newtown"}],
     "localities": ["TG9jYWxpdHk6..."], "user_tokens": ["eyJ..."], "admin_token": "eyJ..."}
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from schema.ids import to_global_id

ADMIN_EMAIL = "load-admin@example.com"
# A load-test account on the load test's own database: the password only has to be the same
# from one run to the next (bootstrapAdmin promotes an existing account given its password).
ADMIN_PASSWORD = "load-test admin password"
USER_PASSWORD = "load-test user password"

PROPERTIES_SQL = """
SELECT p.id, concat_ws(' ',
         nullif(coalesce(p.unit_number || '/', '') || coalesce(p.house_number, ''), ''),
         p.street_name, l.name) AS address, l.name AS locality
FROM properties p TABLESAMPLE SYSTEM ($1) JOIN localities l ON l.id = p.locality_id
WHERE p.deleted_at IS NULL AND p.street_name IS NOT NULL
ORDER BY random() LIMIT $2"""
LOCALITIES_SQL = """
SELECT l.id FROM localities l
WHERE EXISTS (SELECT 1 FROM properties p WHERE p.locality_id = l.id AND p.deleted_at IS NULL)
ORDER BY random() LIMIT $1"""


async def _rows(dsn: str, properties: int, localities: int) -> tuple[list[Any], list[Any]]:
    connection = await asyncpg.connect(dsn)
    try:
        estimate = await connection.fetchval(
            "SELECT greatest(reltuples, 1) FROM pg_class WHERE relname = 'properties'"
        )
        # A block sample a few times larger than needed, shuffled: a full scan of 2.7 M rows
        # sorted by random() would take seconds.
        percent = min(100.0, 100.0 * properties * 4 / float(estimate or 1))
        found = await connection.fetch(PROPERTIES_SQL, percent, properties)
        if len(found) < properties // 2:  # a small table's blocks: take them all
            found = await connection.fetch(PROPERTIES_SQL, 100.0, properties)
        return list(found), list(await connection.fetch(LOCALITIES_SQL, localities))
    finally:
        await connection.close()


def database_sample(dsn: str, properties: int, localities: int) -> dict[str, Any]:
    found, places = asyncio.run(_rows(dsn, properties, localities))
    if not found or not places:
        raise SystemExit(f"{dsn}: no live properties or localities to load-test with")
    return {
        "properties": [
            {
                "id": str(to_global_id("Property", row["id"])),
                "address": row["address"],
                "locality": row["locality"],
            }
            for row in found
        ],
        "localities": [str(to_global_id("Locality", row["id"])) for row in places],
    }


def _call(
    client: httpx.Client, query: str, token: str | None = None, **variables: Any
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    answer: dict[str, Any] = response.json()
    if response.status_code != 200 or answer.get("errors"):
        raise SystemExit(f"setting up the load test's accounts failed: {answer.get('errors')}")
    data: dict[str, Any] = answer["data"]
    return data


LOGIN = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken } }"


def accounts(
    base_url: str, admin_api_key: str, run_id: str, users: int, properties: list[dict[str, str]]
) -> dict[str, Any]:
    """Registers `users` accounts (each watches two properties and saves a search, so that its
    `me` has something to read) and makes the admin with the bootstrap key; returns their
    access tokens. Done once per run, before the load: password hashing is not what we
    measure."""
    tokens: list[str] = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for number in range(users):
            email = f"load-{run_id}-{number}@example.com"
            _call(
                client,
                "mutation($email: String!, $password: String!) { register(email: $email, password: $password) { id } }",
                email=email,
                password=USER_PASSWORD,
            )
            token = _call(client, LOGIN, email=email, password=USER_PASSWORD)["login"][
                "accessToken"
            ]
            for watched in properties[number * 2 : number * 2 + 2]:
                _call(
                    client,
                    "mutation($id: ID!) { watchProperty(id: $id) { id } }",
                    token,
                    id=watched["id"],
                )
            suburb = properties[number % len(properties)]["locality"]
            search = {"name": f"load {number}", "filter": {"localityName": suburb}}
            _call(
                client,
                "mutation($input: CreateSavedSearchInput!) { createSavedSearch(input: $input) { id } }",
                token,
                input=search,
            )
            tokens.append(str(token))
        _call(
            client,
            "mutation($email: String!, $password: String!) { bootstrapAdmin(email: $email, password: $password) { role } }",
            admin_api_key,
            email=ADMIN_EMAIL,
            password=ADMIN_PASSWORD,
        )
        admin = _call(client, LOGIN, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)["login"][
            "accessToken"
        ]
    return {"user_tokens": tokens, "admin_token": str(admin)}


def write_sample(path: Path, sample: dict[str, Any]) -> None:
    path.write_text(json.dumps(sample), encoding="utf-8")
