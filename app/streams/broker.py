"""Tells subscribed connections that their user has new alerts.

The alerts table is the truth; a broker message is only a wake-up (which users have new
alerts), so a lost message delays an alert, it never loses one.

- In a process: a registry of listeners per user (one asyncio.Event each); waking a user sets
  their events, and each woken subscription reads its user's new alerts from the database.
- Across processes (REDIS_URL): `publish` sends one message (a JSON list of user ids) to the
  channel `<namespace>:alerts`; each process holds ONE pub/sub connection for all of its
  subscribers (a listener task) and wakes the users named that it holds.
- Without Redis, or while it is unreachable: a poller reads, every `subscription_poll_s`, which
  users have alerts past the newest id it saw (one statement per process, not per
  subscriber) and wakes those it holds; with Redis up it still does so every
  SAFETY_POLL_S (a publish that failed is found then). When the listener loses its
  connection it retries with backoff; once subscribed again it wakes every local subscriber
  (whatever was published meanwhile was lost) and the poll goes back to its slow pace.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Iterable, Iterator

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.settings import Settings
from app.streams.cursor import GRACE_S
from app.streams.reader import AlertReader
from db.engine import Database
from db.repositories.alert_stream import alert_watermark, users_with_alerts_after

logger = logging.getLogger("propintel.streams")

SAFETY_POLL_S = 30.0
"""The poll's period while pub/sub works: the longest a wake-up lost in a failed publish
waits."""
PUBLISH_TIMEOUT_S = 1.0
PUBLISH_PAUSE_S = 5.0
"""After a failed publish, publishes skip Redis for this long (local wake-ups only): the
worker calling publish must not wait out a timeout per batch while Redis is down."""
BACKOFF_S = (0.1, 5.0)
"""The listener's reconnection delays: first, and most (doubling, with jitter)."""
HEALTH_CHECK_S = 5
"""The listener's idle connection sends a PING this often (a dead peer shows up)."""


class Listener:
    """One subscription's wake-up: `wait` returns once its user was woken since the last
    `wait` returned (a wake-up that came while the subscription was reading is kept)."""

    __slots__ = ("_event", "user_id", "waiting")

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.waiting = False
        """In `wait` (its subscription has read everything so far)."""
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float | None) -> bool:
        """True when woken, False when `timeout_s` seconds passed first."""
        if not self._event.is_set():
            self.waiting = True
            try:
                async with asyncio.timeout(timeout_s):
                    await self._event.wait()
            except TimeoutError:
                return False
            finally:
                self.waiting = False
        self._event.clear()
        return True


