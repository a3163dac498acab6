"""The two-tier read path: L1 in process, L2 in Redis, then the source, one load per key.

Reads go L1 -> L2 -> source; an L2 hit is promoted to L1. A batch costs one Redis round trip
(MGET) for its misses, and one (a Lua script, redis_scripts.py) to store what the source
returned with its tags. Tags, invalidation and the tickets that keep a load which overlapped
an invalidation from storing are in invalidation.py.

Stampedes: one load per key at a time in a process (in-flight futures) and across processes
(a short Redis lease per key, leases.py). XFetch refreshes hot keys early with a probability
that grows as expiry nears (entry.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiocache import RedisCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.entry import Entry, EntrySerializer
from app.cache.invalidation import Invalidation, InvalidationCounts, L1Tags, LoadTicket
from app.cache.keys import Keyspace
from app.cache.leases import Leases
from app.cache.memory import BoundedMemoryCache
from app.cache.redis_client import redis_cache
from app.cache.redis_scripts import RedisScripts, store_call
from app.cache.resources import Resource
from app.cache.stats import CacheStatistics, StoreRefusals
from app.resilience.dependency import ServiceUnavailable
from app.settings.cache import Ttls
from db.engine import Guard

logger = logging.getLogger("propintel.cache")

DEFAULT_NAMESPACE = "pi"


async def _unguarded(
    operation: Callable[[float], Awaitable[Any]], *, self_timed: bool = False
) -> Any:
    return await operation(math.inf)


MISSING: Any = object()
_SERIALIZER = EntrySerializer()


@dataclass(slots=True)
class RequestScope:
    """What one operation read through the cache: the tags and the shortest TTL (the
    whole-operation cache stores its response under them)."""

    tags: set[str] = field(default_factory=set)
    ttl: float = math.inf
    stale_s: float = 0.0
    """How far past its TTL the stalest value served was (stale-if-error); 0: all fresh."""

    def record(self, resource_ttl: float, tags: Iterable[str]) -> None:
        self.tags.update(tags)
        self.ttl = min(self.ttl, resource_ttl)


Loader = Callable[[list[int]], Awaitable[list[Any]]]
"""Loads the values at these positions of the requested keys, in that order."""
Tagger = Callable[[int, Any], Iterable[str]]
"""The tags of the value at this position of the requested keys."""


class TieredCache:
    def __init__(
        self,
        *,
        ttls: Ttls,
        l1_max_entries: int,
        redis_url: str | None,
        namespace: str = DEFAULT_NAMESPACE,
        statistics: CacheStatistics | None = None,
        guard: Guard | None = None,
        stale_if_error_s: float = 0.0,
    ) -> None:
        # Entries are kept this long past their TTL, and served only when reloading them
        # fails because a dependency is unavailable (the response then says how stale).
        self.stale_if_error_s = stale_if_error_s
        # Redis calls on the read path go through the resilience policy (timeout, breaker):
        # a slow or absent Redis costs a bounded wait, then nothing while the breaker is open.
        self.guard: Guard = guard or _unguarded
        self.ttls = ttls
        self.keys = Keyspace(namespace)
        self.loads = 0
        """Keys this process loaded from the source (for tests and statistics)."""
        self.refusals = StoreRefusals()
        self.l1_tags = L1Tags()
        self.l1 = BoundedMemoryCache(max_entries=l1_max_entries, on_drop=self.l1_tags.forget)
        self.statistics = statistics or CacheStatistics()
        self.l2: RedisCache | None = None
        self.redis: Redis | None = None
        self.scripts: RedisScripts | None = None
        if redis_url:
            self.l2 = redis_cache(redis_url)
            self.redis = self.l2.client
            self.scripts = RedisScripts(self.redis)
        # Names this process's cache in Redis: the leases it holds, the invalidations it sent.
        origin = uuid.uuid4().hex
        self.leases = Leases(
            redis=self.redis, l2=self.l2, keys=self.keys, owner=origin, guard=self.guard
        )
        self.invalidation = Invalidation(
            l1=self.l1,
            l1_tags=self.l1_tags,
            redis=self.redis,
            scripts=self.scripts,
            keys=self.keys,
            origin=origin,
        )
        self.subscribed = self.invalidation.subscribed
        """Set while this process receives invalidations from the others."""
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    # -- lifecycle and invalidation (invalidation.py) ---------------------------------------

    def start(self) -> None:
        self.invalidation.start()

    async def close(self) -> None:
        await self.invalidation.stop()
        if self.redis is not None:
            await self.redis.aclose()

    async def invalidate(
        self, tags: Sequence[str] = (), patterns: Sequence[str] = ()
    ) -> InvalidationCounts:
        """Drops every entry carrying one of `tags` or a tag matching one of `patterns`
        (fnmatch style: `property:*`), here, in Redis, and (via pub/sub) in every process."""
        return await self.invalidation.invalidate(tags, patterns)

    def clear_l1(self) -> None:
        self.invalidation.clear_l1()

    def ticket(self) -> LoadTicket:
        """Taken before computing a value `put` stores: storing it is refused if an
        invalidation came in between (the value may predate the write)."""
        return self.invalidation.ticket()

    # -- reads ----------------------------------------------------------------------------

    async def fetch_many(
        self,
        resource: Resource,
        keys: Sequence[str],
        load: Loader,
        tags: Tagger,
        scope: RequestScope | None = None,
    ) -> list[Any]:
        """Values for `keys` from L1, L2 or `load`, in key order."""
        ttl = self.ttls.of(resource)
        full_keys = [self.keys.value(resource, key) for key in keys]
        values: list[Any] = [None] * len(keys)
        stale: dict[int, Entry] = {}
        missing = self._from_l1(resource, full_keys, values, stale)
        stale_in_l1 = set(stale) if stale else set()  # the others are found in L2
        if missing and self.l2 is not None:
            missing = await self._from_l2(resource, full_keys, values, missing, stale)
            # While we waited for Redis another request may have loaded these keys.
            missing = self._recheck_l1(full_keys, values, missing)
        if missing:
            try:
                await self._load(resource, ttl, full_keys, values, missing, load, tags)
            except ServiceUnavailable:
                if not all(position in stale for position in missing):
                    raise
                # Stale-if-error: what we had, past its TTL, rather than an error.
                now = time.time()
                for position in missing:
                    values[position] = stale[position].value
                if scope is not None:
                    age = max(now - stale[position].expires_at for position in missing)
                    scope.stale_s = max(scope.stale_s, age, 0.0)
                from_l1 = sum(1 for position in missing if position in stale_in_l1)
                self.statistics.count_stale(resource, l1=from_l1, l2=len(missing) - from_l1)
        if scope is not None:
            scope.record(ttl, (tag for i, v in enumerate(values) for tag in tags(i, v)))
        return values

    def _from_l1(
        self,
        resource: Resource,
        keys: list[str],
        values: list[Any],
        stale: dict[int, Entry] | None = None,
    ) -> list[int]:
        now = time.time()
        missing: list[int] = []
        found = self.l1.peek_many(keys)
        for position, entry in enumerate(found):
            if entry is None:
                missing.append(position)
            elif entry.refresh_early(now):  # expired, or chosen for early refresh
                missing.append(position)
                if stale is not None:
                    stale[position] = entry
            else:
                values[position] = entry.value
        self.statistics.count("l1", resource, hits=len(keys) - len(missing), misses=len(missing))
        return missing

    def _recheck_l1(self, keys: list[str], values: list[Any], missing: list[int]) -> list[int]:
        found = self.l1.peek_many([keys[p] for p in missing])
        still_missing = []
        for position, entry in zip(missing, found, strict=True):
            if entry is None:
                still_missing.append(position)
            else:
                values[position] = entry.value
        return still_missing

    async def _from_l2(
        self,
        resource: Resource,
        keys: list[str],
        values: list[Any],
        missing: list[int],
        stale: dict[int, Entry] | None = None,
    ) -> list[int]:
        assert self.redis is not None
        redis = self.redis
        try:
            # redis-py's MGET itself: aiocache's multi_get wraps it in four layers (enabled,
            # timeout, plugins, namespaces) that cost more than the round trip here.
            raw = await self.guard(lambda _budget: redis.mget([keys[i] for i in missing]))
        except (RedisError, OSError, ServiceUnavailable) as error:
            logger.warning("L2 read failed, reading through: %s", error)
            self.statistics.count("l2", resource, hits=0, misses=len(missing), errors=1)
            return missing
        found = [_SERIALIZER.loads(value) for value in raw]
        now = time.time()
        still_missing: list[int] = []
        promote: list[tuple[str, Entry]] = []
        for position, entry in zip(missing, found, strict=True):
            if entry is None:
                still_missing.append(position)
            elif entry.refresh_early(now):
                still_missing.append(position)
                if stale is not None and position not in stale:
                    stale[position] = entry
            else:
                values[position] = entry.value
                promote.append((keys[position], entry))
        for key, entry in promote:
            self._put_l1(key, entry, entry.expires_at - now)
        hits = len(missing) - len(still_missing)
        self.statistics.count("l2", resource, hits=hits, misses=len(still_missing))
        return still_missing

    async def _load(
        self,
        resource: Resource,
        ttl: float,
        keys: list[str],
        values: list[Any],
        missing: list[int],
        load: Loader,
        tags: Tagger,
    ) -> None:
        # Keys another request of this process is loading: wait for it instead.
        waiting = [(p, self._inflight[keys[p]]) for p in missing if keys[p] in self._inflight]
        mine = [p for p in missing if keys[p] not in self._inflight]
        loop = asyncio.get_running_loop()
        futures = {keys[p]: loop.create_future() for p in mine}
        self._inflight.update(futures)
        try:
            if mine:
                await self._load_mine(resource, ttl, keys, values, mine, load, tags, futures)
        except BaseException as error:
            for future in futures.values():
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved: the waiters re-raise it, nobody else
            raise
        finally:
            for key in futures:
                self._inflight.pop(key, None)
        for position, future in waiting:
            values[position] = await future

    async def _load_mine(
        self,
        resource: Resource,
        ttl: float,
        keys: list[str],
        values: list[Any],
        mine: list[int],
        load: Loader,
        tags: Tagger,
        futures: dict[str, asyncio.Future[Any]],
    ) -> None:
        ticket = self.invalidation.ticket()
        # Across processes: take a lease per key; keys leased elsewhere may appear in L2.
        # The same round trip reads the invalidation counter: this load's L2 ticket.
        acquired = await self.leases.acquire(keys, mine)
        if acquired.counter is not None:
            ticket = replace(ticket, seen=acquired.counter)
            self.invalidation.observe(acquired.counter)
        leased = list(acquired.leased)
        if acquired.elsewhere:
            arrived = await self.leases.wait_for_l2(keys, acquired.elsewhere)
            for position, entry in arrived.items():
                values[position] = entry.value
                futures[keys[position]].set_result(entry.value)
            # Not there (the holder's store was refused, or it is slow or gone): load them.
            leased += [p for p in acquired.elsewhere if p not in arrived]
        if not leased:
            return
        started = time.perf_counter()
        self.loads += len(leased)
        try:
            loaded = await load(leased)
        except BaseException:
            await self.leases.release(keys, acquired.leased)
            raise
        delta = time.perf_counter() - started
        expires_at = time.time() + ttl
        stored: list[tuple[str, Entry]] = []
        for position, value in zip(leased, loaded, strict=True):
            values[position] = value
            futures[keys[position]].set_result(value)
            entry = Entry(value, expires_at, delta, tuple(tags(position, value)))
            stored.append((keys[position], entry))
        if self.invalidation.unchanged_since(ticket):
            for key, entry in stored:
                self._put_l1(key, entry, ttl)
        else:
            self.refusals.l1 += len(stored)
        # The store releases our leases with it: waiters see the value and no lease at once.
        if not await self._store_l2(
            stored, ttl, ticket, self.leases.lease_keys(keys, acquired.leased)
        ):
            await self.leases.release(keys, acquired.leased)

    async def _store_l2(
        self,
        stored: list[tuple[str, Entry]],
        ttl: float,
        ticket: LoadTicket,
        leases: list[str] | None = None,
    ) -> bool:
        """Stores (unless an invalidation came after `ticket`) and releases `leases`; False
        when Redis could not be asked (the leases are still held)."""
        if self.scripts is None:
            return True  # no Redis: no leases either
        if not stored:
            return not leases
        scripts = self.scripts
        kept_ms = int((ttl + self.stale_if_error_s) * 1000)
        keys, arguments = store_call(
            self.keys,
            stored,
            seen=ticket.seen,
            kept_ms=kept_ms,
            leases=leases or (),
            owner=self.leases.owner,
        )
        try:
            accepted, counter = await self.guard(
                lambda _budget: scripts.store(keys=keys, args=arguments)
            )
        except (RedisError, OSError, ServiceUnavailable) as error:
            logger.warning("L2 write failed: %s", error)
            return False
        self.invalidation.observe(int(counter), ticket=ticket)
        if not accepted:
            self.refusals.l2 += len(stored)
            # Redis heard of an invalidation this process has not applied yet (its message is
            # on the way): what L1 just took may predate it.
            self.l1.delete_now(key for key, _ in stored)
        return True

    def _put_l1(self, key: str, entry: Entry, ttl: float) -> None:
        self.l1.put(key, entry, ttl + self.stale_if_error_s)
        self.l1_tags.add(key, entry.tags)

    # -- single values stored by the caller (the whole-operation cache) ----------------------

    async def get(self, resource: Resource, key: str) -> Any:
        """The value under `key`, or MISSING."""
        full_key = self.keys.value(resource, key)
        values: list[Any] = [None]
        missing = self._from_l1(resource, [full_key], values)
        if missing and self.l2 is not None:
            missing = await self._from_l2(resource, [full_key], values, missing)
        return MISSING if missing else values[0]

    async def get_stale(self, resource: Resource, key: str) -> tuple[Any, float]:
        """The value under `key` even past its TTL (within the stale-if-error window), and
        how many seconds past it; (MISSING, 0) when there is none."""
        full_key = self.keys.value(resource, key)
        stale: dict[int, Entry] = {}
        values: list[Any] = [None]
        missing = self._from_l1(resource, [full_key], values, stale)
        if missing and 0 not in stale and self.l2 is not None:
            missing = await self._from_l2(resource, [full_key], values, missing, stale)
        if not missing:
            return values[0], 0.0
        if 0 in stale:
            return stale[0].value, max(0.0, time.time() - stale[0].expires_at)
        return MISSING, 0.0

    async def put(
        self, resource: Resource, key: str, value: Any, tags: Iterable[str], ticket: LoadTicket
    ) -> None:
        ttl = self.ttls.of(resource)
        full_key = self.keys.value(resource, key)
        entry = Entry(value, time.time() + ttl, time.perf_counter() - ticket.started, tuple(tags))
        if self.invalidation.unchanged_since(ticket):
            self._put_l1(full_key, entry, ttl)
        else:
            self.refusals.l1 += 1
        await self._store_l2([(full_key, entry)], ttl, ticket)
