"""Bulkhead: at most `max_concurrent` calls at once, at most `max_waiting` callers waiting
for a slot, each for at most `max_wait_s`. A full bulkhead refuses at once (`BulkheadFull`),
so a slow dependency costs a bounded number of stuck requests, not all of them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn

from app.telemetry.labels import BatchedValue

if TYPE_CHECKING:
    from prometheus_client.metrics import Counter


class BulkheadFull(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"bulkhead {name} is full")
        self.name = name


@dataclass(frozen=True, slots=True)
class BulkheadConfig:
    max_concurrent: int
    max_waiting: int
    max_wait_s: float

    def __post_init__(self) -> None:
        if self.max_concurrent < 1 or self.max_waiting < 0 or self.max_wait_s < 0:
            raise ValueError("bulkhead: max_concurrent >= 1, max_waiting >= 0, max_wait_s >= 0")


class Preset(Enum):
    """Sizes by the kind of work behind the bulkhead."""

    NORMAL = BulkheadConfig(max_concurrent=50, max_waiting=100, max_wait_s=0.5)
    ML_OPERATIONS = BulkheadConfig(max_concurrent=2, max_waiting=16, max_wait_s=2.0)


class Bulkhead:
    def __init__(self, name: str, config: BulkheadConfig) -> None:
        self.name = name
        self.config = config
        self.active = 0
        self.waiting = 0
        self.rejected = 0
        self._slots = asyncio.Semaphore(config.max_concurrent)
        self._active_gauge, self._rejected_counter = _instruments(name)

    async def __aenter__(self) -> None:
        if not self._slots.locked():  # the usual case: a free slot, no suspension
            await self._slots.acquire()
            self.active += 1
            self._active_gauge.inc()
            return
        if self.waiting >= self.config.max_waiting or self.config.max_wait_s == 0:
            self._reject()
        self.waiting += 1
        try:
            async with asyncio.timeout(self.config.max_wait_s):
                await self._slots.acquire()
        except TimeoutError:
            self._reject()
        finally:
            self.waiting -= 1
        self.active += 1
        self._active_gauge.inc()

    def _reject(self) -> NoReturn:
        self.rejected += 1
        self._rejected_counter.inc()
        raise BulkheadFull(self.name) from None

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.active -= 1
        self._active_gauge.dec()
        self._slots.release()

    def snapshot(self) -> dict[str, object]:
        return {
            "name": self.name,
            "active": self.active,
            "waiting": self.waiting,
            "max_concurrent": self.config.max_concurrent,
            "rejected": self.rejected,
        }


def _instruments(name: str) -> tuple[BatchedValue, Counter]:
    # Imported here, not at the top: app.cli imports this module (through the settings)
    # before `propintel serve` sets the metrics directory (app/telemetry/multiprocess.py).
    from app.telemetry import metrics

    # `active` moves twice per call: added up and written in batches (app/telemetry/labels.py).
    return BatchedValue(metrics.bulkhead_active.labels(name)), metrics.bulkhead_rejected.labels(
        name
    )
