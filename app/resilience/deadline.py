"""The request deadline: every nested call (and every retry) fits in what is left of it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("propintel_deadline", default=None)


@contextlib.contextmanager
def deadline_in(seconds: float) -> Iterator[None]:
    """Sets a deadline `seconds` from now (or keeps an earlier one already set)."""
    ends = time.monotonic() + seconds
    current = _deadline.get()
    token = _deadline.set(ends if current is None else min(current, ends))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining(default: float) -> float:
    """Seconds left before the deadline (`default` with none set); never below zero."""
    ends = _deadline.get()
    if ends is None:
        return default
    return max(0.0, ends - time.monotonic())
