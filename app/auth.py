"""Who is asking. Until user accounts exist, the only credential is the admin API key."""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from app.settings import Settings


def is_admin(connection: HTTPConnection, settings: Settings) -> bool:
    """`Authorization: Bearer <ADMIN_API_KEY>`; with no key configured nobody is admin."""
    if settings.admin_api_key is None:
        return False
    scheme, _, credential = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential:
        return False
    expected = settings.admin_api_key.get_secret_value().encode()
    return hmac.compare_digest(credential.strip().encode(), expected)
