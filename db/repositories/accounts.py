"""Users, refresh tokens and API keys.

Two ways in. Authentication (a login by email, a token or key by digest) runs as the
service's own role, because it is how a request learns who the user is. Everything done on a
user's behalf runs in `owner_scope`: on PostgreSQL as the `propintel_owner` role with
`propintel.user_id` set, so row-level security policies (migration 0002) hide every other
user's rows even from a statement that forgot its WHERE clause; the WHERE clauses are here too
(they are the only guard on SQLite).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from db import tables
from db.engine import Database

OWNER_ROLE = "propintel_owner"


class DuplicateEmail(ValueError):
    pass


class RefreshRejected(LookupError):
    """Unknown, expired or revoked; `reused` when a rotated token came back (revokes all)."""

    def __init__(self, *, reused: bool = False) -> None:
        super().__init__("refresh token rejected")
        self.reused = reused


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    email: str
    role: str
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyOwner:
    key_id: int
    user_id: int
    role: str


def _user(row: sa.RowMapping) -> UserRecord:
    return UserRecord(row["id"], row["email"], row["role"], row["created_at"], row["disabled_at"])


def _api_key(row: sa.RowMapping) -> ApiKeyRecord:
    return ApiKeyRecord(
        row["id"], row["user_id"], row["name"], row["prefix"], row["created_at"], row["revoked_at"]
    )


@asynccontextmanager
async def owner_scope(db: Database, user_id: int) -> AsyncIterator[AsyncConnection]:
    """A transaction that can reach only `user_id`'s rows (enforced by PostgreSQL)."""
    async with db.begin() as conn:
        if db.is_postgresql:
            await conn.execute(sa.text(f"SET LOCAL ROLE {OWNER_ROLE}"))
            await conn.execute(
                sa.select(sa.func.set_config("propintel.user_id", str(user_id), True))
            )
        yield conn


USER_COLUMNS = (
    tables.users.c.id,
    tables.users.c.email,
    tables.users.c.role,
    tables.users.c.created_at,
    tables.users.c.disabled_at,
)


async def create_user(db: Database, email: str, password_hash: str, role: str) -> UserRecord:
    try:
        async with db.begin() as conn:
            row = (
                (
                    await conn.execute(
                        sa.insert(tables.users)
                        .values(email=email, password_hash=password_hash, role=role)
                        .returning(*USER_COLUMNS)
                    )
                )
                .mappings()
                .one()
            )
    except IntegrityError:
        raise DuplicateEmail(email) from None
    return _user(row)


