"""Accounts over HTTP, on PostgreSQL and SQLite: registration, sign-in, rotating refresh
tokens, API keys, roles, and that nobody sees anyone else's rows."""

from __future__ import annotations

import asyncpg
import httpx
import jwt
import pytest

from tests.support.accounts import LOGIN, PASSWORD, REGISTER, bearer_token, new_email, signed_in
from tests.support.credentials import BOOTSTRAP_KEY, JWT_SECRET
from tests.support.graphql import gql

REFRESH = """mutation($t: String!) { refreshToken(refreshToken: $t) {
    accessToken refreshToken user { email } } }"""
ME = "{ me { id email role } }"
CREATE_KEY = (
    "mutation($n: String!) { createApiKey(name: $n) { key apiKey { id name prefix revokedAt } } }"
)
KEYS = "{ apiKeys { id name prefix revokedAt } }"
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }"


async def test_register_login_me_and_token_rotation(client: httpx.AsyncClient) -> None:
    email = new_email()
    user = (await gql(client, REGISTER, e=email.upper(), p=PASSWORD)).ok()["register"]
    assert user["email"] == email  # normalised
    assert user["role"] == "USER"

    session = (await gql(client, LOGIN, e=email, p=PASSWORD)).ok()["login"]
    assert session["tokenType"] == "Bearer"
    assert session["user"] == {"email": email, "role": "USER"}
    claims = jwt.decode(
        session["accessToken"], JWT_SECRET, algorithms=["HS256"], audience="propintel-api"
    )
    assert claims["role"] == "USER"
    assert claims["exp"] - claims["iat"] == 900

    me = (await gql(client, ME, headers=bearer_token(session["accessToken"]))).ok()["me"]
    assert me == {"id": user["id"], "email": email, "role": "USER"}
    assert (await gql(client, ME)).ok() == {"me": None}

    # Rotation: each refresh token is spent once and gives the next pair.
    second = (await gql(client, REFRESH, t=session["refreshToken"])).ok()["refreshToken"]
    assert second["refreshToken"] != session["refreshToken"]
    third = (await gql(client, REFRESH, t=second["refreshToken"])).ok()["refreshToken"]
    # Presenting a spent token again means it leaked: the whole session is revoked,
    # including the newest token of that family.
    reused = await gql(client, REFRESH, t=session["refreshToken"])
    assert reused.error_codes() == ["UNAUTHENTICATED"]
    assert "already used" in reused.errors[0]["message"]
    after_reuse = await gql(client, REFRESH, t=third["refreshToken"])
    assert after_reuse.error_codes() == ["UNAUTHENTICATED"]


async def test_logout_revokes_sessions(client: httpx.AsyncClient) -> None:
    email = new_email()
    first = await signed_in(client, email)
    second = dict((await gql(client, LOGIN, e=email, p=PASSWORD)).ok()["login"])
    logout = "mutation($t: String) { logout(refreshToken: $t) }"
    assert (await gql(client, logout, t=first["refreshToken"])).error_codes() == ["UNAUTHENTICATED"]
    headers = bearer_token(first["accessToken"])
    assert (await gql(client, logout, headers=headers, t=first["refreshToken"])).ok() == {
        "logout": 1
    }
    refused = await gql(client, REFRESH, t=first["refreshToken"])
    assert refused.error_codes() == ["UNAUTHENTICATED"]
    # The other session is untouched until everything is signed out.
    (await gql(client, REFRESH, t=second["refreshToken"])).ok()
    everything = "mutation { logout(allSessions: true) }"
    assert (await gql(client, everything, headers=headers)).ok()["logout"] >= 1
    neither = "mutation { logout }"
    assert (await gql(client, neither, headers=headers)).error_codes() == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    ("email", "password", "code", "field"),
    [
        ("not-an-email", PASSWORD, "BAD_USER_INPUT", "email"),
        ("x@" + "a" * 300 + ".com", PASSWORD, "BAD_USER_INPUT", "email"),
        (None, "short", "BAD_USER_INPUT", "password"),
        (None, "a" * 257, "BAD_USER_INPUT", "password"),
        (None, "aaaaaaaaaaaa", "BAD_USER_INPUT", "password"),
    ],
)
async def test_registration_validates_its_input(
    client: httpx.AsyncClient, email: str | None, password: str, code: str, field: str
) -> None:
    response = await gql(client, REGISTER, e=email or new_email(), p=password)
    assert response.error_codes() == [code]
    assert response.errors[0]["extensions"]["argument"] == field
    assert field in response.errors[0]["message"]


