"""From request headers to a Principal.

`Authorization: Bearer <credential>` carries an access token (a JWT), an API key (`pik_...`),
or the bootstrap ADMIN_API_KEY; `X-API-Key: pik_...` is accepted too. No credential: an
anonymous principal keyed by the client's address. A credential that is present but wrong is
refused (401), never downgraded to anonymous, so a client learns its token expired.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict

from app.auth.principal import Principal, Role, Via, anonymous
from app.auth.tokens import AccessTokens, InvalidToken, digest, looks_like_api_key
from app.settings import Settings
from db.engine import Database
from db.repositories.accounts import KeyOwner, owner_of_key

API_KEY_TTL_S = 10.0
"""How long a process trusts an API key lookup: a revocation reaches every process within it
(the revoking process forgets at once)."""
API_KEY_STALE_S = 600.0
"""How long a known key keeps working while the database is unreachable."""


class AuthenticationFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Authenticator:
    def __init__(self, db: Database, settings: Settings, tokens: AccessTokens) -> None:
        self.db = db
        self.tokens = tokens
        self._bootstrap = (
            settings.admin_api_key.get_secret_value().encode()
            if settings.admin_api_key is not None
            else None
        )
        self._trusted_proxies = settings.trusted_proxies
        self._keys: OrderedDict[str, tuple[float, KeyOwner | None]] = OrderedDict()

    async def identify(self, headers: dict[str, str], peer: str | None) -> Principal:
        address = self._address(headers, peer)
        credential = _bearer(headers.get("authorization"))
        api_key = headers.get("x-api-key")
        if credential is None and api_key is None:
            return anonymous(address)
        if credential is not None and self._is_bootstrap(credential):
            return anonymous(address, bootstrap=True)
        if api_key is None and credential is not None and not looks_like_api_key(credential):
            try:
                claims = self.tokens.verify(credential)
            except InvalidToken:
                raise AuthenticationFailed("The access token is invalid or expired.") from None
            return Principal(
                claims.user_id, claims.role, Via.ACCESS_TOKEN, f"user:{claims.user_id}"
            )
        owner = await self._key_owner(api_key or credential or "")
        if owner is None:
            raise AuthenticationFailed("The API key is unknown or revoked.")
        return Principal(owner.user_id, Role(owner.role), Via.API_KEY, f"key:{owner.key_id}")

    def forget_key(self, key_hash: str | None = None) -> None:
        """Called when this process revokes a key (None: forget all)."""
        if key_hash is None:
            self._keys.clear()
        else:
            self._keys.pop(key_hash, None)

    def _is_bootstrap(self, credential: str) -> bool:
        return self._bootstrap is not None and hmac.compare_digest(
            credential.encode(), self._bootstrap
        )

    async def _key_owner(self, key: str) -> KeyOwner | None:
        if not looks_like_api_key(key) or len(key) > 128:
            return None
        key_hash = digest(key)
        now = time.monotonic()
        cached = self._keys.get(key_hash)
        if cached is not None and now - cached[0] < API_KEY_TTL_S:
            return cached[1]
        try:
            owner = await owner_of_key(self.db, key_hash)
        except Exception:
            if cached is not None and cached[1] is not None and now - cached[0] < API_KEY_STALE_S:
                return cached[1]  # the database is down: a key known good a moment ago
            raise
        self._keys[key_hash] = (now, owner)
        self._keys.move_to_end(key_hash)
        if len(self._keys) > 10_000:
            self._keys.popitem(last=False)
        return owner

    def _address(self, headers: dict[str, str], peer: str | None) -> str:
        if self._trusted_proxies:
            hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",")]
            hops = [hop for hop in hops if hop]
            if len(hops) >= self._trusted_proxies:
                return hops[-self._trusted_proxies]
        return peer or "unknown"


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return header.strip() or None  # an unusable scheme is a wrong credential, not none
    return credential.strip()
