"""Invalidation: dropping every entry that carries a tag, in this process, in Redis and, through
pub/sub, in every other process; and keeping a load that overlapped an invalidation from
storing what it read (it may predate the write).

Every stored entry names the entities it contains (tags such as `property:42`). L2 keeps a
Redis set per tag (redis_scripts.py); L1 has no sets of its own, so `L1Tags` indexes its keys
by tag. A write's invalidation returns once every subscribed process has acknowledged its
message (up to ACK_WAIT_S): a read sent anywhere after the write's answer is fresh. A load
takes a `LoadTicket` before reading its source: L1 refuses the value when the
local generation counter moved since, L2's store script when Redis's invalidation counter
moved past the one the ticket saw. Every invalidation message carries that counter, so a
process knows it as soon as it has applied the write's invalidation. After a pub/sub
disconnect a process clears its L1: it may have missed messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.keys import Keyspace
from app.cache.memory import BoundedMemoryCache
from app.cache.redis_scripts import RedisScripts

logger = logging.getLogger("propintel.cache")

ACK_WAIT_S = 0.5
"""How long a write waits for the other processes to acknowledge its invalidation. Past it
(a process stalled), the write returns anyway and logs it: that process drops the entries
when it gets to the message."""


@dataclass(slots=True)
class AckCounters:
    """Invalidations this process sent, and those not acknowledged by all in time."""

    sent: int = 0
    acknowledged: int = 0
    late: int = 0


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[None]
    acks: int = 0
    expected: int | None = None
    """Receivers of the message (PUBLISH's answer), this process included; None until known."""

    def ack(self) -> None:
        self.acks += 1
        self.check()

    def check(self) -> None:
        if self.expected is not None and self.acks >= self.expected and not self.future.done():
            self.future.set_result(None)


@dataclass(frozen=True, slots=True)
class LoadTicket:
    generation: int
    seen: int
    """Redis's invalidation counter as this process knew it (redis_scripts.py): a store is
    refused when the counter moved since. Never ahead of Redis's (safe when behind: the
    store is refused, not a stale value kept)."""
    started: float
    """perf_counter() (how long the load took: XFetch's delta)."""


@dataclass(frozen=True, slots=True)
class InvalidationCounts:
    l1_entries: int
    l2_entries: int


class L1Tags:
    """Which L1 keys carry each tag. Kept in step with L1 by its on_drop callback."""

    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = defaultdict(set)
        self._tags: dict[str, tuple[str, ...]] = {}

    def add(self, key: str, tags: tuple[str, ...]) -> None:
        self.forget(key)
        self._tags[key] = tags
        for tag in tags:
            self._keys[tag].add(key)

    def forget(self, key: str) -> None:
        for tag in self._tags.pop(key, ()):
            keys = self._keys.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys[tag]

    def keys(self, tags: Iterable[str], patterns: Iterable[str]) -> set[str]:
        """The keys carrying one of `tags` or a tag matching one of `patterns` (fnmatch)."""
        matched = set(tags)
        for pattern in patterns:
            matched.update(fnmatch.filter(self._keys, pattern))
        return {key for tag in matched for key in self._keys.get(tag, ())}


class Invalidation:
    def __init__(
        self,
        *,
        l1: BoundedMemoryCache,
        l1_tags: L1Tags,
        redis: Redis | None,
        scripts: RedisScripts | None,
        keys: Keyspace,
        origin: str,
    ) -> None:
        self.l1 = l1
        self.l1_tags = l1_tags
        self.redis = redis
        self.scripts = scripts
        self.keys = keys
        self.origin = origin
        """Names this process in the messages it publishes (it applied them before)."""
        self.generation = 0
        """Moves on every L1 invalidation: a load that saw it move does not store in L1."""
        self.seen = 0
        """The highest invalidation counter heard from Redis (replies and messages)."""
        self.subscribed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self.acks = AckCounters()
        self._pending: dict[str, _Pending] = {}
        self._ack_channel = f"{keys.channel}:acks:{origin}"
        """Where the others acknowledge this process's invalidations."""

    # -- tickets ---------------------------------------------------------------------------

    def ticket(self) -> LoadTicket:
        """Taken before computing a value: storing it is refused if an invalidation came
        in between (the value may predate the write)."""
        return LoadTicket(self.generation, self.seen, time.perf_counter())

    def observe(self, counter: int, *, ticket: LoadTicket | None = None) -> None:
        """Redis's counter, as a reply or message showed it. Below a ticket it was given
        for, Redis lost the counter (restarted): start again from what it says now."""
        if counter > self.seen or (ticket is not None and counter < ticket.seen):
            self.seen = counter

    def unchanged_since(self, ticket: LoadTicket) -> bool:
        """No invalidation reached L1 since the ticket was taken."""
        return ticket.generation == self.generation

    # -- invalidation ----------------------------------------------------------------------

    async def invalidate(
        self, tags: Sequence[str] = (), patterns: Sequence[str] = ()
    ) -> InvalidationCounts:
        """Drops every entry carrying one of `tags` or a tag matching one of `patterns`
        (fnmatch style: `property:*`), here, in Redis, and (via pub/sub) in every process."""
        l1 = self.invalidate_l1(tags, patterns)
        l2 = 0
        if self.redis is not None:
            try:
                l2 = await self._invalidate_shared(tags, patterns)
            except (RedisError, OSError) as error:
                # The write stands (it has committed); this process dropped its own entries.
                # Others drop theirs when their pub/sub connection fails (they clear L1) or
                # when the entries expire. Degraded operation is the resilience issue's.
                logger.error("shared invalidation failed, %s %s: %s", tags, patterns, error)
        return InvalidationCounts(l1_entries=l1, l2_entries=l2)

    async def _invalidate_shared(self, tags: Sequence[str], patterns: Sequence[str]) -> int:
        assert self.redis is not None
        assert self.scripts is not None
        tag_keys = [self.keys.tag(tag) for tag in tags]
        for pattern in patterns:
            tag_keys += [
                key.decode() if isinstance(key, bytes) else key
                async for key in self.redis.scan_iter(match=self.keys.tag(pattern), count=1000)
            ]
        dropped, counter = await self.scripts.invalidate(
            keys=[self.keys.last_invalidation, *tag_keys]
        )
        self.observe(int(counter))
        # Acknowledgements come through our own subscription: without one, none can arrive.
        waiting = self.subscribed.is_set()
        message_id = uuid.uuid4().hex if waiting else None
        message = {
            "tags": list(tags),
            "patterns": list(patterns),
            "origin": self.origin,
            "counter": int(counter),
            "id": message_id,
        }
        if message_id is None:
            await self.redis.publish(self.keys.channel, orjson.dumps(message))
            return int(dropped)
        pending = self._pending[message_id] = _Pending(asyncio.get_running_loop().create_future())
        try:
            pending.expected = int(
                await self.redis.publish(self.keys.channel, orjson.dumps(message))
            )
            pending.check()
            self.acks.sent += 1
            try:
                await asyncio.wait_for(asyncio.shield(pending.future), ACK_WAIT_S)
                self.acks.acknowledged += 1
            except TimeoutError:
                self.acks.late += 1
                logger.warning(
                    "invalidation %s acknowledged by %d of %d processes within %.1f s",
                    tags or patterns,
                    pending.acks,
                    pending.expected,
                    ACK_WAIT_S,
                )
        finally:
            del self._pending[message_id]
        return int(dropped)

    def invalidate_l1(self, tags: Iterable[str], patterns: Iterable[str]) -> int:
        self.generation += 1
        return self.l1.delete_now(self.l1_tags.keys(tags, patterns))

    def clear_l1(self) -> None:
        self.generation += 1
        self.l1.clear_now()

    # -- pub/sub ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="cache-invalidations")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self) -> None:
        assert self.redis is not None
        delay = 0.05
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.keys.channel, self._ack_channel)
                    # Messages sent while we were not subscribed are lost: start clean.
                    self.clear_l1()
                    self.observe(int(await self.redis.get(self.keys.last_invalidation) or 0))
                    self.subscribed.set()
                    delay = 0.05
                    ack_channel = self._ack_channel.encode()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        if message["channel"] == ack_channel:
                            self._acknowledged(message["data"].decode())
                        else:
                            await self._apply(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a dropped connection, or anything that broke the loop
                if self.subscribed.is_set():
                    # Lost: clear once now, and again once resubscribed. Not on every failed
                    # retry: while Redis is away L1 is what keeps reads fast.
                    self.subscribed.clear()
                    self.clear_l1()
                    logger.warning("cache invalidation channel lost (%s); L1 cleared", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _apply(self, data: bytes) -> None:
        message = orjson.loads(data)
        origin, message_id = message.get("origin"), message.get("id")
        if origin == self.origin:
            if message_id is not None:  # applied before publishing: our own acknowledgement
                self._acknowledged(message_id)
            return
        self.invalidate_l1(message.get("tags", ()), message.get("patterns", ()))
        # Only now: a load this process starts from here on read after the write.
        self.observe(int(message.get("counter", 0)))
        if message_id is not None and self.redis is not None:
            try:
                await self.redis.publish(f"{self.keys.channel}:acks:{origin}", message_id)
            except (RedisError, OSError) as error:  # the writer waits ACK_WAIT_S, then goes on
                logger.warning("could not acknowledge invalidation %s: %s", message_id, error)

    def _acknowledged(self, message_id: str) -> None:
        pending = self._pending.get(message_id)
        if pending is not None:
            pending.ack()
