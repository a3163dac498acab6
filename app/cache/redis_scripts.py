"""The Lua scripts that change L2: each runs atomically in Redis, so no reader sees an entry
without its tags, and no store lands between an invalidation's timestamp and its deletes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from app.cache.entry import Entry, EntrySerializer
from app.cache.keys import Keyspace

CLOCK_SKEW_MARGIN_MS = 100  # hosts of one deployment keep NTP time well within this

# KEYS: LAST_INVALIDATION, then the value keys. ARGV: load start (ms), ttl (ms), then per key
# its encoded value, its number of tags and the tags.
STORE_SCRIPT = """
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
INVALIDATE_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1])
local dropped = 0
for i = 2, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  for _, key in ipairs(members) do dropped = dropped + redis.call('DEL', key) end
  redis.call('DEL', KEYS[i])
end
return dropped
"""

_SERIALIZER = EntrySerializer()


class RedisScripts:
    """Both scripts registered on one client (redis-py sends each by its SHA, loading it on
    first use)."""

    def __init__(self, redis: Redis) -> None:
        self.store = redis.register_script(STORE_SCRIPT)
        self.invalidate = redis.register_script(INVALIDATE_SCRIPT)


def store_call(
    keys: Keyspace, stored: Sequence[tuple[str, Entry]], *, started_ms: int, kept_ms: int
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of STORE_SCRIPT for entries a load that started at `started_ms` read.

    The script refuses them when Redis recorded an invalidation after the load started: the
    load may predate the write. The margin covers clock skew between the hosts that stamp
    the two times."""
    arguments: list[Any] = [started_ms - CLOCK_SKEW_MARGIN_MS, kept_ms]
    for _key, entry in stored:
        arguments += [_SERIALIZER.dumps(entry), len(entry.tags)]
        arguments += [keys.tag(tag) for tag in entry.tags]
    return [keys.last_invalidation, *(key for key, _ in stored)], arguments
