"""What workers can run: a handler per job kind, and periodic tasks.

A handler is `async (job: Job) -> RunAgain | None`. Returning None marks the job SUCCEEDED;
returning RunAgain puts it back in the queue for later (not a failure: a webhook delivery
waiting for its next attempt, an endpoint at its concurrency cap); raising marks the attempt
failed, retried with backoff until `max_attempts`, then dead-lettered (status DEAD).
Handlers must be idempotent: a job runs at least once, and again if its worker dies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    """Attempts so far, this one included (1 on the first run)."""
    max_attempts: int


@dataclass(frozen=True, slots=True)
class RunAgain:
    """Not done yet: run this job again at `at` (its attempt is not counted as a failure)."""

    at: datetime


Handler = Callable[[Job], Awaitable[RunAgain | None]]


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    handler: Handler
    lease: timedelta
    """How long a claim holds before another worker may take the job (the running worker
    extends it while the handler runs)."""


@dataclass(frozen=True, slots=True)
class Periodic:
    """A job of `kind` enqueued once per period across every worker; `period_of(now)` names
    the period (e.g. '2026-12-01' for a daily task) and is passed as payload["period"]."""

    name: str
    kind: str
    period_of: Callable[[datetime], str]


@dataclass
class JobRegistry:
    kinds: dict[str, Kind] = field(default_factory=dict)
    periodic: list[Periodic] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run by a worker once it has stopped (handlers' clients and pools)."""

    def register(
        self, name: str, handler: Handler, *, lease: timedelta = timedelta(seconds=60)
    ) -> None:
        if name in self.kinds:
            raise ValueError(f"job kind {name!r} is registered twice")
        self.kinds[name] = Kind(name, handler, lease)

    def every(self, name: str, kind: str, period_of: Callable[[datetime], str]) -> None:
        self.periodic.append(Periodic(name, kind, period_of))

    def on_stop(self, close: Callable[[], Awaitable[None]]) -> None:
        self.closers.append(close)
