"""Webhook endpoints and deliveries (issue 14)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from db import tables
from db.engine import Database
from db.keyset import KeysetOrder
from db.repositories import jobs
from db.repositories.accounts import owner_scope
from db.repositories.batching import cached_statement, keys_param
from db.tables import UtcDateTime

EVENT_TYPES = {
    "SALE_MATCHED": "sale.matched",
    "PROPERTY_SOLD": "property.sold",
    "ESTIMATE_CHANGED": "estimate.changed",
    "DIGEST": "alerts.digest",
}
"""Alert kind -> the `type` of its webhook body (and `eventType` of its delivery)."""

DELIVER_JOB_ATTEMPTS = 30
"""A delivery job's own retries (its handler raised: the database away, say), not the
delivery's attempts, which its handler schedules itself: with the queue's backoff capped at
10 minutes, 30 ride out an outage of about four hours before the job is dead-lettered (the
delivery then waits for a replay or `recoverWebhookDeliveries`)."""

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
).bindparams(
    sa.bindparam("alert_ids", expanding=True),
    # Typed, so SQLite stores it as SQLAlchemy stores every other time (text, one format).
    sa.bindparam("now", type_=UtcDateTime()),
)


async def create_deliveries(conn: AsyncConnection, alert_ids: Sequence[int]) -> int:
    """Inside the transaction that made the alerts: their deliveries, and one
    `webhook.deliver` job each. Idempotent. Returns how many deliveries were added."""
    added = 0
    now = datetime.now(UTC)
    for start in range(0, len(alert_ids), _CHUNK):
        chunk = list(alert_ids[start : start + _CHUNK])
        result = await conn.execute(_CREATE_DELIVERIES, {"alert_ids": chunk, "now": now})
        delivery_ids = [row[0] for row in result]
        await jobs.enqueue_many(
            conn,
            "webhook.deliver",
            [{"delivery_id": i} for i in delivery_ids],
            max_attempts=DELIVER_JOB_ATTEMPTS,
        )
        added += len(delivery_ids)
    return added


# --- Records -------------------------------------------------------------------------------

ENDPOINT_STATUSES = ("ACTIVE", "DISABLED")
DELIVERY_STATUSES = ("PENDING", "SUCCEEDED", "FAILED", "DEAD", "CANCELLED")
RETRYABLE = ("PENDING", "FAILED")
"""Deliveries that still have an attempt to come (FAILED: the last one failed, a retry is
scheduled); SUCCEEDED, DEAD and CANCELLED are final until a replay."""


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    id: int
    user_id: int
    url: str
    events: tuple[str, ...]
    status: str
    disabled_reason: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    endpoint_id: int
    user_id: int
    message_id: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    id: int
    delivery_id: int
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """What one attempt needs: the delivery, its endpoint (secrets included), its body."""

    delivery_id: int
    user_id: int
    alert_id: int | None
    message_id: str
    event_type: str
    payload: str | None
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    endpoint_id: int
    url: str
    endpoint_status: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    failing_since: datetime | None


_e = tables.webhook_endpoints
_d = tables.webhook_deliveries
_a = tables.webhook_attempts

_ENDPOINT_COLUMNS = (
    _e.c.id,
    _e.c.user_id,
    _e.c.url,
    _e.c.events,
    _e.c.status,
    _e.c.disabled_reason,
    _e.c.created_at,
)
_DELIVERY_COLUMNS = (
    _d.c.id,
    _d.c.endpoint_id,
    _d.c.user_id,
    _d.c.message_id,
    _d.c.event_type,
    _d.c.status,
    _d.c.attempt_count,
    _d.c.next_attempt_at,
    _d.c.created_at,
)
_ATTEMPT_COLUMNS = (
    _a.c.id,
    _a.c.delivery_id,
    _a.c.attempted_at,
    _a.c.status_code,
    _a.c.duration_ms,
    _a.c.error,
)

DELIVERIES_NEWEST_FIRST: KeysetOrder[DeliveryRecord] = KeysetOrder(
    "WEBHOOK_DELIVERIES_NEWEST_FIRST", [_d.c.id], ["id"], [int], descending=True
)


def _endpoint(row: Any) -> EndpointRecord:
    id_, user_id, url, events, status, reason, created_at = row
    return EndpointRecord(
        id_, user_id, url, tuple(e for e in events.split(",") if e), status, reason, created_at
    )


def _delivery(row: Any) -> DeliveryRecord:
    return DeliveryRecord(*row)


def _attempt(row: Any) -> AttemptRecord:
    return AttemptRecord(*row)


async def _as_service(conn: AsyncConnection) -> None:
    """Back to the service's own role inside an owner_scope transaction: the job queue is not
    a user's table (its row is written in the same transaction as the user's change)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("RESET ROLE"))


