"""When a failed delivery is tried again: Svix's schedule, and `Retry-After`."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

RETRY_DELAYS = tuple(
    timedelta(seconds=s) for s in (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
)
"""After the first attempt fails: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h."""
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
LONGEST_DELAY = max(RETRY_DELAYS)
JITTER = 0.1


def retry_delay(attempts_made: int, rng: random.Random | None = None) -> timedelta | None:
    """How long after its `attempts_made`-th failed attempt a delivery is tried again (with
    ±10% jitter, so that an endpoint's failures do not come back in lockstep); None when
    that was the last attempt."""
    if not 1 <= attempts_made <= len(RETRY_DELAYS):
        return None
    base = RETRY_DELAYS[attempts_made - 1]
    factor = 1 + (rng or random).uniform(-JITTER, JITTER)
    return base * factor


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as seconds or an HTTP date (RFC 9110), capped at the schedule's longest
    delay; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    delay: timedelta
    if value.isascii() and value.isdigit():  # ("²".isdigit() is true; int() refuses it)
        # Capped before timedelta, which overflows on a receiver's absurd number.
        delay = timedelta(seconds=min(int(value), LONGEST_DELAY.total_seconds()))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        delay = when - now
    return max(timedelta(0), min(delay, LONGEST_DELAY))
