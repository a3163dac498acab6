"""A cached value as both tiers hold it, and its encoding in Redis."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import orjson
from aiocache.serializers import BaseSerializer

from app.cache import codec

XFETCH_BETA = 1.0


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


class EntrySerializer(BaseSerializer):  # type: ignore[misc]  # aiocache is untyped
    """L2's encoding: a JSON array of expiry, load time, tags and the value (app/cache/codec.py),
    never a pickle. L1 holds the Entry objects themselves."""

    DEFAULT_ENCODING = None

    def dumps(self, value: Entry) -> bytes:
        encoded = codec.encode(value.value)
        return orjson.dumps([value.expires_at, value.delta, value.tags, encoded])

    def loads(self, value: bytes | None) -> Entry | None:
        if value is None:
            return None
        expires_at, delta, tags, encoded = orjson.loads(value)
        return Entry(codec.decode(encoded), expires_at, delta, tuple(tags))