# --- On a user's behalf (inside owner_scope) ----------------------------------------------


async def create_endpoint(
    db: Database, user_id: int, *, url: str, events: Sequence[str], secret: str, limit: int
) -> EndpointRecord | None:
    """The new endpoint, or None when the user already has `limit` of them."""
    now = datetime.now(UTC)
    async with owner_scope(db, user_id) as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).select_from(_e).where(_e.c.user_id == user_id)
        )
        if (count or 0) >= limit:
            return None
        row = (
            await conn.execute(
                sa.insert(_e)
                .values(
                    user_id=user_id,
                    url=url,
                    events=",".join(events),
                    secret=secret,
                    status="ACTIVE",
                    created_at=now,
                    updated_at=now,
                )
                .returning(*_ENDPOINT_COLUMNS)
            )
        ).one()
    return _endpoint(row)


async def endpoints_of(db: Database, user_id: int) -> list[EndpointRecord]:
    async with owner_scope(db, user_id) as conn:
        rows = await conn.execute(
            sa.select(*_ENDPOINT_COLUMNS).where(_e.c.user_id == user_id).order_by(_e.c.id)
        )
        return [_endpoint(row) for row in rows]


async def endpoint_of(db: Database, user_id: int, endpoint_id: int) -> EndpointRecord | None:
    async with owner_scope(db, user_id) as conn:
        row = (
            await conn.execute(
                sa.select(*_ENDPOINT_COLUMNS).where(_e.c.id == endpoint_id, _e.c.user_id == user_id)
            )
        ).first()
    return None if row is None else _endpoint(row)


async def rotate_secret(
    db: Database, user_id: int, endpoint_id: int, *, secret: str, previous_until: datetime
) -> EndpointRecord | None:
    """`secret` signs from now on; the one it replaces signs too until `previous_until`."""
    async with owner_scope(db, user_id) as conn:
        row = (
            await conn.execute(
                sa.update(_e)
                .where(_e.c.id == endpoint_id, _e.c.user_id == user_id)
                .values(
                    previous_secret=_e.c.secret,
                    previous_secret_expires_at=previous_until,
                    secret=secret,
                    updated_at=datetime.now(UTC),
                )
                .returning(*_ENDPOINT_COLUMNS)
            )
        ).first()
    return None if row is None else _endpoint(row)


async def delete_endpoint(db: Database, user_id: int, endpoint_id: int) -> bool:
    """Deletes the endpoint with its deliveries and attempts (ON DELETE CASCADE); their jobs
    find nothing to do."""
    async with owner_scope(db, user_id) as conn:
        result = await conn.execute(
            sa.delete(_e).where(_e.c.id == endpoint_id, _e.c.user_id == user_id)
        )
    return bool(result.rowcount == 1)


async def enable_endpoint(db: Database, user_id: int, endpoint_id: int) -> EndpointRecord | None:
    async with owner_scope(db, user_id) as conn:
        row = (
            await conn.execute(
                sa.update(_e)
                .where(_e.c.id == endpoint_id, _e.c.user_id == user_id)
                .values(
                    status="ACTIVE",
                    disabled_reason=None,
                    failing_since=None,
                    updated_at=datetime.now(UTC),
                )
                .returning(*_ENDPOINT_COLUMNS)
            )
        ).first()
    return None if row is None else _endpoint(row)


