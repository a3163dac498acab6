"""Moving-window rate limits per client (user, API key, or address when anonymous).

The windows live in Redis when there is one, so every process of the service counts against
the same budget; in memory on the embedded default. When Redis fails, each process counts in
its own memory until it is back (a client may then get up to N-processes times its budget for
that while: better than refusing everyone or letting everyone through).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from app.auth.principal import Principal
from app.resilience.dependency import Dependency
from app.settings import Settings
from app.settings.query_limits import RoleName


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: str
    retry_after_s: int

    @property
    def message(self) -> str:
        return f"Rate limit of {self.limit} exceeded; retry in {self.retry_after_s} s."


def _describe(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    per = f"{item.multiples} {unit}s" if item.multiples > 1 else unit
    return f"{item.amount} per {per}"


class RateLimiter:
    def __init__(self, settings: Settings, redis: Dependency | None = None) -> None:
        self.limits: dict[RoleName, list[RateLimitItem]] = {
            "anonymous": parse_many(settings.rate_limit_anonymous),
            "user": parse_many(settings.rate_limit_user),
            "admin": parse_many(settings.rate_limit_admin),
        }
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        self._redis = redis
        if settings.redis_url is not None:
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=f"{settings.cache_namespace}:ratelimit",
                wrap_exceptions=True,
                socket_timeout=settings.redis_timeout_s,
                socket_connect_timeout=settings.redis_timeout_s,
            )
            self._shared = MovingWindowRateLimiter(storage)

    async def check(self, principal: Principal) -> Refusal | None:
        """Counts this request; a Refusal when it is over one of the role's limits."""
        for item in self.limits[principal.role_name]:
            limiter = await self._hit(item, principal.client)
            if limiter is not None:
                return Refusal(_describe(item), await _retry_after(limiter, item, principal.client))
        return None

    async def _hit(self, item: RateLimitItem, client: str) -> MovingWindowRateLimiter | None:
        """None when the hit fits in the window, else the limiter that refused it."""
        if self._shared is not None and self._redis is not None:
            shared = self._shared
            try:
                allowed = await self._redis.call(lambda _budget: shared.hit(item, client))
            except Exception:  # Redis trouble: count locally until it is back
                pass
            else:
                return None if allowed else shared
        return None if await self._local.hit(item, client) else self._local


async def _retry_after(limiter: MovingWindowRateLimiter, item: RateLimitItem, client: str) -> int:
    try:
        stats = await limiter.get_window_stats(item, client)
        return max(1, math.ceil(stats.reset_time - time.time()))
    except Exception:  # the whole window is a safe upper bound
        return item.get_expiry()
