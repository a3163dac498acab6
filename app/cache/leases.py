"""One load per key across processes: a short Redis lease per key being loaded.

A process that finds a key leased elsewhere polls L2 and the lease, every few milliseconds,
instead of loading the key too: it takes the value as soon as it lands, and loads the key
itself as soon as the lease is gone without one (the holder's store was refused: it overlapped
an invalidation) or after LEASE_WAIT_S (the holder is slow or gone). The holder releases its
leases in the script that stores the values (redis_scripts.py), so a waiter never sees a
released lease before the value. A lease expires on its own after LEASE_MS, so a process that
dies holding one blocks nobody for long. Without Redis there is nobody to share with: every
key is "acquired".

The round trip that takes the leases also reads Redis's invalidation counter: the ticket of
the load that follows (invalidation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from aiocache import RedisCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.entry import Entry
from app.cache.keys import Keyspace
from app.resilience.dependency import ServiceUnavailable
from db.engine import Guard

LEASE_MS = 3000
LEASE_WAIT_S = 1.0
POLL_FIRST_S = 0.001
POLL_MAX_S = 0.008
"""A waiter polls after 1, 2, 4, then every 8 ms: one MGET each, and a wait that ends within
a few milliseconds of the holder's store."""


@dataclass(slots=True)
class LeaseCounters:
    """What waiting on other processes' leases came to (tests and statistics)."""

    waits: int = 0
    """Keys this process found leased elsewhere and waited for."""
    arrived: int = 0
    """... whose value landed in L2 while it waited."""
    released: int = 0
    """... whose lease was released without a value (so it loaded them at once)."""
    timeouts: int = 0
    """... still leased after LEASE_WAIT_S (so it loaded them)."""


@dataclass(frozen=True, slots=True)
class Acquired:
    leased: list[int]
    """Positions leased to us."""
    elsewhere: list[int]
    """Positions leased to another process."""
    counter: int | None
    """Redis's invalidation counter before the load (None: unknown, Redis unavailable)."""


class Leases:
    def __init__(
        self,
        *,
        redis: Redis | None,
        l2: RedisCache | None,
        keys: Keyspace,
        owner: str,
        guard: Guard,
    ) -> None:
        self.redis = redis
        self.l2 = l2
        self.keys = keys
        self.owner = owner
        self.guard = guard
        self.counters = LeaseCounters()

    async def acquire(self, keys: list[str], positions: list[int]) -> Acquired:
        """Leases for these positions where nobody holds one, and the invalidation counter."""
        if self.redis is None:
            return Acquired(list(positions), [], None)
        redis = self.redis

        async def lease(_budget: float) -> list[Any]:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.get(self.keys.last_invalidation)
                for position in positions:
                    pipe.set(self.keys.lease(keys[position]), self.owner, nx=True, px=LEASE_MS)
                return list(await pipe.execute())

        try:
            counter, *granted = await self.guard(lease)
        except (RedisError, OSError, ServiceUnavailable):
            # Redis unavailable: load them here (the other processes cannot share either).
            return Acquired(list(positions), [], None)
        leased = [p for p, ok in zip(positions, granted, strict=True) if ok]
        elsewhere = [p for p, ok in zip(positions, granted, strict=True) if not ok]
        return Acquired(leased, elsewhere, int(counter or 0))

    def lease_keys(self, keys: list[str], positions: list[int]) -> list[str]:
        return [self.keys.lease(keys[p]) for p in positions]

    async def release(self, keys: list[str], positions: list[int]) -> None:
        """When no store releases them (the load failed, or the store did)."""
        if self.redis is None or not positions:
            return
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(*self.lease_keys(keys, positions))

    async def wait_for_l2(self, keys: list[str], positions: list[int]) -> dict[int, Entry]:
        """Values another process is loading, as they land in L2; the positions missing from
        the answer are for the caller to load (their lease is gone, or LEASE_WAIT_S passed)."""
        assert self.redis is not None
        assert self.l2 is not None
        redis, serializer = self.redis, self.l2.serializer
        self.counters.waits += len(positions)
        arrived: dict[int, Entry] = {}
        deadline = time.monotonic() + LEASE_WAIT_S
        pending = list(positions)
        delay = POLL_FIRST_S
        while pending:
            if time.monotonic() >= deadline:
                self.counters.timeouts += len(pending)
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)
            try:
                # Leases first: the store script sets the values and drops the leases at
                # once, so a lease seen gone here means its value (if any) is visible next.
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.mget(self.lease_keys(keys, pending))
                    pipe.mget([keys[p] for p in pending])
                    holders, found = await pipe.execute()
            except (RedisError, OSError):
                break
            gone: list[int] = []
            for position, raw, holder in zip(pending, found, holders, strict=True):
                if raw is not None:
                    arrived[position] = serializer.loads(raw)
                elif holder is None:
                    gone.append(position)  # done without storing (refused), or expired
            self.counters.released += len(gone)
            pending = [p for p in pending if p not in arrived and p not in gone]
        self.counters.arrived += len(arrived)
        return arrived