def _deliveries_statement(dialect: str, *, status: bool, after: bool) -> sa.Select[Any]:
    conditions: list[sa.ColumnElement[bool]] = []
    if status:
        conditions.append(_d.c.status == sa.bindparam("status", type_=sa.String()))
    if after:
        conditions.append(DELIVERIES_NEWEST_FIRST.after_parameters())
    limit = sa.bindparam("limit", type_=sa.Integer())
    if dialect == "postgresql":
        # One index range scan (endpoint_id, id) per endpoint of the batch.
        wanted = (
            sa.func.unnest(sa.bindparam("keys", type_=ARRAY(sa.BigInteger())))
            .table_valued("key")
            .render_derived(name="wanted")
        )
        page = (
            sa.select(*_DELIVERY_COLUMNS)
            .where(_d.c.endpoint_id == wanted.c.key, *conditions)
            .order_by(_d.c.id.desc())
            .limit(limit)
            .lateral("page")
        )
        return (
            sa.select(*[page.c[c.name] for c in _DELIVERY_COLUMNS])
            .select_from(wanted.join(page, sa.true()))
            .order_by(page.c.endpoint_id, page.c.id.desc())
        )
    rank = sa.func.row_number().over(partition_by=_d.c.endpoint_id, order_by=_d.c.id.desc())
    ranked = (
        sa.select(*_DELIVERY_COLUMNS, rank.label("rank_in_key"))
        .where(_d.c.endpoint_id.in_(sa.bindparam("keys", expanding=True)), *conditions)
        .subquery("ranked")
    )
    return (
        sa.select(*[ranked.c[c.name] for c in _DELIVERY_COLUMNS])
        .where(ranked.c.rank_in_key <= limit)
        .order_by(ranked.c.endpoint_id, ranked.c.id.desc())
    )


async def deliveries_of(
    db: Database,
    user_id: int,
    endpoint_ids: Sequence[int],
    *,
    status: str | None,
    after: Sequence[Any] | None,
    limit: int,
) -> dict[int, list[DeliveryRecord]]:
    """Up to `limit` deliveries of each endpoint, newest first (optionally of one status,
    after a cursor): one statement for the whole batch."""
    grouped: dict[int, list[DeliveryRecord]] = {key: [] for key in endpoint_ids}
    if not endpoint_ids or limit <= 0:
        return grouped
    statement = cached_statement(
        ("webhook_deliveries_of", db.dialect, status is not None, after is not None),
        lambda: _deliveries_statement(
            db.dialect, status=status is not None, after=after is not None
        ),
    )
    params: dict[str, Any] = {"keys": list(endpoint_ids), "limit": limit}
    if status is not None:
        params["status"] = status
    if after is not None:
        params |= DELIVERIES_NEWEST_FIRST.parameter_values(after)
    async with owner_scope(db, user_id) as conn:
        for row in await conn.execute(statement, params):
            grouped[row[1]].append(_delivery(row))
    return grouped


def _attempts_statement(dialect: str) -> sa.Select[Any]:
    # The latest `limit` attempts of each delivery (a replay starts a new series; the
    # schedule bounds one series), shown oldest first.
    rank = sa.func.row_number().over(partition_by=_a.c.delivery_id, order_by=_a.c.id.desc())
    keys = (
        _a.c.delivery_id == sa.any_(sa.bindparam("keys", type_=ARRAY(sa.BigInteger())))
        if dialect == "postgresql"
        else _a.c.delivery_id.in_(sa.bindparam("keys", expanding=True))
    )
    ranked = sa.select(*_ATTEMPT_COLUMNS, rank.label("rank_in_key")).where(keys).subquery("ranked")
    return (
        sa.select(*[ranked.c[c.name] for c in _ATTEMPT_COLUMNS])
        .where(ranked.c.rank_in_key <= sa.bindparam("limit", type_=sa.Integer()))
        .order_by(ranked.c.delivery_id, ranked.c.id)
    )


