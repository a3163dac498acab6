"""Webhook endpoints and their deliveries: what the API does on a user's behalf.

Every read and write runs in the user's owner_scope (row-level security on PostgreSQL), so
another user's endpoint or delivery is simply not there: NOT_FOUND, never FORBIDDEN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.errors import NotFoundError, UserInputError
from app.settings import Settings
from app.webhooks.schedule import MAX_ATTEMPTS
from app.webhooks.signing import new_secret
from app.webhooks.urls import RefusedUrl, check_url
from db.engine import Database
from db.repositories import webhooks as repo
from db.repositories.webhooks import EVENT_TYPES, AttemptRecord, DeliveryRecord, EndpointRecord

PREVIOUS_SECRET_SIGNS_FOR = timedelta(hours=24)
NOT_FOUND = "No webhook endpoint with this id."
DELIVERY_NOT_FOUND = "No webhook delivery with this id."


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    endpoint: EndpointRecord
    secret: str
    """Shown once: the receiver verifies signatures with it."""


def check_events(events: Sequence[str]) -> list[str]:
    """The events without duplicates, in a fixed order; BAD_USER_INPUT when empty or unknown."""
    if not events:
        raise UserInputError(
            "`events` must name at least one of " + ", ".join(EVENT_TYPES), argument="events"
        )
    unknown = sorted({e for e in events if e not in EVENT_TYPES})
    if unknown:
        raise UserInputError(
            f"`events` has unknown events {unknown}; they are " + ", ".join(EVENT_TYPES),
            argument="events",
        )
    return [kind for kind in EVENT_TYPES if kind in set(events)]


class WebhookService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def check_url(self, url: str) -> str:
        try:
            await check_url(url, self.settings)
        except RefusedUrl as refused:
            raise UserInputError(str(refused), argument="url") from None
        return url

    async def create(self, user_id: int, url: str, events: Sequence[str]) -> CreatedEndpoint:
        kinds = check_events(events)
        await self.check_url(url)
        secret = new_secret()
        limit = self.settings.max_webhook_endpoints
        endpoint = await repo.create_endpoint(
            self.db, user_id, url=url, events=kinds, secret=secret, limit=limit
        )
        if endpoint is None:
            raise UserInputError(
                f"You have {limit} webhook endpoints, the most an account may have; delete "
                "one first.",
                argument="url",
            )
        return CreatedEndpoint(endpoint, secret)

    async def rotate_secret(self, user_id: int, endpoint_id: int) -> CreatedEndpoint:
        secret = new_secret()
        until = datetime.now(UTC) + PREVIOUS_SECRET_SIGNS_FOR
        endpoint = await repo.rotate_secret(
            self.db, user_id, endpoint_id, secret=secret, previous_until=until
        )
        if endpoint is None:
            raise NotFoundError(NOT_FOUND)
        return CreatedEndpoint(endpoint, secret)

    async def delete(self, user_id: int, endpoint_id: int) -> None:
        if not await repo.delete_endpoint(self.db, user_id, endpoint_id):
            raise NotFoundError(NOT_FOUND)

    async def enable(self, user_id: int, endpoint_id: int) -> EndpointRecord:
        endpoint = await repo.endpoint_of(self.db, user_id, endpoint_id)
        if endpoint is None:
            raise NotFoundError(NOT_FOUND)
        await self.check_url(endpoint.url)
        enabled = await repo.enable_endpoint(self.db, user_id, endpoint_id)
        if enabled is None:
            raise NotFoundError(NOT_FOUND)
        return enabled

    async def endpoints(self, user_id: int) -> list[EndpointRecord]:
        return await repo.endpoints_of(self.db, user_id)

    async def deliveries(
        self,
        user_id: int,
        endpoint_ids: Sequence[int],
        *,
        status: str | None,
        after: Sequence[Any] | None,
        limit: int,
    ) -> dict[int, list[DeliveryRecord]]:
        return await repo.deliveries_of(
            self.db, user_id, endpoint_ids, status=status, after=after, limit=limit
        )

    async def attempts(
        self, user_id: int, delivery_ids: Sequence[int]
    ) -> dict[int, list[AttemptRecord]]:
        return await repo.attempts_of(self.db, user_id, delivery_ids, limit=MAX_ATTEMPTS)

    async def replay(self, user_id: int, delivery_id: int) -> DeliveryRecord:
        delivery = await repo.replay_delivery(self.db, user_id, delivery_id)
        if delivery is None:
            raise NotFoundError(DELIVERY_NOT_FOUND)
        return delivery

    async def recover(self, user_id: int, endpoint_id: int, since: datetime) -> int:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        count = await repo.recover_deliveries(self.db, user_id, endpoint_id, since)
        if count is None:
            raise NotFoundError(NOT_FOUND)
        return count
