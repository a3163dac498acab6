"""Enums of the webhooks API (apart from the types, which name resolvers that take them)."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="Whether an endpoint receives deliveries.")
class WebhookEndpointStatus(Enum):
    ACTIVE = "ACTIVE"
    DISABLED = strawberry.enum_value(
        "DISABLED",
        description="Receives nothing (see disabledReason): it answered 410 Gone, or failed "
        "for 5 days in a row. enableWebhookEndpoint turns it back on.",
    )


@strawberry.enum(description="Where a delivery stands.")
class WebhookDeliveryStatus(Enum):
    PENDING = strawberry.enum_value("PENDING", description="Not attempted yet (or replayed).")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="The endpoint answered 2xx.")
    FAILED = strawberry.enum_value(
        "FAILED", description="The last attempt failed; the next is at nextAttemptAt."
    )
    DEAD = strawberry.enum_value(
        "DEAD", description="Every attempt of the schedule failed (replay it to try again)."
    )
    CANCELLED = strawberry.enum_value(
        "CANCELLED", description="Not sent: its endpoint was disabled (or its alert deleted)."
    )