async def attempts_of(
    db: Database, user_id: int, delivery_ids: Sequence[int], *, limit: int
) -> dict[int, list[AttemptRecord]]:
    grouped: dict[int, list[AttemptRecord]] = {key: [] for key in delivery_ids}
    if not delivery_ids:
        return grouped
    statement = cached_statement(
        ("webhook_attempts_of", db.dialect), lambda: _attempts_statement(db.dialect)
    )
    async with owner_scope(db, user_id) as conn:
        rows = await conn.execute(statement, {"keys": list(delivery_ids), "limit": limit})
        for row in rows:
            grouped[row[1]].append(_attempt(row))
    return grouped


async def replay_delivery(db: Database, user_id: int, delivery_id: int) -> DeliveryRecord | None:
    """Back to PENDING with a new job (same message id, same body); None if not the user's."""
    now = datetime.now(UTC)
    async with owner_scope(db, user_id) as conn:
        row = (
            await conn.execute(
                sa.update(_d)
                .where(_d.c.id == delivery_id, _d.c.user_id == user_id)
                .values(status="PENDING", attempt_count=0, next_attempt_at=now, updated_at=now)
                .returning(*_DELIVERY_COLUMNS)
            )
        ).first()
        if row is None:
            return None
        await _as_service(conn)
        await jobs.enqueue(
            conn, "webhook.deliver", {"delivery_id": delivery_id}, max_attempts=DELIVER_JOB_ATTEMPTS
        )
    return _delivery(row)


async def recover_deliveries(
    db: Database, user_id: int, endpoint_id: int, since: datetime
) -> int | None:
    """Replays every FAILED or DEAD delivery of the endpoint created since `since`; None
    when the endpoint is not the user's."""
    now = datetime.now(UTC)
    async with owner_scope(db, user_id) as conn:
        owned = await conn.scalar(
            sa.select(_e.c.id).where(_e.c.id == endpoint_id, _e.c.user_id == user_id)
        )
        if owned is None:
            return None
        result = await conn.execute(
            sa.update(_d)
            .where(
                _d.c.endpoint_id == endpoint_id,
                _d.c.user_id == user_id,
                _d.c.status.in_(("FAILED", "DEAD")),
                _d.c.created_at >= since,
            )
            .values(status="PENDING", attempt_count=0, next_attempt_at=now, updated_at=now)
            .returning(_d.c.id)
        )
        ids = [row[0] for row in result]
        await _as_service(conn)
        for start in range(0, len(ids), _CHUNK):
            await jobs.enqueue_many(
                conn,
                "webhook.deliver",
                [{"delivery_id": i} for i in ids[start : start + _CHUNK]],
                max_attempts=DELIVER_JOB_ATTEMPTS,
            )
    return len(ids)


# --- The worker's (the service's role: deliveries of every user) -------------------------

_TARGET_COLUMNS = (
    _d.c.id,
    _d.c.user_id,
    _d.c.alert_id,
    _d.c.message_id,
    _d.c.event_type,
    _d.c.payload,
    _d.c.status,
    _d.c.attempt_count,
    _d.c.next_attempt_at,
    _e.c.id,
    _e.c.url,
    _e.c.status,
    _e.c.secret,
    _e.c.previous_secret,
    _e.c.previous_secret_expires_at,
    _e.c.failing_since,
)
_TARGET = sa.select(*_TARGET_COLUMNS).select_from(_d.join(_e, _e.c.id == _d.c.endpoint_id))


# Not `required`: the fast path compiles each statement once, before any values.
_TARGET_BY_ID = _TARGET.where(_d.c.id == sa.bindparam("delivery_id", required=False))
_ENDPOINTS_OF_DELIVERIES = sa.select(_d.c.id, _d.c.endpoint_id).where(
    _d.c.id >= sa.bindparam("first", type_=sa.BigInteger(), required=False),
    _d.c.id <= sa.bindparam("last", type_=sa.BigInteger(), required=False),
    _d.c.status.in_(RETRYABLE),
)

