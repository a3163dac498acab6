"""Accounts API: thin resolvers over app/accounts/service.py.

Who may call what: `register`, `login`, `refreshToken` anyone; `me`, `apiKeys`, `logout` a
signed-in user (access token or API key); `createApiKey` and `revokeApiKey` only with an
access token, so a leaked key cannot mint more keys; `bootstrapAdmin` only with the
ADMIN_API_KEY; `setUserRole` an ADMIN.
"""

from __future__ import annotations

import strawberry

from app.auth.principal import Role, Via
from app.context import Info
from app.errors import ForbiddenError, UnauthenticatedError, UserInputError
from schema.accounts import ApiKeyType, AuthPayload, CreatedApiKey, UserType
from schema.ids import expect_global_id


def _user_id(info: Info, *, access_token_only: bool = False) -> int:
    principal = info.context.principal
    if principal.user_id is None:
        raise UnauthenticatedError()
    if access_token_only and principal.via is not Via.ACCESS_TOKEN:
        raise ForbiddenError("Managing API keys needs a signed-in user, not an API key.")
    return principal.user_id


async def register(info: Info, email: str, password: str) -> UserType:
    return UserType(record=await info.context.accounts.register(email, password))


async def login(info: Info, email: str, password: str) -> AuthPayload:
    return AuthPayload(session=await info.context.accounts.login(email, password))


async def refresh_token(info: Info, refresh_token: str) -> AuthPayload:
    return AuthPayload(session=await info.context.accounts.refresh(refresh_token))


async def logout(info: Info, refresh_token: str | None = None, all_sessions: bool = False) -> int:
    """Revokes the session of `refreshToken`, or every session with `allSessions`; returns
    how many refresh tokens were revoked. Access tokens already issued live out their
    (short) lifetime."""
    user_id = _user_id(info)
    if refresh_token is None and not all_sessions:
        raise UserInputError(
            "Give `refreshToken`, or `allSessions: true`.", argument="refreshToken"
        )
    return await info.context.accounts.logout(user_id, None if all_sessions else refresh_token)


async def me(info: Info) -> UserType | None:
    if info.context.principal.user_id is None:
        return None
    return UserType(record=await info.context.accounts.me(info.context.principal.user_id))


async def api_keys(info: Info) -> list[ApiKeyType]:
    records = await info.context.accounts.api_keys(_user_id(info))
    return [ApiKeyType(record=record) for record in records]


async def create_api_key(info: Info, name: str) -> CreatedApiKey:
    user_id = _user_id(info, access_token_only=True)
    return CreatedApiKey(created=await info.context.accounts.create_api_key(user_id, name))


async def revoke_api_key(info: Info, id: strawberry.ID) -> ApiKeyType:
    user_id = _user_id(info, access_token_only=True)
    key_id = expect_global_id(id, "ApiKey")
    return ApiKeyType(record=await info.context.accounts.revoke_api_key(user_id, key_id))


async def bootstrap_admin(info: Info, email: str, password: str) -> UserType:
    if not info.context.principal.bootstrap:
        raise ForbiddenError("bootstrapAdmin needs `Authorization: Bearer <ADMIN_API_KEY>`.")
    return UserType(record=await info.context.accounts.bootstrap_admin(email, password))


async def set_user_role(info: Info, email: str, role: Role) -> UserType:
    if not info.context.principal.is_admin:
        raise ForbiddenError()
    return UserType(record=await info.context.accounts.set_role(email, role))
