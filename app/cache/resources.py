"""Resource types of cached values and their TTLs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Resource(StrEnum):
    LIST = "list"
    """Search and list results (pages of properties or localities)."""
    PROPERTY = "property"
    """Property details."""
    HISTORY = "history"
    """Price histories (pages of sales) and single sales."""
    STATS = "stats"
    """Locality statistics (aggregates)."""
    STATIC = "static"
    """Localities: names, postcodes, coordinates."""
    TRENDING = "trending"
    """Trending and popular lists."""
    ESTIMATE = "estimate"
    """Price estimates (keyed by property, model version and date)."""
    OPERATION = "operation"
    """Whole-operation responses (stored for the shortest TTL of what they contain)."""


@dataclass(frozen=True, slots=True)
class Ttls:
    """Seconds per resource type."""

    list: float = 300
    property: float = 3600
    history: float = 3600
    stats: float = 3600
    static: float = 7 * 24 * 3600
    trending: float = 600
    estimate: float = 3600
    operation: float = 300

    def of(self, resource: Resource) -> float:
        return float(getattr(self, resource.value))
