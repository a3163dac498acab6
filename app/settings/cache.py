"""Cache settings that are more than one value: the TTL of each resource type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ttls:
    """Seconds per resource type (`app.cache.resources.Resource`, whose values name these)."""

    list: float = 300
    property: float = 3600
    history: float = 3600
    stats: float = 3600
    static: float = 7 * 24 * 3600
    estimate: float = 3600
    operation: float = 300

    def of(self, resource: str) -> float:
        return float(getattr(self, resource))