async def test_duplicate_email_and_wrong_passwords(client: httpx.AsyncClient) -> None:
    email = new_email()
    (await gql(client, REGISTER, e=email, p=PASSWORD)).ok()
    assert (await gql(client, REGISTER, e=email, p=PASSWORD)).error_codes() == ["CONFLICT"]
    wrong = await gql(client, LOGIN, e=email, p=PASSWORD + "!")
    unknown = await gql(client, LOGIN, e=new_email(), p=PASSWORD)
    # Same code and words for both: a login does not tell which accounts exist.
    assert wrong.errors == unknown.errors
    assert wrong.error_codes() == ["UNAUTHENTICATED"]


async def test_bad_credentials_are_refused_not_downgraded(client: httpx.AsyncClient) -> None:
    forged = jwt.encode(
        {"sub": "1", "role": "ADMIN", "iss": "propintel", "aud": "propintel-api", "iat": 0},
        "not-the-secret-" * 3,
        algorithm="HS256",
    )
    expired = jwt.encode(
        {
            "sub": "1",
            "role": "ADMIN",
            "iss": "propintel",
            "aud": "propintel-api",
            "iat": 0,
            "exp": 1,
        },
        JWT_SECRET,
        algorithm="HS256",
    )
    unsigned = jwt.encode(
        {"sub": "1", "role": "ADMIN", "iss": "propintel", "aud": "propintel-api", "iat": 0},
        None,
        algorithm="none",
    )
    for headers in (
        bearer_token(forged),
        bearer_token(expired),
        bearer_token(unsigned),
        bearer_token("pik_00000000_nope"),
        {"X-API-Key": "pik_00000000_nope"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ):
        response = await client.post("/graphql", json={"query": ME}, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_api_keys_are_owned_hashed_and_revocable(
    client: httpx.AsyncClient, backend_url: str
) -> None:
    alice = await signed_in(client)
    bob = await signed_in(client)
    created = (
        await gql(client, CREATE_KEY, headers=bearer_token(alice["accessToken"]), n="etl")
    ).ok()
    key = created["createApiKey"]["key"]
    key_id = created["createApiKey"]["apiKey"]["id"]
    assert key.startswith(created["createApiKey"]["apiKey"]["prefix"] + "_")

    # The key authenticates as its owner, by either header.
    for headers in ({"X-API-Key": key}, bearer_token(key)):
        me = (await gql(client, ME, headers=headers)).ok()["me"]
        assert me["email"] == alice["user"]["email"]
    # A key cannot mint more keys.
    minted = await gql(client, CREATE_KEY, headers={"X-API-Key": key}, n="more")
    assert minted.error_codes() == ["FORBIDDEN"]

    listed = (await gql(client, KEYS, headers=bearer_token(alice["accessToken"]))).ok()["apiKeys"]
    assert [k["id"] for k in listed] == [key_id]
    assert (await gql(client, KEYS, headers=bearer_token(bob["accessToken"]))).ok() == {
        "apiKeys": []
    }
    assert (await gql(client, KEYS)).error_codes() == ["UNAUTHENTICATED"]
    stolen = await gql(client, REVOKE_KEY, headers=bearer_token(bob["accessToken"]), id=key_id)
    assert stolen.error_codes() == ["NOT_FOUND"]

    revoked = (
        await gql(client, REVOKE_KEY, headers=bearer_token(alice["accessToken"]), id=key_id)
    ).ok()
    assert revoked["revokeApiKey"]["revokedAt"] is not None
    response = await client.post("/graphql", json={"query": ME}, headers={"X-API-Key": key})
    assert response.status_code == 401

    if backend_url.startswith("postgresql"):
        connection = await asyncpg.connect(backend_url)
        try:
            stored = await connection.fetchval(
                "SELECT count(*) FROM api_keys WHERE key_hash = $1 OR key_hash = $2 OR name = $2",
                key,
                key.removeprefix("pik_"),
            )
            hashes = await connection.fetch(
                "SELECT password_hash FROM users WHERE email = $1", alice["user"]["email"]
            )
        finally:
            await connection.close()
        assert stored == 0
        assert hashes[0]["password_hash"].startswith("$argon2id$")


async def test_roles_and_the_bootstrap_key(client: httpx.AsyncClient) -> None:
    user = await signed_in(client)
    status = "{ resilienceStatus { name } }"
    assert (await gql(client, status, headers=bearer_token(user["accessToken"]))).error_codes() == [
        "FORBIDDEN"
    ]
    bootstrap = (
        "mutation($e: String!, $p: String!) { bootstrapAdmin(email: $e, password: $p) { role } }"
    )
    admin_email = new_email()
    refused = await gql(client, bootstrap, e=admin_email, p=PASSWORD)
    assert refused.error_codes() == ["FORBIDDEN"]
    # The bootstrap key creates an admin and does nothing else.
    key = bearer_token(BOOTSTRAP_KEY)
    assert (await gql(client, bootstrap, headers=key, e=admin_email, p=PASSWORD)).ok() == {
        "bootstrapAdmin": {"role": "ADMIN"}
    }
    assert (await gql(client, status, headers=key)).error_codes() == ["FORBIDDEN"]

    admin = dict((await gql(client, LOGIN, e=admin_email, p=PASSWORD)).ok()["login"])
    assert admin["user"]["role"] == "ADMIN"
    (await gql(client, status, headers=bearer_token(admin["accessToken"]))).ok()
    promote = "mutation($e: String!) { setUserRole(email: $e, role: ADMIN) { email role } }"
    assert (
        await gql(
            client, promote, headers=bearer_token(user["accessToken"]), e=user["user"]["email"]
        )
    ).error_codes() == ["FORBIDDEN"]
    promoted = await gql(
        client, promote, headers=bearer_token(admin["accessToken"]), e=user["user"]["email"]
    )
    assert promoted.ok()["setUserRole"]["role"] == "ADMIN"
    # The role travels in access tokens: the next sign-in carries it.
    again = (await gql(client, LOGIN, e=user["user"]["email"], p=PASSWORD)).ok()["login"]
    assert again["user"]["role"] == "ADMIN"
    missing = await gql(client, promote, headers=bearer_token(admin["accessToken"]), e=new_email())
    assert missing.error_codes() == ["NOT_FOUND"]


async def test_row_level_security_hides_other_users_rows(
    pg_client: httpx.AsyncClient, postgres_url: str
) -> None:
    """Even a statement without a WHERE clause sees only its user's rows once it runs as the
    owner role with the user's id set: PostgreSQL enforces ownership, not only our code."""
    alice = await signed_in(pg_client)
    bob = await signed_in(pg_client)
    for session, name in ((alice, "alice-key"), (bob, "bob-key")):
        (
            await gql(pg_client, CREATE_KEY, headers=bearer_token(session["accessToken"]), n=name)
        ).ok()
    alice_id = await _user_id(postgres_url, alice["user"]["email"])
    connection = await asyncpg.connect(postgres_url)
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL ROLE propintel_owner")
            await connection.execute(
                "SELECT set_config('propintel.user_id', $1, true)", str(alice_id)
            )
            keys = await connection.fetch("SELECT user_id, name FROM api_keys")
            users = await connection.fetch("SELECT id FROM users")
            tokens = await connection.fetch("SELECT DISTINCT user_id FROM refresh_tokens")
            changed = await connection.execute("UPDATE api_keys SET name = 'mine now'")
        async with connection.transaction():
            await connection.execute("SET LOCAL ROLE propintel_owner")
            nothing = await connection.fetch("SELECT id FROM api_keys")  # no user set
    finally:
        await connection.close()
    assert {row["user_id"] for row in keys} == {alice_id}
    assert [row["name"] for row in keys] == ["alice-key"]
    assert [row["id"] for row in users] == [alice_id]
    assert [row["user_id"] for row in tokens] == [alice_id]
    assert changed == "UPDATE 1"
    assert nothing == []


async def _user_id(url: str, email: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT id FROM users WHERE email = $1", email))
    finally:
        await connection.close()
