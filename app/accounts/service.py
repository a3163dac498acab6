"""Account operations: registration, sign-in, token rotation, API keys, roles.

Errors are domain errors (codes BAD_USER_INPUT, UNAUTHENTICATED, CONFLICT, NOT_FOUND);
resolvers pass them straight through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.auth.identify import Authenticator
from app.auth.passwords import hash_password, needs_rehash, verify_password
from app.auth.principal import Role
from app.auth.tokens import (
    AccessTokens,
    digest,
    new_api_key,
    new_family,
    new_refresh_token,
)
from app.errors import ConflictError, NotFoundError, UnauthenticatedError, UserInputError
from app.settings import Settings
from db.engine import Database
from db.repositories import accounts as repo
from db.repositories.accounts import ApiKeyRecord, UserRecord

# Deliberately plain: one @, something before, a dot after. Deliverability is the mail
# server's to judge; what matters here is a stable, comparable identifier.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256  # argon2 takes any length; this bounds the work one request can ask for
MAX_KEY_NAME = 100
MAX_KEYS_PER_USER = 20


@dataclass(frozen=True, slots=True)
class Session:
    user: UserRecord
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: str
    record: ApiKeyRecord


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email) or not email.isprintable():
        raise UserInputError("`email` is not an email address.", argument="email")
    return email


def _check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD or "\x00" in password:
        raise UserInputError(
            f"`password` must be {MIN_PASSWORD} to {MAX_PASSWORD} characters.",
            argument="password",
        )
    if len(set(password)) < 4:
        raise UserInputError("`password` is too easy to guess.", argument="password")
    return password


class Accounts:
    def __init__(
        self, db: Database, settings: Settings, tokens: AccessTokens, authenticator: Authenticator
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.authenticator = authenticator
        self.refresh_ttl = timedelta(seconds=settings.refresh_token_ttl_s)

    async def register(self, email: str, password: str, role: Role = Role.USER) -> UserRecord:
        email = normalise_email(email)
        password_hash = await hash_password(_check_password(password))
        try:
            return await repo.create_user(self.db, email, password_hash, role.value)
        except repo.DuplicateEmail:
            raise ConflictError("An account with this email exists.") from None

    async def login(self, email: str, password: str) -> Session:
        email = email.strip().lower()
        if len(password) > MAX_PASSWORD or len(email) > 254 or not email.isprintable():
            # (PostgreSQL text cannot even hold a NUL: such an email matches no account.)
            raise UnauthenticatedError("Wrong email or password.")
        found = await repo.credentials_for(self.db, email)
        # Verified even when the account does not exist: same cost, nothing learnt.
        valid = await verify_password(found[1] if found else None, password)
        if found is None or not valid or found[0].disabled_at is not None:
            raise UnauthenticatedError("Wrong email or password.")
        user, stored_hash = found
        if needs_rehash(stored_hash):
            await repo.set_password_hash(self.db, user.id, await hash_password(password))
        return await self._start_session(user, new_family())

    async def refresh(self, refresh_token: str) -> Session:
        if len(refresh_token) > 128 or not refresh_token.isprintable():
            raise UnauthenticatedError("The refresh token is invalid, expired or revoked.")
        token = new_refresh_token()
        expires_at = datetime.now(UTC) + self.refresh_ttl
        try:
            user = await repo.rotate_refresh_token(
                self.db, digest(refresh_token), digest(token), expires_at
            )
        except repo.RefreshRejected as rejected:
            message = "The refresh token is invalid, expired or revoked."
            if rejected.reused:
                message = "The refresh token was already used; every session of it is revoked."
            raise UnauthenticatedError(message) from None
        return self._session(user, token, expires_at)

    async def logout(self, user_id: int, refresh_token: str | None) -> int:
        token_hash = digest(refresh_token) if refresh_token is not None else None
        return await repo.revoke_refresh_tokens(self.db, user_id, token_hash)

    async def me(self, user_id: int) -> UserRecord:
        user = await repo.user_by_id(self.db, user_id)
        if user is None:
            raise UnauthenticatedError("This account no longer exists.")
        return user

    async def create_api_key(self, user_id: int, name: str) -> CreatedKey:
        name = name.strip()
        if not 1 <= len(name) <= MAX_KEY_NAME or not name.isprintable():
            raise UserInputError(
                f"`name` must be 1 to {MAX_KEY_NAME} printable characters.", argument="name"
            )
        live = [key for key in await repo.api_keys_of(self.db, user_id) if key.revoked_at is None]
        if len(live) >= MAX_KEYS_PER_USER:
            raise ConflictError(f"At most {MAX_KEYS_PER_USER} live API keys; revoke one first.")
        issued = new_api_key()
        record = await repo.create_api_key(
            self.db, user_id, name, issued.prefix, digest(issued.key)
        )
        return CreatedKey(issued.key, record)

    async def api_keys(self, user_id: int) -> list[ApiKeyRecord]:
        return await repo.api_keys_of(self.db, user_id)

    async def revoke_api_key(self, user_id: int, key_id: int) -> ApiKeyRecord:
        record = await repo.revoke_api_key(self.db, user_id, key_id)
        if record is None:
            raise NotFoundError("You have no API key with this id.")
        self.authenticator.forget_key()  # this process stops accepting it at once
        return record

    async def bootstrap_admin(self, email: str, password: str) -> UserRecord:
        """The bootstrap key's one power: make an ADMIN (new account, or promote one whose
        password is given correctly)."""
        email = normalise_email(email)
        found = await repo.credentials_for(self.db, email)
        if found is None:
            return await self.register(email, password, Role.ADMIN)
        if not await verify_password(found[1], password):
            raise UnauthenticatedError("Wrong password for the existing account.")
        promoted = await repo.set_role(self.db, email, Role.ADMIN.value)
        assert promoted is not None
        return promoted

    async def set_role(self, email: str, role: Role) -> UserRecord:
        user = await repo.set_role(self.db, normalise_email(email), role.value)
        if user is None:
            raise NotFoundError("No account with this email.")
        return user

    async def _start_session(self, user: UserRecord, family: str) -> Session:
        token = new_refresh_token()
        expires_at = datetime.now(UTC) + self.refresh_ttl
        await repo.store_refresh_token(self.db, user.id, family, digest(token), expires_at)
        return self._session(user, token, expires_at)

    def _session(self, user: UserRecord, refresh_token: str, expires_at: datetime) -> Session:
        access = self.tokens.issue(user.id, Role(user.role))
        return Session(user, access.token, access.expires_at, refresh_token, expires_at)
