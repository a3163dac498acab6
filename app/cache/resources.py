"""Resource types of cached values (their TTLs are settings: app/settings/cache.py)."""

from __future__ import annotations

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
    ESTIMATE = "estimate"
    """Price estimates (keyed by property, model version and date)."""
    OPERATION = "operation"
    """Whole-operation responses (stored for the shortest TTL of what they contain)."""
