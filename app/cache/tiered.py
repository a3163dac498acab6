"""The two-tier cache: L1 in process, L2 in Redis, tags for invalidation, one load per key.

Reads go L1 -> L2 -> source; an L2 hit is promoted to L1. A batch costs one Redis round trip
(MGET) for its misses, and one (a Lua script) to store what the source returned with its tags.

Coherence:
* Every stored entry names the entities it contains (tags such as `property:42`); invalidating
  a tag drops every entry that carries it, in both tiers, and the invalidation is published on
  Redis pub/sub so every process drops its L1 entries too.
* A load that overlapped an invalidation must not store what it read (it may predate the
  write): L1 compares a local generation counter; L2's store script refuses when Redis recorded
  an invalidation after the load started (minus a margin for clock skew between hosts).
* After a pub/sub disconnect a process clears its L1: it may have missed messages.

Stampedes: one load per key at a time in a process (in-flight futures) and across processes
(a short Redis lease per key; the others wait briefly for the value to appear in L2).
XFetch refreshes hot keys early with a probability that grows as expiry nears.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import math
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiocache import RedisCache
from aiocache.serializers import BaseSerializer
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from app.cache import codec
from app.cache.memory import BoundedMemoryCache
from app.cache.resources import Resource
from app.cache.stats import CacheStatistics
from app.resilience.dependency import ServiceUnavailable
from app.settings.cache import Ttls
from db.engine import Guard

logger = logging.getLogger("propintel.cache")

DEFAULT_NAMESPACE = "pi"
VALUE_PREFIX = "c:"  # after the namespace: "<namespace>:c:<resource>:<key>"
CLOCK_SKEW_MARGIN_MS = 100  # hosts of one deployment keep NTP time well within this
LEASE_MS = 3000
LEASE_WAIT_S = 1.0
XFETCH_BETA = 1.0
REDIS_POOL_SIZE = 32

# KEYS: LAST_INVALIDATION, then the value keys. ARGV: load start (ms), ttl (ms), then per key
# its encoded value, its number of tags and the tags.
_STORE_SCRIPT = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last >= tonumber(ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[2])
local a = 3
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[a], 'PX', ttl)
  local n = tonumber(ARGV[a + 1])
  for t = 1, n do
    local tag = ARGV[a + 1 + t]
    redis.call('SADD', tag, KEYS[i])
    if redis.call('PTTL', tag) < ttl then redis.call('PEXPIRE', tag, ttl) end
  end
  a = a + 2 + n
end
return 1
"""

# KEYS: LAST_INVALIDATION, then tag sets. ARGV: now (ms). Returns the number of entries dropped.
_INVALIDATE_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1])
local dropped = 0
for i = 2, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  for _, key in ipairs(members) do dropped = dropped + redis.call('DEL', key) end
  redis.call('DEL', KEYS[i])
