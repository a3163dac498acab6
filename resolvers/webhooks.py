"""Webhooks API: thin resolvers over app/webhooks/service.py.

Every operation is the caller's own: anonymous is UNAUTHENTICATED, another user's id is
NOT_FOUND (the service reads in the caller's owner_scope, so it is not there).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.context import Context, Info
from app.errors import ForbiddenError, UnauthenticatedError
from app.webhooks.service import CreatedEndpoint
from db.keyset import build_page
from db.records import Page
from db.repositories.accounts import UserRecord
from db.repositories.webhooks import (
    DELIVERIES_NEWEST_FIRST,
    AttemptRecord,
    DeliveryRecord,
    EndpointRecord,
)
from resolvers.fields import Audience, batched
from resolvers.pagination import cursor_values, page_size
from schema.alert_inputs import AlertKind
from schema.ids import expect_global_id, to_global_id
from schema.webhook_enums import WebhookDeliveryStatus, WebhookEndpointStatus


def _caller(context: Context) -> int:
    user_id = context.principal.user_id
    if user_id is None:
        raise UnauthenticatedError()
    return user_id


# -- fields ----------------------------------------------------------------------------------


async def webhook_endpoints(root: object, info: Info) -> list[EndpointRecord]:
    """The caller's endpoints, oldest first: visible only to the account itself, under `me`
    (not through a User another operation returns, e.g. setUserRole's)."""
    record: UserRecord = root.record  # type: ignore[attr-defined]
    if record.id != info.context.principal.user_id:
        raise ForbiddenError("Visible only to the signed-in account itself (under `me`).")
    return await info.context.webhooks.endpoints(record.id)


def endpoint_id(root: EndpointRecord) -> strawberry.ID:
    return to_global_id("WebhookEndpoint", root.id)


def endpoint_events(root: EndpointRecord) -> list[AlertKind]:
    return [AlertKind(kind) for kind in root.events]


def endpoint_status(root: EndpointRecord) -> WebhookEndpointStatus:
    return WebhookEndpointStatus(root.status)


@batched(Audience.CALLER)
async def deliveries(
    parents: list[EndpointRecord],
    context: Context,
    first: int = 20,
    after: str | None = None,
    status: Annotated[
        WebhookDeliveryStatus | None,
        strawberry.argument(description="Only deliveries in this state."),
    ] = None,
) -> list[Page[DeliveryRecord]]:
    """Newest first; one statement for every endpoint of the level."""
    user_id = _caller(context)
    size = page_size(context, first)
    after_values = cursor_values(DELIVERIES_NEWEST_FIRST, after)
    found = await context.webhooks.deliveries(
        user_id,
        [p.id for p in parents],
        status=None if status is None else status.name,
        after=after_values,
        limit=size + 1,
    )
    return [
        build_page(found.get(p.id, []), first=size, order=DELIVERIES_NEWEST_FIRST, after=after)
        for p in parents
    ]


def delivery_id(root: DeliveryRecord) -> strawberry.ID:
    return to_global_id("WebhookDelivery", root.id)


def delivery_webhook_id(root: DeliveryRecord) -> str:
    return root.message_id


def delivery_status(root: DeliveryRecord) -> WebhookDeliveryStatus:
    return WebhookDeliveryStatus(root.status)


def delivery_endpoint_id(root: DeliveryRecord) -> strawberry.ID:
    return to_global_id("WebhookEndpoint", root.endpoint_id)


def attempt_at(root: AttemptRecord) -> datetime:
    return root.attempted_at


@batched(Audience.CALLER)
async def attempts(parents: list[DeliveryRecord], context: Context) -> list[list[AttemptRecord]]:
    """The latest attempts of each delivery, oldest first (at most the schedule's 9); one
    statement for every delivery of the level."""
    found = await context.webhooks.attempts(_caller(context), [p.id for p in parents])
    return [found.get(p.id, []) for p in parents]


# -- mutations -------------------------------------------------------------------------------


async def create_webhook_endpoint(
    info: Info,
    url: Annotated[str, strawberry.argument(description="http(s); https only in prod.")],
    events: list[AlertKind],
) -> CreatedEndpoint:
    user_id = _caller(info.context)
    return await info.context.webhooks.create(user_id, url, [e.name for e in events])


async def rotate_webhook_secret(info: Info, id: strawberry.ID) -> CreatedEndpoint:
    user_id = _caller(info.context)
    endpoint = expect_global_id(id, "WebhookEndpoint")
    return await info.context.webhooks.rotate_secret(user_id, endpoint)


async def delete_webhook_endpoint(info: Info, id: strawberry.ID) -> bool:
    user_id = _caller(info.context)
    await info.context.webhooks.delete(user_id, expect_global_id(id, "WebhookEndpoint"))
    return True


async def enable_webhook_endpoint(info: Info, id: strawberry.ID) -> EndpointRecord:
    user_id = _caller(info.context)
    return await info.context.webhooks.enable(user_id, expect_global_id(id, "WebhookEndpoint"))


async def replay_webhook_delivery(info: Info, id: strawberry.ID) -> DeliveryRecord:
    user_id = _caller(info.context)
    return await info.context.webhooks.replay(user_id, expect_global_id(id, "WebhookDelivery"))


async def recover_webhook_deliveries(
    info: Info, endpoint_id: strawberry.ID, since: datetime
) -> int:
    user_id = _caller(info.context)
    endpoint = expect_global_id(endpoint_id, "WebhookEndpoint", argument="endpointId")
    return await info.context.webhooks.recover(user_id, endpoint, since)
