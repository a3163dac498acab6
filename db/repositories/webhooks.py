"""Webhook endpoints and deliveries (issue 14)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.repositories import jobs

EVENT_TYPES = {
    "SALE_MATCHED": "sale.matched",
    "PROPERTY_SOLD": "property.sold",
    "ESTIMATE_CHANGED": "estimate.changed",
    "DIGEST": "alerts.digest",
}
"""Alert kind -> the `type` of its webhook body (and `eventType` of its delivery)."""

_CHUNK = 5000  # SQLite allows 32,766 bound variables per statement

_EVENT_TYPE_SQL = (
    "CASE a.kind "
    + " ".join(f"WHEN '{kind}' THEN '{event}'" for kind, event in EVENT_TYPES.items())
    + " END"
)

# One delivery per (active endpoint of the alert's owner that takes its kind, alert). The
# message id is derived from both, so it is the same however often this runs; the body is
# made by the first attempt (app/webhooks/tasks.py) and kept, so every retry sends the same.
_CREATE_DELIVERIES = sa.text(
    f"""
    INSERT INTO webhook_deliveries (endpoint_id, user_id, alert_id, message_id, event_type,
        payload, status, attempt_count, next_attempt_at, created_at, updated_at)
    SELECT e.id, a.user_id, a.id, 'msg_' || e.id || '_' || a.id, {_EVENT_TYPE_SQL},
        NULL, 'PENDING', 0, :now, :now, :now
    FROM alerts a
    JOIN webhook_endpoints e ON e.user_id = a.user_id AND e.status = 'ACTIVE'
        AND (',' || e.events || ',') LIKE ('%,' || a.kind || ',%')
    WHERE a.id IN :alert_ids
    ON CONFLICT DO NOTHING
    RETURNING id
    """
).bindparams(sa.bindparam("alert_ids", expanding=True))


async def create_deliveries(conn: AsyncConnection, alert_ids: Sequence[int]) -> int:
    """Inside the transaction that made the alerts: their deliveries, and one
    `webhook.deliver` job each. Idempotent. Returns how many deliveries were added."""
    added = 0
    now = datetime.now(UTC)
    for start in range(0, len(alert_ids), _CHUNK):
        chunk = list(alert_ids[start : start + _CHUNK])
        result = await conn.execute(_CREATE_DELIVERIES, {"alert_ids": chunk, "now": now})
        delivery_ids = [row[0] for row in result]
        await jobs.enqueue_many(conn, "webhook.deliver", [{"delivery_id": i} for i in delivery_ids])
        added += len(delivery_ids)
    return added
