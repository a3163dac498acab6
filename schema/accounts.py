"""Types of the accounts API: users, sessions (token pairs) and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.accounts.service import CreatedKey, Session
from app.auth.principal import Role as RoleValue
from db.repositories.accounts import ApiKeyRecord, UserRecord
from db.repositories.alerts import SavedSearchRecord, WatchRecord
from db.repositories.webhooks import EndpointRecord
from resolvers import alerts as alert_resolvers
from resolvers import webhooks as webhook_resolvers
from schema.ids import to_global_id

if TYPE_CHECKING:
    from schema.webhooks import WebhookEndpoint

if TYPE_CHECKING:
    from schema.alerts import AlertConnection, SavedSearch, Watch

Role = strawberry.enum(RoleValue, name="Role", description="What an account may do.")


@strawberry.type(name="User", description="An account. Visible only to itself.")
class UserType:
    record: strawberry.Private[UserRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("User", self.record.id)

    @strawberry.field
    def email(self) -> str:
        return self.record.email

    @strawberry.field
    def role(self) -> Role:  # type: ignore[valid-type]
        return RoleValue(self.record.role)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    # Saved searches, watches and alerts (issue 14): the account's own.
    saved_searches: list[SavedSearchRecord] = strawberry.field(
        resolver=alert_resolvers.saved_searches,
        graphql_type=list[Annotated["SavedSearch", strawberry.lazy("schema.alerts")]],
        description="Your saved searches, oldest first.",
    )
    watches: list[WatchRecord] = strawberry.field(
        resolver=alert_resolvers.watches,
        graphql_type=list[Annotated["Watch", strawberry.lazy("schema.alerts")]],
        description="The properties you watch, oldest watch first.",
    )
    alerts: object = strawberry.field(
        resolver=alert_resolvers.alerts,
        graphql_type=Annotated["AlertConnection", strawberry.lazy("schema.alerts")],
        description="Your alerts, newest first.",
    )

    webhook_endpoints: list[EndpointRecord] = strawberry.field(
        resolver=webhook_resolvers.webhook_endpoints,
        graphql_type=list[Annotated["WebhookEndpoint", strawberry.lazy("schema.webhooks")]],
        description="Your webhook endpoints, oldest first.",
    )


@strawberry.type(
    description="A signed-in session: a short-lived access token for `Authorization: Bearer`, "
    "and a refresh token that `refreshToken` spends for the next pair."
)
class AuthPayload:
    session: strawberry.Private[Session]

    @strawberry.field
    def access_token(self) -> str:
        return self.session.access_token

    @strawberry.field
    def access_token_expires_at(self) -> datetime:
        return self.session.access_expires_at

    @strawberry.field
    def refresh_token(self) -> str:
        return self.session.refresh_token

    @strawberry.field
    def refresh_token_expires_at(self) -> datetime:
        return self.session.refresh_expires_at

    @strawberry.field
    def token_type(self) -> str:
        return "Bearer"

    @strawberry.field
    def user(self) -> UserType:
        return UserType(record=self.session.user)


@strawberry.type(name="ApiKey", description="A key for server-to-server clients (hashed at rest).")
class ApiKeyType:
    record: strawberry.Private[ApiKeyRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("ApiKey", self.record.id)

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field(description="The key's public start, to tell keys apart.")  # type: ignore[untyped-decorator]
    def prefix(self) -> str:
        return self.record.prefix

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def revoked_at(self) -> datetime | None:
        return self.record.revoked_at


@strawberry.type(description="A new API key. `key` is shown this once; store it now.")
class CreatedApiKey:
    created: strawberry.Private[CreatedKey]

    @strawberry.field
    def key(self) -> str:
        return self.created.key

    @strawberry.field
    def api_key(self) -> ApiKeyType:
        return ApiKeyType(record=self.created.record)
