"""Types of the webhooks API: endpoints, their deliveries and attempts (records as roots)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from app.webhooks.service import CreatedEndpoint
from db.records import Page
from db.repositories.webhooks import AttemptRecord, DeliveryRecord, EndpointRecord
from resolvers import webhooks as resolvers
from schema.alert_inputs import AlertKind
from schema.types import PageInfo
from schema.webhook_enums import WebhookDeliveryStatus, WebhookEndpointStatus


@strawberry.type(description="One HTTP attempt of a delivery.")
class WebhookAttempt:
    at: datetime = strawberry.field(resolver=resolvers.attempt_at)
    status_code: int | None = strawberry.field(
        description="The endpoint's HTTP status; null when there was no answer (see error)."
    )
    duration_ms: int
    error: str | None = strawberry.field(description="Why it failed; null on success.")

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, AttemptRecord)


@strawberry.type(
    description="One event for one endpoint: sent until it succeeds, on Svix's schedule "
    "(immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first attempt), then DEAD."
)
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(resolver=resolvers.delivery_id)
    webhook_id: str = strawberry.field(
        resolver=resolvers.delivery_webhook_id,
        description="The `webhook-id` header: the same on every retry and replay (receivers "
        "deduplicate on it).",
    )
    endpoint_id: strawberry.ID = strawberry.field(resolver=resolvers.delivery_endpoint_id)
    event_type: str = strawberry.field(description="sale.matched, property.sold, ...")
    status: WebhookDeliveryStatus = strawberry.field(resolver=resolvers.delivery_status)
    attempts: list[AttemptRecord] = strawberry.field(
        resolver=resolvers.attempts, graphql_type=list[WebhookAttempt]
    )
    next_attempt_at: datetime | None = strawberry.field(
        description="When it is tried next (PENDING or FAILED); null when final."
    )
    created_at: datetime

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, DeliveryRecord)


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo
    nodes: list[WebhookDelivery]


@strawberry.type(description="A URL that receives your alerts as signed webhooks.")
class WebhookEndpoint:
    id: strawberry.ID = strawberry.field(resolver=resolvers.endpoint_id)
    url: str
    events: list[AlertKind] = strawberry.field(resolver=resolvers.endpoint_events)
    status: WebhookEndpointStatus = strawberry.field(resolver=resolvers.endpoint_status)
    disabled_reason: str | None
    created_at: datetime
    deliveries: Page[DeliveryRecord] = strawberry.field(
        resolver=resolvers.deliveries, graphql_type=WebhookDeliveryConnection
    )

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, EndpointRecord)


@strawberry.type(
    description="An endpoint and its signing secret (`whsec_...`), shown this once: verify "
    "`webhook-signature` with it (any Standard Webhooks library does)."
)
class WebhookEndpointSecret:
    endpoint: EndpointRecord = strawberry.field(graphql_type=WebhookEndpoint)
    secret: str

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, CreatedEndpoint)
