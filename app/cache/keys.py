"""Where the cache keeps things in Redis.

Every key and the pub/sub channel start with the namespace: deployments (or test runs)
sharing one Redis never see each other's entries or invalidations.
"""

from __future__ import annotations

from app.cache.resources import Resource

VALUE_PREFIX = "c:"  # after the namespace: "<namespace>:c:<resource>:<key>"


class Keyspace:
    def __init__(self, namespace: str) -> None:
        self.values = f"{namespace}:{VALUE_PREFIX}"
        """Prefix of every value key (L1 uses the same keys, so both tiers agree on them)."""
        self.tags = f"{namespace}:t:"
        """Prefix of the tag sets: the keys of the L2 entries carrying each tag."""
        self.leases = f"{namespace}:lease:"
        self.last_invalidation = f"{namespace}:last-invalidation-ms"
        self.channel = f"{namespace}:invalidations"

    def value(self, resource: Resource, key: str) -> str:
        return f"{self.values}{resource.value}:{key}"

    def tag(self, tag: str) -> str:
        return self.tags + tag

    def lease(self, value_key: str) -> str:
        return self.leases + value_key
