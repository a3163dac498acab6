"""The reads of a process's subscriptions, batched: the subscriptions woken by one message
read in the same tick, and those reads go out as one statement (per MAX_BATCH keys).

A thousand subscribers woken at once read in tens of milliseconds this way, where a thousand
transactions of their own queue for the pool for over a second (bench/subscriptions.py).
"""

from __future__ import annotations

import asyncio
import logging

from db.engine import Database
from db.repositories.alert_stream import alerts_after_many
from db.repositories.alerts import AlertRecord

logger = logging.getLogger("propintel.streams")

MAX_BATCH = 500
"""Keys per statement (bounded statement size and result)."""

_Pending = tuple[int, int, asyncio.Future[list[AlertRecord]]]


class AlertReader:
    def __init__(self, db: Database, *, limit: int = 100) -> None:
        self.db = db
        self.limit = limit
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.statements = 0
        """Statements run (the bench and tests compare it with the reads asked for)."""

    async def after(self, user_id: int, after_id: int) -> list[AlertRecord]:
        """The user's alerts above `after_id`, oldest first, at most `limit` (only theirs:
        every row's user is checked here, as well as selected by the statement)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[AlertRecord]] = loop.create_future()
        self._pending.append((user_id, after_id, future))
        if not self._scheduled:
            # Runs after every callback already queued: the other woken subscriptions get
            # to add their keys first.
            self._scheduled = True
            loop.call_soon(self._dispatch)
        page = await future
        return [record for record in page if _owned(record, user_id)]

    def _dispatch(self) -> None:
        pending, self._pending = self._pending, []
        self._scheduled = False
        for start in range(0, len(pending), MAX_BATCH):
            task = asyncio.create_task(self._read(pending[start : start + MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _read(self, batch: list[_Pending]) -> None:
        try:
            self.statements += 1
            pages = await alerts_after_many(
                self.db, [(user_id, after_id) for user_id, after_id, _ in batch], self.limit
            )
        except Exception as error:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, _, future), page in zip(batch, pages, strict=True):
            if not future.done():  # its subscription may have gone meanwhile
                future.set_result(page)


def _owned(record: AlertRecord, user_id: int) -> bool:
    if record.user_id == user_id:
        return True
    logger.error("alert %s of user %s read for user %s", record.id, record.user_id, user_id)
    return False
