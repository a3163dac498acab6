"""Accounts made the way a client makes them: register, then log in (real users, real
sessions). For a token without a user row behind it, see `credentials.bearer`."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.graphql import gql

PASSWORD = "correct horse battery staple"
REGISTER = (
    "mutation($e: String!, $p: String!) { register(email: $e, password: $p) { id email role } }"
)
LOGIN = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
    accessToken refreshToken tokenType accessTokenExpiresAt user { email role } } }"""


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def bearer_token(token: str) -> dict[str, str]:
    """The Authorization header of an access token or API key."""
    return {"Authorization": f"Bearer {token}"}


async def signed_in(client: httpx.AsyncClient, email: str | None = None) -> dict[str, Any]:
    """Registers a USER (a new email unless given) and logs in: the `login` payload
    (accessToken, refreshToken, tokenType, accessTokenExpiresAt, user {email role})."""
    email = email or new_email()
    (await gql(client, REGISTER, e=email, p=PASSWORD)).ok()
    return dict((await gql(client, LOGIN, e=email, p=PASSWORD)).ok()["login"])