async def credentials_for(db: Database, email: str) -> tuple[UserRecord, str] | None:
    """The account and its password hash, for a login."""
    async with db.connect() as conn:
        row = (
            (
                await conn.execute(
                    sa.select(*USER_COLUMNS, tables.users.c.password_hash).where(
                        tables.users.c.email == email
                    )
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else (_user(row), row["password_hash"])


async def set_password_hash(db: Database, user_id: int, password_hash: str) -> None:
    async with owner_scope(db, user_id) as conn:
        await conn.execute(
            sa.update(tables.users)
            .where(tables.users.c.id == user_id)
            .values(password_hash=password_hash, updated_at=datetime.now(UTC))
        )


async def user_by_id(db: Database, user_id: int) -> UserRecord | None:
    async with owner_scope(db, user_id) as conn:
        row = (
            (await conn.execute(sa.select(*USER_COLUMNS).where(tables.users.c.id == user_id)))
            .mappings()
            .first()
        )
    return None if row is None else _user(row)


async def set_role(db: Database, email: str, role: str) -> UserRecord | None:
    """An administrator's change to someone else's account (not owner-scoped)."""
    async with db.begin() as conn:
        row = (
            (
                await conn.execute(
                    sa.update(tables.users)
                    .where(tables.users.c.email == email)
                    .values(role=role, updated_at=datetime.now(UTC))
                    .returning(*USER_COLUMNS)
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else _user(row)


async def store_refresh_token(
    db: Database, user_id: int, family: str, token_hash: str, expires_at: datetime
) -> None:
    async with owner_scope(db, user_id) as conn:
        await conn.execute(
            sa.insert(tables.refresh_tokens).values(
                user_id=user_id, family=family, token_hash=token_hash, expires_at=expires_at
            )
        )


async def rotate_refresh_token(
    db: Database, token_hash: str, new_hash: str, new_expires_at: datetime
) -> UserRecord:
    """Spends a refresh token for a new one of the same family, in one transaction. A token
    that was already spent means it leaked: the whole family is revoked."""
    now = datetime.now(UTC)
    rt = tables.refresh_tokens
    async with db.begin() as conn:
        query = sa.select(rt).where(rt.c.token_hash == token_hash)
        if db.is_postgresql:
            query = query.with_for_update()
        token = (await conn.execute(query)).mappings().first()
        user = None
        if token is not None and token["rotated_at"] is not None:
            # Committed before raising: the revocation must outlive this refusal.
            await conn.execute(
                sa.update(rt)
                .where(rt.c.family == token["family"], rt.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        elif token is not None and token["revoked_at"] is None and token["expires_at"] > now:
            user = (
                (
                    await conn.execute(
                        sa.select(*USER_COLUMNS).where(
                            tables.users.c.id == token["user_id"],
                            tables.users.c.disabled_at.is_(None),
                        )
                    )
                )
                .mappings()
                .first()
            )
            # Conditional, so that of two concurrent refreshes with one token only one wins
            # even where FOR UPDATE does not exist (SQLite); the loser is refused.
            spent = await conn.execute(
                sa.update(rt)
                .where(rt.c.id == token["id"], rt.c.rotated_at.is_(None))
                .values(rotated_at=now)
            )
            if spent.rowcount != 1:
                user = None
            if user is not None:
                await conn.execute(
                    sa.insert(rt).values(
                        user_id=token["user_id"],
                        family=token["family"],
                        token_hash=new_hash,
                        expires_at=new_expires_at,
                    )
                )
    if user is None:
        raise RefreshRejected(reused=token is not None and token["rotated_at"] is not None)
    return _user(user)


async def revoke_refresh_tokens(db: Database, user_id: int, token_hash: str | None) -> int:
    """Revokes the family of `token_hash` (one session), or every session of the user."""
    rt = tables.refresh_tokens
    now = datetime.now(UTC)
    async with owner_scope(db, user_id) as conn:
        condition = sa.and_(rt.c.user_id == user_id, rt.c.revoked_at.is_(None))
        if token_hash is not None:
            family = (
                sa.select(rt.c.family)
                .where(rt.c.token_hash == token_hash, rt.c.user_id == user_id)
                .scalar_subquery()
            )
            condition = sa.and_(condition, rt.c.family == family)
        result = await conn.execute(sa.update(rt).where(condition).values(revoked_at=now))
    return int(result.rowcount)


API_KEY_COLUMNS = (
    tables.api_keys.c.id,
    tables.api_keys.c.user_id,
    tables.api_keys.c.name,
    tables.api_keys.c.prefix,
    tables.api_keys.c.created_at,
    tables.api_keys.c.revoked_at,
)


async def create_api_key(
    db: Database, user_id: int, name: str, prefix: str, key_hash: str
) -> ApiKeyRecord:
    async with owner_scope(db, user_id) as conn:
        row = (
            (
                await conn.execute(
                    sa.insert(tables.api_keys)
                    .values(user_id=user_id, name=name, prefix=prefix, key_hash=key_hash)
                    .returning(*API_KEY_COLUMNS)
                )
            )
            .mappings()
            .one()
        )
    return _api_key(row)


async def api_keys_of(db: Database, user_id: int) -> list[ApiKeyRecord]:
    async with owner_scope(db, user_id) as conn:
        rows = (
            await conn.execute(
                sa.select(*API_KEY_COLUMNS)
                .where(tables.api_keys.c.user_id == user_id)
                .order_by(tables.api_keys.c.id)
            )
        ).mappings()
        return [_api_key(row) for row in rows]


async def revoke_api_key(db: Database, user_id: int, key_id: int) -> ApiKeyRecord | None:
    """None when the user owns no such key (someone else's key looks exactly like none)."""
    keys = tables.api_keys
    async with owner_scope(db, user_id) as conn:
        row = (
            (
                await conn.execute(
                    sa.update(keys)
                    .where(keys.c.id == key_id, keys.c.user_id == user_id)
                    .values(revoked_at=sa.func.coalesce(keys.c.revoked_at, datetime.now(UTC)))
                    .returning(*API_KEY_COLUMNS)
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else _api_key(row)


async def owner_of_key(db: Database, key_hash: str) -> KeyOwner | None:
    """The live key with this digest and its owner's role (authentication path)."""
    keys, users = tables.api_keys, tables.users
    query = (
        sa.select(keys.c.id, keys.c.user_id, users.c.role)
        .join(users, users.c.id == keys.c.user_id)
        .where(
            keys.c.key_hash == key_hash,
            keys.c.revoked_at.is_(None),
            users.c.disabled_at.is_(None),
        )
    )
    async with db.connect() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else KeyOwner(row[0], row[1], row[2])
