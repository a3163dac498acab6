"""The pieces under `subscription { alerts }`, on their own: the cursor's grace window (ids
that commit out of order), the broker's listeners and wake-ups, its publish that never
raises, and its Redis channel between two brokers (two processes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.settings import Settings
from app.streams import cursor as cursor_module
from app.streams.broker import AlertBroker
from app.streams.cursor import AlertCursor
from db import tables
from db.engine import Database, create_engine
from db.repositories.alert_stream import alerts_after_many
from tests.support.apps import forget_namespace
from tests.support.live import free_port
from tests.support.settings import REDIS_URL, new_namespace


class Clock:
    """Stands in for the `time` module in app/streams/cursor.py."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_the_cursor_rereads_recent_ids_and_skips_what_it_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(cursor_module, "time", clock)
    cursor = AlertCursor(10, grace_s=60)
    assert cursor.floor == 10
    assert cursor.fresh(12)
    assert not cursor.fresh(12)  # once
    assert cursor.floor == 10  # 11 may still commit: read from 10 again
    assert cursor.fresh(11)  # ... and it did, late: delivered
    assert not cursor.delivered(13)
    clock.now += 59
    assert cursor.floor == 10
    clock.now += 1
    assert cursor.floor == 12  # 12 and 11 were delivered a grace period ago
    assert cursor.delivered(11)
    assert cursor.delivered(12)
    assert not cursor.fresh(9)  # below the floor: predates it


async def test_listeners_wake_per_user_and_keep_a_wake_up_between_waits() -> None:
    broker = AlertBroker(Settings(REDIS_URL=None))
    with broker.listen(1) as first, broker.listen(1) as second, broker.listen(2) as other:
        assert broker.subscribers == 3
        broker.wake([1])
        assert await first.wait(0)  # woken before it waited: kept
        assert await second.wait(0)
        assert not await other.wait(0.05)
        assert not await first.wait(0.05)  # a wake-up is used once
        waiting = asyncio.create_task(other.wait(5))
        await asyncio.sleep(0.01)
        assert broker.waiting(2) == 1
        await broker.publish([2, 2, 3])  # no Redis: straight to this process's listeners
        assert await waiting
    assert broker.subscribers == 0


async def test_publish_never_raises() -> None:
    closed = AlertBroker(Settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    with closed.listen(7) as listener:
        await closed.publish([7])  # refused: this process's listeners are woken anyway
        assert await listener.wait(0)
        await closed.publish(["not", "ids"])  # type: ignore[list-item]
        await closed.publish([])
    await closed.close()


async def test_two_brokers_share_the_channel_and_a_restart_catches_up() -> None:
    namespace = new_namespace("subb")
    settings = Settings(REDIS_URL=REDIS_URL, PROPINTEL_CACHE_NAMESPACE=namespace)
    server, worker = AlertBroker(settings), AlertBroker(settings)
    await server.start()
    try:
        async with asyncio.timeout(5):
            while server.degraded:  # noqa: ASYNC110 (the listener has no event to await)
                await asyncio.sleep(0.01)
        with server.listen(5) as listener, server.listen(6) as bystander:
            await worker.publish([5])
            assert await listener.wait(2)
            assert not await bystander.wait(0.1)
            assert server.poll_timeout == 30.0  # no database: each subscription polls slowly
    finally:
        await server.close()
        await worker.close()
        await forget_namespace(REDIS_URL, namespace)


async def test_alerts_after_many_pages_each_key_on_both_dialects(backend_url: str) -> None:
    """One statement for many (user, after) keys: each key its own user's alerts above its
    id, oldest first, at most `limit`; two keys of one user are two pages."""
    db = Database(create_engine(Settings(DATABASE_URL=backend_url).database_url))
    try:
        run = uuid.uuid4().hex[:8]
        async with db.begin() as conn:
            users = [
                int(row[0])
                for row in await conn.execute(
                    sa.insert(tables.users).returning(tables.users.c.id),
                    [
                        {"email": f"many-{run}-{i}@example.com", "password_hash": "x"}
                        for i in (1, 2)
                    ],
                )
            ]
            ids = [
                int(row[0])
                for row in await conn.execute(
                    sa.insert(tables.alerts).returning(tables.alerts.c.id),
                    [
                        {
                            "user_id": users[i % 2],
                            "kind": "SALE_MATCHED",
                            "created_at": datetime.now(UTC),
                            "dedupe_key": f"M:{run}:{i}",
                        }
                        for i in range(7)
                    ],
                )
            ]
        first, second = users
        mine = sorted(ids[0::2])  # first's four
        pages = await alerts_after_many(
            db, [(first, 0), (second, 0), (first, mine[1]), (10**12, 0)], limit=3
        )
        assert [[a.id for a in page] for page in pages] == [
            mine[:3],
            sorted(ids[1::2]),
            mine[2:],
            [],
        ]
        assert {a.user_id for a in pages[0] + pages[2]} == {first}
        assert all(a.created_at.tzinfo is not None for page in pages for a in page)
        assert await alerts_after_many(db, []) == []
    finally:
        await db.dispose()


async def test_the_poll_wakes_a_user_whose_alert_committed_after_a_higher_id(
    postgres_url: str,
) -> None:
    """Without Redis the poll finds new alerts: one whose (lower) id commits after a higher
    one's was seen still wakes its user (the poll reads from the id seen a grace ago)."""
    settings = Settings(
        DATABASE_URL=postgres_url, REDIS_URL=None, PROPINTEL_SUBSCRIPTION_POLL_S=0.1
    )
    db = Database(create_engine(settings.database_url))
    broker = AlertBroker(settings, db)
    woken: list[int] = []
    original = broker.wake

    def record(users: Iterable[int]) -> None:
        listed = list(users)
        woken.extend(listed)
        original(listed)

    broker.wake = record  # type: ignore[method-assign,assignment]
    run = uuid.uuid4().hex[:8]
    try:
        async with db.begin() as conn:
            late, early = [
                int(row[0])
                for row in await conn.execute(
                    sa.insert(tables.users).returning(tables.users.c.id),
                    [
                        {"email": f"poll-{run}-{i}@example.com", "password_hash": "x"}
                        for i in (1, 2)
                    ],
                )
            ]
        await broker.start()
        await asyncio.sleep(0.3)  # the poll has its starting watermark

        def alert(user_id: int, key: str) -> dict[str, object]:
            return {
                "user_id": user_id,
                "kind": "SALE_MATCHED",
                "created_at": datetime.now(UTC),
                "dedupe_key": f"P:{run}:{key}",
            }

        async with db.begin() as slow:  # takes the lower id, commits last
            await slow.execute(sa.insert(tables.alerts), [alert(late, "late")])
            async with db.begin() as fast:
                await fast.execute(sa.insert(tables.alerts), [alert(early, "early")])
            for _ in range(50):
                if early in woken:
                    break
                await asyncio.sleep(0.05)
            assert early in woken
            assert late not in woken
        for _ in range(50):
            if late in woken:
                break
            await asyncio.sleep(0.05)
        assert late in woken
    finally:
        await broker.close()
        await db.dispose()
