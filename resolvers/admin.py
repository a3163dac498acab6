"""Cache administration: invalidate, warm, statistics (admin credential required)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import strawberry

from app.cache.report import TierReport, WarmReport
from app.context import Info
from app.errors import ForbiddenError, UserInputError
from schema.ids import expect_global_id

MAX_TAGS = 1000
MAX_TAG_LENGTH = 200


def require_admin(info: Info) -> None:
    if not info.context.is_admin:
        raise ForbiddenError()


@dataclass(frozen=True, slots=True)
class Invalidation:
    tags: list[str]
    patterns: list[str]
    l1_entries: int
    l2_entries: int


@dataclass(frozen=True, slots=True)
class Statistics:
    enabled: bool
    tiers: list[TierReport]


def _check_tags(values: list[str], argument: str) -> list[str]:
    if len(values) > MAX_TAGS:
        raise UserInputError(f"`{argument}` takes at most {MAX_TAGS} entries", argument=argument)
    for value in values:
        if not value or len(value) > MAX_TAG_LENGTH:
            raise UserInputError(
                f"`{argument}` entries must be 1 to {MAX_TAG_LENGTH} characters, got {value!r}",
                argument=argument,
            )
    return values


async def invalidate_cache(
    info: Info, tags: list[str] | None = None, patterns: list[str] | None = None
) -> Invalidation:
    """Drops every cached entry carrying one of `tags` (e.g. `property:42`, `locality:7`,
    `list:properties`) or a tag matching one of `patterns` (`*` wildcards: `property:*`)."""
    require_admin(info)
    tags = _check_tags(tags or [], "tags")
    patterns = _check_tags(patterns or [], "patterns")
    caching = info.context.caching
    if caching is None:
        return Invalidation(tags, patterns, 0, 0)
    counts = await caching.invalidate(tags, patterns)
    return Invalidation(tags, patterns, counts.l1_entries, counts.l2_entries)


async def warm_cache(info: Info, localities: list[strawberry.ID] | None = None) -> object:
    """Loads the given localities (default: the busiest, as at startup) into the cache."""
    require_admin(info)
    caching = info.context.caching
    ids = [expect_global_id(i, "Locality", argument="localities") for i in localities or []]
    if len(ids) > MAX_TAGS:
        raise UserInputError(f"at most {MAX_TAGS} localities", argument="localities")
    if caching is None:
        return WarmReport(localities=0, entries=0)  # caching is off: nothing to warm
    if not ids:
        ids = await caching.busiest_localities(info.context.settings.cache_warm_localities or 20)
    return await caching.warm(ids)


async def cache_stats(info: Info) -> Statistics:
    require_admin(info)
    caching = info.context.caching
    if caching is None:
        return Statistics(enabled=False, tiers=[])
    return Statistics(enabled=True, tiers=await caching.report())


@dataclass(frozen=True, slots=True)
class _Status:
    """Attribute access over a dependency snapshot (the GraphQL types read attributes)."""

    name: str
    breaker: object
    bulkhead: object
    retries: int
    timeouts: int


async def resilience_status(info: Info) -> list[_Status]:
    """Breakers, bulkheads, retries and timeouts of this process's dependencies (admin)."""
    require_admin(info)
    dependencies = getattr(info.context.request.app.state, "dependencies", {})
    statuses = []
    for dependency in dependencies.values():
        snapshot = dependency.snapshot()
        statuses.append(
            _Status(
                name=snapshot["name"],
                breaker=SimpleNamespace(**snapshot["breaker"]),
                bulkhead=SimpleNamespace(**snapshot["bulkhead"]),
                retries=snapshot["retries"],
                timeouts=snapshot["timeouts"],
            )
        )
    return statuses
