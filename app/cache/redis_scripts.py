"""The Lua scripts that change L2: each runs atomically in Redis, so no reader sees an entry
without its tags, and no store lands between an invalidation and its deletes.

Order, not clocks: every invalidation takes the next number of a counter in Redis (the key
`Keyspace.last_invalidation`), and a load reads that counter before it reads its source (in
the round trip that takes its leases: leases.py). Its store is refused when the counter has
moved since (an invalidation came in between: what it read may predate the write), and
accepted otherwise, however soon after a write it runs. (Timestamps compared across hosts
needed a clock-skew margin: every store within 100 ms of any invalidation was refused, and a
process waiting on another's lease for such a value waited its full second.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from app.cache.entry import Entry, EntrySerializer
from app.cache.keys import Keyspace

# KEYS: the invalidation counter, the value keys, then the leases to release. ARGV: the
# counter as the load saw it before reading, ttl (ms), the lease owner, the number of values,
# then per value its encoding, its number of tags and the tags. Returns {stored, counter}.
# A ticket past the counter means Redis lost it (restarted, evicted): refused too.
STORE_SCRIPT = """
local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
local values = tonumber(ARGV[4])
for i = 2 + values, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[3] then redis.call('DEL', KEYS[i]) end
end
if counter ~= tonumber(ARGV[1]) then return {0, counter} end
local ttl = tonumber(ARGV[2])
local a = 5
for i = 2, 1 + values do
  redis.call('SET', KEYS[i], ARGV[a], 'PX', ttl)
  local n = tonumber(ARGV[a + 1])
  for t = 1, n do
    local tag = ARGV[a + 1 + t]
    redis.call('SADD', tag, KEYS[i])
    if redis.call('PTTL', tag) < ttl then redis.call('PEXPIRE', tag, ttl) end
  end
  a = a + 2 + n
end
return {1, counter}
"""

# KEYS: the invalidation counter, then tag sets. Returns {entries dropped, the counter}.
INVALIDATE_SCRIPT = """
local counter = redis.call('INCR', KEYS[1])
local dropped = 0
for i = 2, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  for _, key in ipairs(members) do dropped = dropped + redis.call('DEL', key) end
  redis.call('DEL', KEYS[i])
end
return {dropped, counter}
"""

_SERIALIZER = EntrySerializer()


class RedisScripts:
    """Both scripts registered on one client (redis-py sends each by its SHA, loading it on
    first use)."""

    def __init__(self, redis: Redis) -> None:
        self.store = redis.register_script(STORE_SCRIPT)
        self.invalidate = redis.register_script(INVALIDATE_SCRIPT)


def store_call(
    keys: Keyspace,
    stored: Sequence[tuple[str, Entry]],
    *,
    seen: int,
    kept_ms: int,
    leases: Sequence[str] = (),
    owner: str = "",
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of STORE_SCRIPT for entries a load read after seeing the invalidation
    counter at `seen`; `leases` (held by `owner`) are released in the same call."""
    arguments: list[Any] = [seen, kept_ms, owner, len(stored)]
    for _key, entry in stored:
        arguments += [_SERIALIZER.dumps(entry), len(entry.tags)]
        arguments += [keys.tag(tag) for tag in entry.tags]
    return [keys.last_invalidation, *(key for key, _ in stored), *leases], arguments
