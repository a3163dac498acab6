"""One load per key across processes: a short Redis lease per key being loaded.

A process that finds a key leased elsewhere polls L2 for the value instead of loading it too,
for up to LEASE_WAIT_S; past that (the holder is slow or gone) it loads the key itself. The
lease expires on its own after LEASE_MS, so a process that dies holding one blocks nobody
for long. Without Redis there is nobody to share with: every key is "acquired".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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

    async def acquire(self, keys: list[str], positions: list[int]) -> tuple[list[int], list[int]]:
        """The positions leased to us, and those leased to another process."""
        if self.redis is None:
            return list(positions), []
        redis = self.redis

        async def lease(_budget: float) -> list[Any]:
            async with redis.pipeline(transaction=False) as pipe:
                for position in positions:
                    pipe.set(self.keys.lease(keys[position]), self.owner, nx=True, px=LEASE_MS)
                return list(await pipe.execute())

        try:
            granted = await self.guard(lease)
        except (RedisError, OSError, ServiceUnavailable):
            # Redis unavailable: load them here (the other processes cannot share either).
            return list(positions), []
        leased = [p for p, ok in zip(positions, granted, strict=True) if ok]
        elsewhere = [p for p, ok in zip(positions, granted, strict=True) if not ok]
        return leased, elsewhere

    async def release(self, keys: list[str], positions: list[int]) -> None:
        if self.redis is None or not positions:
            return
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(*(self.keys.lease(keys[p]) for p in positions))

    async def wait_for_l2(self, keys: list[str], positions: list[int]) -> dict[int, Entry]:
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