end
return dropped
"""


@dataclass(frozen=True, slots=True)
class Entry:
    value: Any
    expires_at: float
    """Wall-clock time (shared by processes, for XFetch)."""
    delta: float
    """Seconds the load took: XFetch refreshes expensive entries earlier."""
    tags: tuple[str, ...] = ()

    def refresh_early(self, now: float) -> bool:
        # XFetch (Vattani, Chierichetti, Lowenstein 2015): -log(u) is exponential(1).
        return now - self.delta * XFETCH_BETA * math.log(1.0 - random.random()) >= self.expires_at


class _EntrySerializer(BaseSerializer):  # type: ignore[misc]  # aiocache is untyped
    DEFAULT_ENCODING = None

    def dumps(self, value: Entry) -> bytes:
        encoded = codec.encode(value.value)
        return orjson.dumps([value.expires_at, value.delta, value.tags, encoded])

    def loads(self, value: bytes | None) -> Entry | None:
        if value is None:
            return None
        expires_at, delta, tags, encoded = orjson.loads(value)
        return Entry(codec.decode(encoded), expires_at, delta, tuple(tags))


_SERIALIZER = _EntrySerializer()


async def _unguarded(
    operation: Callable[[float], Awaitable[Any]], *, self_timed: bool = False
) -> Any:
    return await operation(math.inf)


MISSING: Any = object()


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


@dataclass(frozen=True, slots=True)
class LoadTicket:
    generation: int
    started_ms: int
    started: float


@dataclass(frozen=True, slots=True)
class InvalidationCounts:
    l1_entries: int
    l2_entries: int


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
        # Every Redis key and the channel start with the namespace: deployments (or test
        # runs) sharing one Redis never see each other's entries or invalidations.
        self.value_prefix = f"{namespace}:{VALUE_PREFIX}"
        self.tag_prefix = f"{namespace}:t:"
        self.lease_prefix = f"{namespace}:lease:"
        self.last_invalidation = f"{namespace}:last-invalidation-ms"
        self.channel = f"{namespace}:invalidations"
        self.loads = 0
        """Keys this process loaded from the source (for tests and statistics)."""
        self.l1 = BoundedMemoryCache(max_entries=l1_max_entries, on_drop=self._forget_tags)
        self.statistics = statistics or CacheStatistics()
        self.l2: RedisCache | None = None
        self.redis: Redis | None = None
        if redis_url:
            self.l2 = _redis_cache(redis_url)
            self.redis = self.l2.client
            self._store_script = self.redis.register_script(_STORE_SCRIPT)
            self._invalidate_script = self.redis.register_script(_INVALIDATE_SCRIPT)
        self.generation = 0
        self.origin = uuid.uuid4().hex
        self._l1_tags: dict[str, set[str]] = defaultdict(set)
        self._l1_key_tags: dict[str, tuple[str, ...]] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

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
        full_keys = [f"{self.value_prefix}{resource.value}:{key}" for key in keys]
        values: list[Any] = [None] * len(keys)
        stale: dict[int, Entry] = {}
        missing = self._from_l1(resource, full_keys, values, stale)
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
                self.statistics.count("stale", resource, hits=len(missing), misses=0)
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
        assert self.l2 is not None
        try:
            found = await self.guard(lambda _budget: self.l2.multi_get([keys[i] for i in missing]))  # type: ignore[union-attr]
        except (RedisError, OSError, ServiceUnavailable) as error:
            logger.warning("L2 read failed, reading through: %s", error)
            self.statistics.count("l2", resource, hits=0, misses=len(missing), errors=1)
            return missing
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
        generation = self.generation
        started_ms = int(time.time() * 1000)
        # Across processes: take a lease per key; keys leased elsewhere may appear in L2.
        acquired, elsewhere = await self._leases(keys, mine)
        leased = list(acquired)
        if elsewhere:
            arrived = await self._wait_for_l2(keys, elsewhere)
            for position, entry in arrived.items():
                values[position] = entry.value
                futures[keys[position]].set_result(entry.value)
            # Not there in time (the other process is slow or gone): load them ourselves.
            leased += [p for p in elsewhere if p not in arrived]
        if not leased:
            return
        started = time.perf_counter()
        self.loads += len(leased)
        try:
            loaded = await load(leased)
        finally:
            await self._release(keys, acquired)
        delta = time.perf_counter() - started
        expires_at = time.time() + ttl
        stored: list[tuple[str, Entry]] = []
        for position, value in zip(leased, loaded, strict=True):
            values[position] = value
            futures[keys[position]].set_result(value)
            entry = Entry(value, expires_at, delta, tuple(tags(position, value)))
            stored.append((keys[position], entry))
        if generation == self.generation:  # no invalidation while we were loading
            for key, entry in stored:
                self._put_l1(key, entry, ttl)
        await self._store_l2(stored, ttl, started_ms)

    async def _leases(self, keys: list[str], positions: list[int]) -> tuple[list[int], list[int]]:
        if self.redis is None:
            return list(positions), []
        redis = self.redis

        async def lease(_budget: float) -> list[Any]:
            async with redis.pipeline(transaction=False) as pipe:
                for position in positions:
                    pipe.set(self.lease_prefix + keys[position], self.origin, nx=True, px=LEASE_MS)
                return list(await pipe.execute())

        try:
            granted = await self.guard(lease)
        except (RedisError, OSError, ServiceUnavailable):
            return list(positions), []
        leased = [p for p, ok in zip(positions, granted, strict=True) if ok]
        elsewhere = [p for p, ok in zip(positions, granted, strict=True) if not ok]
        return leased, elsewhere

    async def _release(self, keys: list[str], positions: list[int]) -> None:
        if self.redis is None or not positions:
            return
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(*(self.lease_prefix + keys[p] for p in positions))

    async def _wait_for_l2(self, keys: list[str], positions: list[int]) -> dict[int, Entry]:
        """Values another process is loading, as they land in L2 (up to LEASE_WAIT_S)."""
        assert self.l2 is not None
        arrived: dict[int, Entry] = {}
        deadline = time.monotonic() + LEASE_WAIT_S
        pending = list(positions)
        delay = 0.005
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            try:
                found = await self.l2.multi_get([keys[p] for p in pending])
            except (RedisError, OSError):
                break
            for position, entry in zip(pending, found, strict=True):
                if entry is not None:
                    arrived[position] = entry
            pending = [p for p in pending if p not in arrived]
        return arrived

    async def _store_l2(self, stored: list[tuple[str, Entry]], ttl: float, started_ms: int) -> None:
        if self.redis is None or not stored:
            return
        kept_ms = int((ttl + self.stale_if_error_s) * 1000)
        arguments: list[Any] = [started_ms - CLOCK_SKEW_MARGIN_MS, kept_ms]
        for _key, entry in stored:
            arguments += [_SERIALIZER.dumps(entry), len(entry.tags)]
            arguments += [self.tag_prefix + tag for tag in entry.tags]
        keys = [self.last_invalidation, *(key for key, _ in stored)]
        try:
            await self.guard(lambda _budget: self._store_script(keys=keys, args=arguments))
        except (RedisError, OSError, ServiceUnavailable) as error:
            logger.warning("L2 write failed: %s", error)

    # -- single values stored by the caller (the whole-operation cache) ----------------------

    def ticket(self) -> LoadTicket:
        """Taken before computing a value: storing it is refused if an invalidation came
        in between (the value may predate the write)."""
        return LoadTicket(self.generation, int(time.time() * 1000), time.perf_counter())

    async def get(self, resource: Resource, key: str) -> Any:
        """The value under `key`, or MISSING."""
        full_key = f"{self.value_prefix}{resource.value}:{key}"
        values: list[Any] = [None]
        missing = self._from_l1(resource, [full_key], values)
        if missing and self.l2 is not None:
            missing = await self._from_l2(resource, [full_key], values, missing)
        return MISSING if missing else values[0]

    async def get_stale(self, resource: Resource, key: str) -> tuple[Any, float]:
        """The value under `key` even past its TTL (within the stale-if-error window), and
        how many seconds past it; (MISSING, 0) when there is none."""
        full_key = f"{self.value_prefix}{resource.value}:{key}"
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
        full_key = f"{self.value_prefix}{resource.value}:{key}"
        entry = Entry(value, time.time() + ttl, time.perf_counter() - ticket.started, tuple(tags))
        if ticket.generation == self.generation:
            self._put_l1(full_key, entry, ttl)
        await self._store_l2([(full_key, entry)], ttl, ticket.started_ms)

    # -- invalidation ----------------------------------------------------------------------

    async def invalidate(
        self, tags: Sequence[str] = (), patterns: Sequence[str] = ()
    ) -> InvalidationCounts:
        """Drops every entry carrying one of `tags` or a tag matching one of `patterns`
        (fnmatch style: `property:*`), here, in Redis, and (via pub/sub) in every process."""
        l1 = self._invalidate_l1(tags, patterns)
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
        tag_keys = [self.tag_prefix + tag for tag in tags]
        for pattern in patterns:
            tag_keys += [
                key.decode() if isinstance(key, bytes) else key
                async for key in self.redis.scan_iter(match=self.tag_prefix + pattern, count=1000)
            ]
        now_ms = int(time.time() * 1000)
        dropped = int(
            await self._invalidate_script(keys=[self.last_invalidation, *tag_keys], args=[now_ms])
        )
        message = {"tags": list(tags), "patterns": list(patterns), "origin": self.origin}
        await self.redis.publish(self.channel, orjson.dumps(message))
        return dropped

    def _invalidate_l1(self, tags: Iterable[str], patterns: Iterable[str]) -> int:
        self.generation += 1
        matched = set(tags)
        for pattern in patterns:
            matched.update(fnmatch.filter(self._l1_tags, pattern))
        keys = {key for tag in matched for key in self._l1_tags.get(tag, ())}
        return self.l1.delete_now(keys)

    def clear_l1(self) -> None:
        self.generation += 1
        self.l1.clear_now()

    def _put_l1(self, key: str, entry: Entry, ttl: float) -> None:
        self.l1.put(key, entry, ttl + self.stale_if_error_s)
        self._forget_tags(key)
        self._l1_key_tags[key] = entry.tags
        for tag in entry.tags:
            self._l1_tags[tag].add(key)

    def _forget_tags(self, key: str) -> None:
        for tag in self._l1_key_tags.pop(key, ()):
            keys = self._l1_tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._l1_tags[tag]

    # -- pub/sub ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="cache-invalidations")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self.redis is not None:
            await self.redis.aclose()

    async def _listen(self) -> None:
        assert self.redis is not None
        delay = 0.05
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    # Messages sent while we were not subscribed are lost: start clean.
                    self.clear_l1()
                    self.subscribed.set()
                    delay = 0.05
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._apply(message["data"])
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

    def _apply(self, data: bytes) -> None:
        message = orjson.loads(data)
        if message.get("origin") == self.origin:
            return  # applied before publishing
        self._invalidate_l1(message.get("tags", ()), message.get("patterns", ()))


def _redis_cache(url: str) -> RedisCache:
    from urllib.parse import parse_qs, urlparse

    parsed = urlparse(url)
    pool_options: dict[str, object] = {"timeout": 1.0}
    tls = parsed.scheme == "rediss"
    if tls:  # redis-py's URL options for TLS (aiocache takes host and port, not a URL)
        options = parse_qs(parsed.query)
        for name in ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile"):
            if options.get(name):
                pool_options[name] = options[name][0]
    return RedisCache(
        serializer=_EntrySerializer(),
        endpoint=parsed.hostname or "127.0.0.1",
        port=parsed.port or 6379,
        db=int((parsed.path or "/0").lstrip("/") or 0),
        password=parsed.password,
        timeout=None,
        create_connection_timeout=1.0,
        # A bounded pool that waits for a free connection: a burst of requests must not open
        # a connection each (Redis refuses past maxclients, and connecting costs more than
        # waiting a moment).
        connection_pool_class=BlockingConnectionPool,
        pool_max_size=REDIS_POOL_SIZE,
        connection_pool_kwargs=pool_options,
        ssl=tls,
    )