class AlertBroker:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        """`db`: where the poller reads which users have new alerts (None: no poller, each
        subscription then polls on its own while pub/sub is unavailable; see `poll_timeout`)."""
        self.settings = settings
        self.db = db
        self.reader = AlertReader(db) if db is not None else None
        """The subscriptions' reads, batched per tick (see app/streams/reader.py)."""
        self.channel = f"{settings.cache_namespace}:alerts"
        self._listeners: dict[int, set[Listener]] = {}
        self._redis: Redis | None = None
        self._subscribed = False
        self._paused_until = 0.0
        self._mode_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.wakeups = 0
        """Listeners woken since start (statistics for tests and the bench)."""

    # -- subscribers ---------------------------------------------------------------------

    @contextlib.contextmanager
    def listen(self, user_id: int) -> Iterator[Listener]:
        """Registers a listener for the user for the duration of the block."""
        listener = Listener(user_id)
        self._listeners.setdefault(user_id, set()).add(listener)
        try:
            yield listener
        finally:
            listeners = self._listeners.get(user_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[user_id]

    async def wait(self, user_id: int, timeout_s: float | None) -> bool:
        """Waits (at most `timeout_s`) for the user's next wake-up. A subscription loop uses
        `listen` instead, which keeps a wake-up that comes between two waits."""
        with self.listen(user_id) as listener:
            return await listener.wait(timeout_s)

    @property
    def subscribers(self) -> int:
        return sum(len(listeners) for listeners in self._listeners.values())

    def waiting(self, user_id: int) -> int:
        """How many of the user's subscriptions are waiting for a wake-up (tests and the bench
        wait for it before making alerts: a subscription delivers what comes after its start)."""
        return sum(listener.waiting for listener in self._listeners.get(user_id, ()))

    @property
    def degraded(self) -> bool:
        """Redis is configured but the listener is not subscribed: wake-ups from other
        processes do not arrive, the poll does their work."""
        return self.settings.redis_url is not None and not self._subscribed

    @property
    def poll_timeout(self) -> float | None:
        """How long a subscription waits before reading its alerts unwoken: never while this
        broker polls for everyone (it has a database) or pub/sub works."""
        if self.db is not None and self._tasks:
            return None
        if self.settings.redis_url is None or self.degraded:
            return self.settings.subscription_poll_s
        return SAFETY_POLL_S

    def wake(self, user_ids: Iterable[int]) -> None:
        """Wakes this process's listeners of these users."""
        registry = self._listeners
        for user_id in user_ids:
            for listener in registry.get(user_id, ()):
                listener.wake()
                self.wakeups += 1

    def wake_all(self) -> None:
        self.wake(list(self._listeners))

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, user_ids: Iterable[int]) -> None:
        """Wakes every subscription of these users (in every process). Best effort: never
        raises (a subscriber that misses it catches up by polling)."""
        try:
            ids = sorted({int(user_id) for user_id in user_ids})
            if not ids:
                return
            if self.settings.redis_url is None:
                self.wake(ids)
                return
            if time.monotonic() < self._paused_until:
                self.wake(ids)  # Redis failed a moment ago: this process's, at least
                return
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                    await self._client().publish(self.channel, orjson.dumps(ids))
            except Exception as error:
                self._paused_until = time.monotonic() + PUBLISH_PAUSE_S
                logger.warning("alert wake-up not published (%s); polling covers it", error)
                self.wake(ids)
                return
            if not self._subscribed:
                self.wake(ids)  # our own listener is away: do not wait for the poll
        except Exception:  # never into the caller (the worker, after its commit)
            logger.exception("alert wake-up failed")

    def _client(self) -> Redis:
        if self._redis is None:
            assert self.settings.redis_url is not None
            self._redis = _redis(self.settings.redis_url, timeout=PUBLISH_TIMEOUT_S)
        return self._redis

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the listener (with Redis) and the poller (with a database)."""
        if self._tasks:
            return
        if self.settings.redis_url is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="alert-broker-listen"))
        if self.db is not None:
            self._tasks.append(asyncio.create_task(self._poll(), name="alert-broker-poll"))

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subscribed = False
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None
        self.wake_all()  # waiting subscriptions read once more (and see the server closing)

    def _set_subscribed(self, subscribed: bool) -> None:
        if subscribed == self._subscribed:
            return
        self._subscribed = subscribed
        self._mode_changed.set()
        # Subscribed again: what was published meanwhile was lost. Lost: what was published
        # just before may have been too. Either way every subscriber reads once.
        self.wake_all()

    async def _listen(self) -> None:
        assert self.settings.redis_url is not None
        delay = BACKOFF_S[0]
        lost = False
        redis = _redis(self.settings.redis_url, timeout=None, health_check_s=HEALTH_CHECK_S)
        try:
            while True:
                try:
                    async with redis.pubsub() as pubsub:
                        await pubsub.subscribe(self.channel)
                        if lost:
                            logger.warning("alert channel subscribed again")
                        lost = False
                        self._set_subscribed(True)
                        delay = BACKOFF_S[0]
                        while True:
                            message = await pubsub.get_message(
                                ignore_subscribe_messages=True, timeout=HEALTH_CHECK_S
                            )
                            if message is not None and message.get("type") == "message":
                                self._deliver(message["data"])
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # a dropped connection, Redis down
                    if not lost:
                        logger.warning("alert channel lost (%s); polling the database", error)
                    lost = True
                    self._set_subscribed(False)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter
                delay = min(delay * 2, BACKOFF_S[1])
        finally:
            with contextlib.suppress(Exception):
                await redis.aclose()

    def _deliver(self, data: bytes) -> None:
        try:
            ids = orjson.loads(data)
        except orjson.JSONDecodeError:
            logger.warning("unreadable alert wake-up: %r", data[:100])
            return
        if isinstance(ids, list):
            self.wake(user_id for user_id in ids if isinstance(user_id, int))

    async def _poll(self) -> None:
        assert self.db is not None
        # (when, newest id seen): the poll reads from the newest id seen GRACE_S ago, not the
        # newest seen, since an alert with a lower id can commit after a higher one (two
        # matches at once); a user woken twice costs a read, their cursor drops duplicates.
        seen: collections.deque[tuple[float, int]] = collections.deque()
        while True:
            try:
                now = time.monotonic()
                if not seen:
                    # Subscriptions read from their own latest id: only what comes after
                    # this process started polling is the poller's to find.
                    seen.append((now, await alert_watermark(self.db)))
                else:
                    while len(seen) > 1 and seen[1][0] <= now - GRACE_S:
                        seen.popleft()
                    users, newest = await users_with_alerts_after(self.db, seen[0][1])
                    if newest > seen[-1][1]:
                        seen.append((now, newest))
                    self.wake(users)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is down: try again next period
                logger.warning("alert poll failed: %s", error)
            slow = self.settings.redis_url is not None and self._subscribed
            period = SAFETY_POLL_S if slow else self.settings.subscription_poll_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await self._mode_changed.wait()
            self._mode_changed.clear()


def _redis(url: str, *, timeout: float | None, health_check_s: int = 0) -> Redis:
    # No retries inside redis-py: a dropped pub/sub connection must surface (the listener
    # then knows it missed messages), and a publish must fail fast.
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=PUBLISH_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=health_check_s,
    )
