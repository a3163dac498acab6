"""Retry policies (stamina: exponential backoff with jitter) for transient errors only."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import asyncpg
import redis.exceptions


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int
    wait_initial_s: float
    wait_max_s: float
    wait_jitter_s: float


class Retry(Enum):
    NONE = RetryPolicy(attempts=1, wait_initial_s=0, wait_max_s=0, wait_jitter_s=0)
    FAST = RetryPolicy(attempts=2, wait_initial_s=0.01, wait_max_s=0.05, wait_jitter_s=0.01)
    STANDARD = RetryPolicy(attempts=3, wait_initial_s=0.05, wait_max_s=0.5, wait_jitter_s=0.05)
    AGGRESSIVE = RetryPolicy(attempts=5, wait_initial_s=0.1, wait_max_s=2.0, wait_jitter_s=0.1)


TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,  # resets, refused connections
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection was closed in the middle of operation"
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def is_transient(error: BaseException) -> bool:
    """Worth another attempt: the same call may well succeed in a moment. Timeouts of our
    own are not retried (the deadline is what they protect)."""
    return isinstance(error, TRANSIENT)
