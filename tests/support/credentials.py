"""Credentials of the test runs: one JWT secret and bootstrap key per session, and access
tokens signed with that secret (what `login` would hand out, without the password hashing)."""

from __future__ import annotations

import secrets

from app.auth.principal import Role
from app.auth.tokens import AccessTokens

JWT_SECRET = secrets.token_hex(32)
BOOTSTRAP_KEY = "bk-" + secrets.token_hex(12)


def bearer(user_id: int, role: Role) -> dict[str, str]:
    token = AccessTokens(JWT_SECRET, 24 * 3600).issue(user_id, role).token
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(1, Role.ADMIN)
"""An ADMIN's access token (user 1: admin operations check the role, not the row)."""
