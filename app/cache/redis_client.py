"""L2's connection: aiocache's Redis backend, configured from a redis:// or rediss:// URL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from aiocache import RedisCache
from redis.asyncio import BlockingConnectionPool

from app.cache.entry import EntrySerializer

REDIS_POOL_SIZE = 32


def redis_cache(url: str) -> RedisCache:
    parsed = urlparse(url)
    pool_options: dict[str, object] = {"timeout": 1.0}
    tls = parsed.scheme == "rediss"
    if tls:  # redis-py's URL options for TLS (aiocache takes host and port, not a URL)
        options = parse_qs(parsed.query)
        for name in ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile"):
            if options.get(name):
                pool_options[name] = options[name][0]
    return RedisCache(
        serializer=EntrySerializer(),
        endpoint=parsed.hostname or "127.0.0.1",
        port=parsed.port or 6379,
        db=int((parsed.path or "/0").lstrip("/") or 0),
        password=parsed.password,
        timeout=None,
        create_connection_timeout=1.0,
        # A bounded pool that waits for a free connection: a burst of requests must not open
        # a connection each (Redis refuses past maxclients, and connecting costs more than
        # waiting a moment).
        connection_pool_class=BlockingConnectionPool,
        pool_max_size=REDIS_POOL_SIZE,
        connection_pool_kwargs=pool_options,
        ssl=tls,
    )
