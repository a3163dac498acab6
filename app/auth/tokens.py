"""Credentials the service hands out.

- Access tokens: JWTs (HS256, PyJWT) carrying the user id and role, short-lived because they
  are not looked up: a revoked session or a changed role takes effect when they expire.
- Refresh tokens: opaque random strings, stored as SHA-256 digests, spent on use (rotation).
- API keys: opaque random strings for server-to-server clients, stored as digests too.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from app.auth.principal import Role

ISSUER = "propintel"
AUDIENCE = "propintel-api"
REFRESH_PREFIX = "pirt_"
API_KEY_PREFIX = "pik_"


class InvalidToken(ValueError):
    """The access token is malformed, forged, expired or for someone else."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    role: Role
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedAccess:
    token: str
    expires_at: datetime


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AccessTokens:
    def __init__(self, secret: str | None, ttl_s: int) -> None:
        # No JWT_SECRET (dev and test only; prod refuses to start): a key of this process's
        # own, so tokens neither survive a restart nor work in another process.
        self._secret = secret or secrets.token_urlsafe(48)
        self.ttl = timedelta(seconds=ttl_s)

    def issue(self, user_id: int, role: Role) -> IssuedAccess:
        now = datetime.now(UTC)
        expires = now + self.ttl
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "role": role.value,
            "iat": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        return IssuedAccess(jwt.encode(claims, self._secret, algorithm="HS256"), expires)

    def verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],  # never taken from the token's header
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=5,
            )
            return AccessClaims(
                user_id=int(claims["sub"]),
                role=Role(claims["role"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except (jwt.InvalidTokenError, KeyError, ValueError) as error:
            raise InvalidToken(str(error)) from None


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def new_family() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: str
    """Shown once, to its creator; only its digest is stored."""
    prefix: str


def new_api_key() -> NewApiKey:
    public = secrets.token_hex(4)
    return NewApiKey(
        f"{API_KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}", API_KEY_PREFIX + public
    )


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(API_KEY_PREFIX)
