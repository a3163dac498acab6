"""`subscription { alerts }`: the caller's new alerts, as they are made.

The alerts table is the truth: the subscription is woken by the broker (app/streams), reads
its user's alerts past the last it delivered, and yields them; a wake-up that was lost only
delays an alert until the next one or the broker's poll. It starts from the user's newest
alert at subscribe time, or from `after` (an alert id the client saw last): a client that
reconnects passes it, or reads `me { alerts }` (newest first, paged with `after:` cursors)
back to the last alert it saw, and misses nothing.

Each event is resolved with fresh per-request loaders: a socket lives for hours, and nothing
read for one event may be served from memory for the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from app.cache import RequestScope
from app.context import Context, Info
from app.errors import UnauthenticatedError
from app.streams.cursor import AlertCursor
from app.streams.reader import AlertReader
from db.repositories.alert_stream import latest_alert_id
from db.repositories.alerts import AlertRecord
from loaders import create_loaders
from schema.ids import expect_global_id

logger = logging.getLogger("propintel.streams")

RETRY_S = 2.0
"""After a failed read (the database is down), the next try comes this much later."""


async def alerts(
    info: Info,
    after: Annotated[
        strawberry.ID | None,
        strawberry.argument(
            description="Start after this alert (the last one you received): the alerts "
            "made since are sent first. Default: only alerts made from now on."
        ),
    ] = None,
) -> AsyncGenerator[AlertRecord, None]:
    # Checked here, before the stream exists: a refusal is the operation's `error` message
    # (no stream is started), not an event.
    user_id = info.context.principal.user_id
    if user_id is None:
        raise UnauthenticatedError(
            "Subscribing to alerts needs a user: send "
            '`{"Authorization": "Bearer <access token or API key>"}` as connection_init\'s '
            "payload."
        )
    start = expect_global_id(after, "Alert", argument="after") if after is not None else None
    return _stream(info.context, user_id, start)


async def _stream(
    context: Context, user_id: int, start: int | None
) -> AsyncGenerator[AlertRecord, None]:
    broker = context.broker
    reader = broker.reader or AlertReader(context.db)
    # Listening before reading the starting point: a wake-up that comes in between is kept.
    with broker.listen(user_id) as listener:
        while start is None:
            try:
                start = await latest_alert_id(context.db, user_id)
            except Exception as error:  # the database is away: wait for it, keep the socket
                logger.warning("alert subscription start failed: %s", error)
                await asyncio.sleep(RETRY_S)
        cursor = AlertCursor(start)
        while True:
            try:
                batch = await _unseen(reader, user_id, cursor)
            except Exception as error:  # the database is away: keep the socket, try later
                logger.warning("alert subscription read failed: %s", error)
                await listener.wait(RETRY_S)
                continue
            for record in batch:
                if cursor.fresh(record.id):  # marked delivered only as it is sent
                    _fresh_request(context)
                    yield record
            await listener.wait(broker.poll_timeout)


async def _unseen(reader: AlertReader, user_id: int, cursor: AlertCursor) -> list[AlertRecord]:
    """The user's alerts not yet delivered, oldest first (every page past the floor). The
    reader batches this read with the other subscriptions woken at the same time."""
    unseen: list[AlertRecord] = []
    position = cursor.floor
    while True:
        page = await reader.after(user_id, position)
        unseen.extend(record for record in page if not cursor.delivered(record.id))
        if len(page) < reader.limit:
            return unseen
        position = page[-1].id


def _fresh_request(context: Context) -> None:
    """What one HTTP request would start with: new loaders (and cache scope), no gatherers."""
    scope = RequestScope() if context.caching is not None else None
    context.scope = scope
    context.loaders = create_loaders(context.db, context.cache, scope)
    context.field_batches.clear()
