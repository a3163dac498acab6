"""L1: aiocache's memory backend, bounded by entries with LRU eviction.

aiocache's `SimpleMemoryBackend` is a plain dict with one event-loop timer per key for TTLs:
unbounded, and a timer per entry. This backend keeps aiocache's API (namespaces, plugins,
multi_get/multi_set) over an OrderedDict in recency order with expiry times checked on read,
evicting the least recently used entry past `max_entries`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from aiocache.backends.memory import SimpleMemoryBackend
from aiocache.serializers import NullSerializer

from app.telemetry import metrics


class BoundedMemoryCache(SimpleMemoryBackend):  # type: ignore[misc]  # aiocache is untyped
    NAME = "bounded-memory"

    def __init__(
        self,
        *,
        max_entries: int,
        on_drop: Callable[[str], None] = lambda _key: None,
        **kwargs: Any,
    ) -> None:
        # timeout=None: aiocache would otherwise wrap every call in asyncio.wait_for.
        super().__init__(serializer=NullSerializer(), timeout=None, **kwargs)
        self.max_entries = max_entries
        self.evictions = 0
        self.on_drop = on_drop
        """Called with each key that leaves the cache (evicted, expired, deleted)."""
        self._entries: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        # Metric children resolved once (propintel_cache_entries, _cache_evictions_total).
        self._entries_gauge = metrics.cache_entries.labels("l1")
        self._evicted = metrics.cache_evictions.labels("capacity")
        self._invalidated = metrics.cache_evictions.labels("invalidation")
        self._flushed = metrics.cache_evictions.labels("flush")
        self._entries_gauge.set(0)
        self._entries_write_on: asyncio.AbstractEventLoop | None = None
        """The loop a gauge write is pending on (None: none pending)."""

    def __len__(self) -> int:
        return len(self._entries)

    def _lookup(self, key: str, now: float) -> Any:
        found = self._entries.get(key)
        if found is None:
            return None
        value, expires_at = found
        if expires_at <= now:
            del self._entries[key]
            self.on_drop(key)
            self._entries_changed()
            return None
        self._entries.move_to_end(key)
        return value

    async def _get(self, key: str, encoding: str = "utf-8", _conn: Any = None) -> Any:
        return self._lookup(key, time.monotonic())

    async def _multi_get(
        self, keys: Iterable[str], encoding: str = "utf-8", _conn: Any = None
    ) -> list[Any]:
        now = time.monotonic()
        return [self._lookup(key, now) for key in keys]

    def _store(self, key: str, value: Any, ttl: float | None, now: float) -> None:
        expires_at = now + ttl if ttl else float("inf")
        self._entries[key] = (value, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            evicted, _ = self._entries.popitem(last=False)
            self.evictions += 1
            self._evicted.inc()
            self.on_drop(evicted)
        self._entries_changed()

    def _entries_changed(self) -> None:
        """propintel_cache_entries, written once per turn of the event loop that changed
        the entries: a page stores dozens of keys in one go and each gauge write costs
        ~2 us in multiprocess mode, but the value a scrape reads is never older than the
        request that changed it. (An earlier "at most once a second" skipped the writes
        inside the second and could leave the gauge at 0 for good after an invalidation.)
        Reads that only hit write nothing."""
        pending = self._entries_write_on
        if pending is not None and not pending.is_closed():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to come back on: write now
            self._write_entries()
            return
        self._entries_write_on = loop
        loop.call_soon(self._write_entries)

    def _write_entries(self) -> None:
        self._entries_write_on = None
        self._entries_gauge.set(len(self._entries))

    async def _set(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        self._store(key, value, ttl, time.monotonic())
        return True

    async def _multi_set(
        self, pairs: Iterable[tuple[str, Any]], ttl: float | None = None, _conn: Any = None
    ) -> bool:
        now = time.monotonic()
        for key, value in pairs:
            self._store(key, value, ttl, now)
        return True

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return self._lookup(key, time.monotonic()) is not None

    async def _delete(self, key: str, _conn: Any = None) -> int:
        return self.delete_now([key])

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        if namespace:
            self.delete_now([k for k in self._entries if k.startswith(namespace)])
        else:
            self.clear_now()
        return True

    # Synchronous forms for the hot path and for invalidation messages (aiocache's async
    # wrappers cost more than the dictionary work; no await between check and use).

    def peek_many(self, keys: Iterable[str]) -> list[Any]:
        now = time.monotonic()
        return [self._lookup(key, now) for key in keys]

    def put(self, key: str, value: Any, ttl: float | None) -> None:
        self._store(key, value, ttl, time.monotonic())

    def delete_now(self, keys: Iterable[str]) -> int:
        dropped = 0
        for key in keys:
            if self._entries.pop(key, None) is not None:
                dropped += 1
                self.on_drop(key)
        if dropped:
            self._invalidated.inc(dropped)
            self._entries_changed()
        return dropped

    def clear_now(self) -> None:
        for key in list(self._entries):
            self.on_drop(key)
        if self._entries:
            self._flushed.inc(len(self._entries))
        self._entries.clear()
        self._entries_changed()

    def entry_counts(self, prefix: str) -> dict[str, int]:
        """Live entries per the key segment after `prefix` (the resource type)."""
        counts: dict[str, int] = {}
        now = time.monotonic()
        for key, (_value, expires_at) in self._entries.items():
            if expires_at > now and key.startswith(prefix):
                segment = key[len(prefix) :].split(":", 1)[0]
                counts[segment] = counts.get(segment, 0) + 1
        return counts