# The worker's reads take the fast path (asyncpg, prepared); its writes are transactions.


async def delivery_target(db: Database, delivery_id: int) -> DeliveryTarget | None:
    rows = await db.fetch_all(_TARGET_BY_ID, {"delivery_id": delivery_id}, prepared=True)
    return DeliveryTarget(*rows[0]) if rows else None


async def endpoints_of_deliveries(
    db: Database, delivery_id: int, *, ahead: int = 0
) -> dict[int, int]:
    """Delivery -> endpoint for `delivery_id` and the `ahead` deliveries after it (made in
    the same batch, they are usually the next jobs: one read instead of one each)."""
    params = {"first": delivery_id, "last": delivery_id + ahead}
    rows = await db.fetch_all(_ENDPOINTS_OF_DELIVERIES, params, prepared=True)
    return {int(row[0]): int(row[1]) for row in rows}


def _claim_statement(dialect: str) -> Any:
    now = sa.bindparam("now", type_=UtcDateTime(), required=False)
    conditions = [
        _d.c.id == sa.bindparam("delivery_id", required=False),
        _d.c.status.in_(RETRYABLE),
        sa.or_(_d.c.next_attempt_at.is_(None), _d.c.next_attempt_at <= now),
    ]
    # Not `required`: the fast path compiles the statement once, before any values.
    until = sa.bindparam("until", type_=UtcDateTime(), required=False)
    values = {"next_attempt_at": until, "updated_at": now}
    if dialect == "postgresql":
        # Claimed and read in one statement: the delivery, its endpoint (which must still be
        # active) and what its body would say of its alert (used when it has none yet).
        labels = [column.label(f"t{i}") for i, column in enumerate(_TARGET_COLUMNS)]
        claimed = (
            sa.update(_d)
            .where(*conditions, _e.c.id == _d.c.endpoint_id, _e.c.status == "ACTIVE")
            .values(values)
            .returning(*labels)
            .cte("claimed")
        )
        alerts = tables.alerts
        return sa.select(
            *[claimed.c[label.name] for label in labels], *_facts_columns()
        ).select_from(_with_alert_details(claimed.outerjoin(alerts, alerts.c.id == claimed.c.t2)))
    active = sa.select(_e.c.id).where(_e.c.status == "ACTIVE")
    return sa.update(_d).where(*conditions, _d.c.endpoint_id.in_(active)).values(values)


@dataclass(frozen=True, slots=True)
class Claimed:
    target: DeliveryTarget
    facts: AlertFacts | None
    """Its alert's facts, when read with the claim (PostgreSQL); else read when needed."""


async def claim_attempt(
    db: Database, delivery_id: int, now: datetime, until: datetime
) -> Claimed | None:
    """Takes the delivery's due attempt, if its endpoint is active: its next_attempt_at moves
    to `until` (past the attempt's timeout), so another job of the same delivery (a replay's)
    waits instead of sending it twice, and a worker that dies mid-attempt leaves it due again
    at `until`. None when it was not due (or not claimable: final, endpoint disabled)."""
    statement = cached_statement(
        ("webhook_claim", db.dialect), lambda: _claim_statement(db.dialect)
    )
    params = {"delivery_id": delivery_id, "now": now, "until": until}
    if db.is_postgresql:
        # One statement on the fast path (autocommit). Run twice (a retried call), the second
        # finds the attempt held and the job waits for the hold: late, never twice.
        rows = await db.fetch_all(statement, params, prepared=True)
        if not rows:
            return None
        width = len(_TARGET_COLUMNS)
        row = tuple(rows[0])
        facts = AlertFacts(*row[width:]) if row[width] is not None else None
        return Claimed(DeliveryTarget(*row[:width]), facts)
    async with db.begin() as conn:
        claimed = (await conn.execute(statement, params)).rowcount == 1
    target = await delivery_target(db, delivery_id) if claimed else None
    return None if target is None else Claimed(target, None)


_STORE_PAYLOAD = (
    sa.update(_d)
    .where(_d.c.id == sa.bindparam("delivery_id", required=False), _d.c.payload.is_(None))
    .values(payload=sa.bindparam("payload", type_=sa.Text(), required=False))
    .returning(_d.c.payload)
)
_PAYLOAD_OF = sa.select(_d.c.payload).where(_d.c.id == sa.bindparam("delivery_id", required=False))


async def store_payload(db: Database, delivery_id: int, payload: str) -> str:
    """Stores the body made by the first attempt; returns the stored one (every attempt
    sends the same bytes, whoever built them first)."""
    params = {"delivery_id": delivery_id, "payload": payload}
    if db.is_postgresql:
        # Idempotent (only a NULL payload is set), so the fast path's autocommit suits it.
        rows = await db.fetch_all(_STORE_PAYLOAD, params, prepared=True)
        stored = rows[0][0] if rows else None
    else:
        async with db.begin() as conn:
            stored = await conn.scalar(_STORE_PAYLOAD, params)
    if stored is None:
        rows = await db.fetch_all(_PAYLOAD_OF, {"delivery_id": delivery_id}, prepared=True)
        stored = rows[0][0]
    return str(stored)


async def cancel_delivery(db: Database, delivery_id: int) -> None:
    now = datetime.now(UTC)
    async with db.begin() as conn:
        await conn.execute(
            sa.update(_d)
            .where(_d.c.id == delivery_id, _d.c.status.in_(RETRYABLE))
            .values(status="CANCELLED", next_attempt_at=None, updated_at=now)
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt and what follows it."""

    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    succeeded: bool
    next_attempt_at: datetime | None
    """When the next attempt is due; None: no more (SUCCEEDED, DEAD, or cancelled)."""
    gone: bool = False
    """The endpoint answered 410: disable it and cancel what it still has to receive."""


FAILING_DISABLES_AFTER = timedelta(days=5)
GONE_REASON = "the endpoint answered 410 Gone"
FAILING_REASON = "failing for 5 days"


def _succeeded_statement() -> Any:
    def bind(name: str, type_: Any) -> Any:
        return sa.bindparam(name, type_=type_, required=False)

    at = bind("at", UtcDateTime())
    attempt = sa.insert(_a).values(
        delivery_id=bind("delivery_id", sa.BigInteger()),
        user_id=bind("user_id", sa.BigInteger()),
        attempted_at=at,
        status_code=bind("status_code", sa.Integer()),
        duration_ms=bind("duration_ms", sa.Integer()),
        error=None,
    )
    return (
        sa.update(_d)
        .where(_d.c.id == bind("delivery_id", sa.BigInteger()))
        .values(
            status="SUCCEEDED",
            attempt_count=_d.c.attempt_count + 1,
            next_attempt_at=None,
            updated_at=at,
        )
        .add_cte(attempt.cte("attempt"))
    )


async def record_attempt(db: Database, target: DeliveryTarget, outcome: Outcome) -> str:
    """Records the attempt, keeps the endpoint's health and moves the delivery on, in one
    transaction. Returns the delivery's new status.

    A failed attempt with no successor leaves its delivery DEAD (recoverWebhookDeliveries
    replays it); when it disables the endpoint (410, or failing for 5 days) it is DEAD too,
    and the endpoint's other waiting deliveries are CANCELLED."""
    now = outcome.attempted_at
    if outcome.succeeded:
        status = "SUCCEEDED"
    elif outcome.gone or outcome.next_attempt_at is None:
        status = "DEAD"
    else:
        status = "FAILED"
    if outcome.succeeded and target.failing_since is None and db.is_postgresql:
        # The common case, one statement on the fast path (atomic: the attempt is a CTE).
        params = {
            "delivery_id": target.delivery_id,
            "user_id": target.user_id,
            "at": now,
            "status_code": outcome.status_code,
            "duration_ms": outcome.duration_ms,
        }
        statement = cached_statement("webhook_succeeded", _succeeded_statement)
        await db.fetch_all(statement, params, prepared=True)
        return status
    attempt = sa.insert(_a).values(
        delivery_id=target.delivery_id,
        user_id=target.user_id,
        attempted_at=now,
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
    )
    async with db.begin() as conn:
        if not db.is_postgresql:
            await conn.execute(attempt)
        if not outcome.succeeded and await _endpoint_failed(conn, target, outcome.gone, now):
            await _cancel_pending(conn, target.endpoint_id, now, but=target.delivery_id)
            status = "DEAD"
        elif outcome.succeeded and target.failing_since is not None:
            await conn.execute(
                sa.update(_e)
                .where(_e.c.id == target.endpoint_id, _e.c.failing_since.is_not(None))
                .values(failing_since=None, updated_at=now)
            )
        moved = (
            sa.update(_d)
            .where(_d.c.id == target.delivery_id)
            .values(
                status=status,
                attempt_count=_d.c.attempt_count + 1,
                next_attempt_at=outcome.next_attempt_at if status == "FAILED" else None,
                updated_at=now,
            )
        )
        if db.is_postgresql:  # one statement: the attempt inserted by a CTE of the update
            moved = moved.add_cte(attempt.cte("attempt"))
        await conn.execute(moved)
    return status


async def _endpoint_failed(
    conn: AsyncConnection, target: DeliveryTarget, gone: bool, now: datetime
) -> bool:
    """Notes a failure on the endpoint: failing since the first failure after a success;
    disabled on 410 or past 5 days of failing. True when this failure disabled it."""
    endpoint = _e.c.id == target.endpoint_id
    if gone:
        result = await conn.execute(
            sa.update(_e)
            .where(endpoint, _e.c.status == "ACTIVE")
            .values(
                status="DISABLED",
                disabled_reason=GONE_REASON,
                failing_since=sa.func.coalesce(_e.c.failing_since, now),
                updated_at=now,
            )
        )
        return bool(result.rowcount == 1)
    cutoff = now - FAILING_DISABLES_AFTER
    long_failing = sa.and_(
        _e.c.status == "ACTIVE", _e.c.failing_since.is_not(None), _e.c.failing_since < cutoff
    )
    row = (
        await conn.execute(
            sa.update(_e)
            .where(endpoint)
            .values(
                failing_since=sa.func.coalesce(_e.c.failing_since, now),
                status=sa.case((long_failing, "DISABLED"), else_=_e.c.status),
                disabled_reason=sa.case((long_failing, FAILING_REASON), else_=_e.c.disabled_reason),
                updated_at=now,
            )
            .returning(_e.c.status)
        )
    ).first()
    return row is not None and row[0] == "DISABLED" and target.endpoint_status == "ACTIVE"


async def _cancel_pending(
    conn: AsyncConnection, endpoint_id: int, now: datetime, *, but: int
) -> None:
    await conn.execute(
        sa.update(_d)
        .where(_d.c.endpoint_id == endpoint_id, _d.c.status.in_(RETRYABLE), _d.c.id != but)
        .values(status="CANCELLED", next_attempt_at=None, updated_at=now)
    )


async def purge_deliveries(
    db: Database, statuses: Sequence[str], older_than: datetime, *, batch: int = 1000
) -> int:
    """Deletes deliveries of these statuses last changed before `older_than` (their attempts
    go with them), `batch` rows per transaction so no statement holds locks for long."""
    chosen = (
        sa.select(_d.c.id)
        .where(_d.c.status.in_(list(statuses)), _d.c.updated_at < older_than)
        .order_by(_d.c.updated_at)
        .limit(batch)
        .scalar_subquery()
    )
    deleted = 0
    while True:
        async with db.begin() as conn:
            result = await conn.execute(sa.delete(_d).where(_d.c.id.in_(chosen)))
        count = int(result.rowcount)
        deleted += max(count, 0)
        if count < batch:
            return deleted


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What a webhook body says about its alert (read once, when the body is made)."""

    alert_id: int
    kind: str
    created_at: datetime
    data: str | None
    saved_search_id: int | None
    saved_search_name: str | None
    property_id: int | None
    unit_number: str | None
    house_number: str | None
    street_name: str | None
    property_name: str | None
    postcode: str | None
    locality_name: str | None
    state: str | None
    sale_id: int | None
    price: int | None
    contract_date: date | None


def _facts_columns() -> list[Any]:
    alerts, searches = tables.alerts, tables.saved_searches
    properties, localities, sales = tables.properties, tables.localities, tables.sales
    return [
        alerts.c.id,
        alerts.c.kind,
        alerts.c.created_at,
        alerts.c.data,
        alerts.c.saved_search_id,
        searches.c.name,
        alerts.c.property_id,
        properties.c.unit_number,
        properties.c.house_number,
        properties.c.street_name,
        properties.c.property_name,
        sa.func.coalesce(localities.c.postcode, properties.c.postcode),
        localities.c.name,
        localities.c.state,
        alerts.c.sale_id,
        sales.c.price,
        sales.c.contract_date,
    ]


def _with_alert_details(source: Any) -> Any:
    """`source` (which holds `alerts`) with what a body says about its alert."""
    alerts, searches = tables.alerts, tables.saved_searches
    properties, localities, sales = tables.properties, tables.localities, tables.sales
    return (
        source.outerjoin(searches, searches.c.id == alerts.c.saved_search_id)
        .outerjoin(properties, properties.c.id == alerts.c.property_id)
        .outerjoin(localities, localities.c.id == properties.c.locality_id)
        .outerjoin(sales, sales.c.id == alerts.c.sale_id)
    )


def _alert_facts_statement() -> sa.Select[Any]:
    return (
        sa.select(*_facts_columns())
        .select_from(_with_alert_details(tables.alerts))
        .where(tables.alerts.c.id == sa.bindparam("alert_id", required=False))
    )


_ALERT_FACTS = _alert_facts_statement()


async def alert_facts(db: Database, alert_id: int) -> AlertFacts | None:
    rows = await db.fetch_all(_ALERT_FACTS, {"alert_id": alert_id}, prepared=True)
    return AlertFacts(*rows[0]) if rows else None


@dataclass(frozen=True, slots=True)
class SaleFacts:
    """A sale a digest lists, with its property's address parts."""

    sale_id: int
    price: int
    contract_date: date
    property_id: int
    unit_number: str | None
    house_number: str | None
    street_name: str | None
    property_name: str | None
    postcode: str
    locality_name: str
    state: str


def _sale_facts_statement() -> sa.Select[Any]:
    properties, localities, sales = tables.properties, tables.localities, tables.sales
    return sa.select(
        sales.c.id,
        sales.c.price,
        sales.c.contract_date,
        properties.c.id,
        properties.c.unit_number,
        properties.c.house_number,
        properties.c.street_name,
        properties.c.property_name,
        localities.c.postcode,
        localities.c.name,
        localities.c.state,
    ).select_from(
        sales.join(properties, properties.c.id == sales.c.property_id).join(
            localities, localities.c.id == properties.c.locality_id
        )
    )


async def sale_facts(db: Database, sale_ids: Sequence[int]) -> dict[int, SaleFacts]:
    if not sale_ids:
        return {}
    statement = cached_statement(
        ("webhook_sale_facts", db.dialect),
        lambda: _sale_facts_statement().where(keys_param(db, tables.sales.c.id, "ids")),
    )
    rows = await db.fetch_all(statement, {"ids": list(sale_ids)}, prepared=True)
    return {row[0]: SaleFacts(*row) for row in rows}
