"""Metric updates on the request path: children by label tuple, and updates added up in
plain dicts and written to their families in batches.

prometheus-client does real work per update (a lock, method calls; in multiprocess mode a
write to a memory-mapped file, ~2 µs). Counting a request is a dict update here; `Tally`
writes the sums to the families within `FLUSH_WITHIN_S` (a timer on the running loop), when
/metrics is asked for (app/http/observe.py), and when the app stops. A scrape may thus miss
the last fraction of a second of another worker's requests, never more.
"""

from __future__ import annotations

import asyncio
from asyncio import _get_running_loop
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Protocol

FLUSH_WITHIN_S = 0.25


class Children:
    """A metric family's children by label tuple. `family.labels(...)` takes a lock and
    builds its key on every call; this is one dict lookup after the first. Only for label
    tuples bounded by construction (the catalogue's rule: app/telemetry/metrics.py)."""

    __slots__ = ("_family", "_known")

    def __init__(self, family: Any) -> None:
        self._family = family
        self._known: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._known.get(labels)
        if child is None:
            child = self._known[labels] = self._family.labels(*labels)
        return child


class Flushable(Protocol):
    def flush(self) -> None: ...


class Tally:
    """Pending updates of every batched family of the process. Updates only add up;
    whoever makes them calls `due()` once in a while (the HTTP edge: once per request,
    after the gate's and its own)."""

    def __init__(self) -> None:
        self.batched: list[Flushable] = []
        self._timer_on: asyncio.AbstractEventLoop | None = None

    def due(self) -> None:
        """An update is pending: make sure a flush comes. Called for every update made
        outside a request and once per request by the edge: one C call and a comparison
        when a flush is already set on this loop."""
        loop = _get_running_loop()
        if loop is self._timer_on:
            if loop is None:  # no loop to come back on: write now
                self.flush()
            return
        # A new loop (or none set yet): the timer of a loop that closed died with it.
        self._timer_on = loop
        if loop is None:
            self.flush()
        else:
            loop.call_later(FLUSH_WITHIN_S, self.flush)

    def flush(self) -> None:
        self._timer_on = None
        for batched in self.batched:
            batched.flush()


TALLY = Tally()


class BatchedCounter:
    __slots__ = ("_children", "_pending", "_tally")

    def __init__(self, family: Any, tally: Tally = TALLY) -> None:
        self._children = Children(family)
        self._pending: dict[tuple[str, ...], float] = {}
        self._tally = tally
        tally.batched.append(self)

    def inc(self, *labels: str) -> None:
        """One more, written with the next flush: the caller calls `due()` (the HTTP edge
        does, once per request, for everything counted while the request ran)."""
        pending = self._pending
        pending[labels] = pending.get(labels, 0) + 1

    def add(self, amount: float, *labels: str) -> None:
        """`amount` more, and a flush is due: for counts made anywhere (the cache, the
        executor), in or out of a request. Only the first update after a flush asks for
        one: while anything is pending, a flush is already set (`Tally.due`)."""
        pending = self._pending
        if not pending:
            self._tally.due()
        pending[labels] = pending.get(labels, 0) + amount

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for labels, count in pending.items():
            self._children(*labels).inc(count)


RequestLabeller = Callable[
    [str, int, str | None, str | None, str | None],
    tuple[str, str, str | None, str | None, str | None],
]
"""(path, status, operation type, operation name, outcome) -> the labels `RequestTally`
writes: (route, status class, operation type, operation, outcome), bounded."""


class RequestTally:
    """Every request's counts and duration as one dict update (the HTTP edge's, inline): the
    key is what the request was, raw — (labeller, path, status, operation type, operation
    name, outcome) — and the value the durations seen, in microseconds. The flush labels the
    keys (bounded: a route or `other`, a status class, an allow-listed operation name...) and
    writes `http_requests`, `graphql_requests` and the duration histogram's buckets: per
    request one tuple and one dict update, not three method calls, a bisect and a division.
    The raw keys of one flush interval are at most its requests."""

    __slots__ = ("_bounds", "_duration", "_graphql", "_http", "pending")

    def __init__(self, http: Any, graphql: Any, duration: Any, tally: Tally = TALLY) -> None:
        self._http = Children(http)
        self._graphql = Children(graphql)
        self._duration = Children(duration)
        self._bounds: list[float] = list(duration._upper_bounds)
        self.pending: dict[
            tuple[RequestLabeller, str, int, str | None, str | None, str | None], list[int]
        ] = {}
        """Written by the edge; whoever makes it non-empty calls `Tally.due()`."""
        tally.batched.append(self)

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        labelled: dict[tuple[str, str, str | None, str | None, str | None], list[int]] = {}
        for (labeller, path, status, kind, name, outcome), durations in pending.items():
            labelled.setdefault(labeller(path, status, kind, name, outcome), []).extend(durations)
        bounds = self._bounds
        for (route, status_class, kind, operation, outcome), durations in labelled.items():
            self._http(route, status_class).inc(len(durations))
            if outcome is None or kind is None or operation is None:
                continue  # not a GraphQL request (the labeller sets all three or none)
            self._graphql(kind, operation, outcome).inc(len(durations))
            seconds = [micros / 1e6 for micros in durations]
            counts = [0] * len(bounds)
            for value in seconds:  # prometheus-client's rule: the first bound >= the value
                counts[bisect_left(bounds, value)] += 1
            child = self._duration(kind, operation)
            child._sum.inc(sum(seconds))
            for bucket, count in zip(child._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)


class BatchedHistogram:
    """Observations kept per label tuple and bucketed at the flush (prometheus-client's rule:
    the first upper bound at least the value), written as one increment per bucket and one
    to the sum: per observation one dict lookup and an append."""

    __slots__ = ("_bounds", "_children", "_pending")

    def __init__(self, family: Any, tally: Tally = TALLY) -> None:
        self._children = Children(family)
        self._bounds: list[float] = list(family._upper_bounds)
        self._pending: dict[tuple[str, ...], list[float]] = {}
        tally.batched.append(self)

    def observe(self, value: float, *labels: str) -> None:
        values = self._pending.get(labels)
        if values is None:
            self._pending[labels] = [value]
        else:
            values.append(value)

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        bounds = self._bounds
        for labels, values in pending.items():
            counts = [0] * len(bounds)
            for value in values:
                counts[bisect_left(bounds, value)] += 1
            child = self._children(*labels)
            # The child's own values (prometheus-client 0.26: `_sum`, `_buckets`): what
            # `observe` increments, here once per bucket instead of once per value.
            child._sum.inc(sum(values))
            for bucket, count in zip(child._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)


class BatchedValue:
    """One counter's or gauge's child, its updates added up and written within
    `FLUSH_WITHIN_S` (and before a scrape): the same `inc`/`dec` as the child. For the
    database path (every statement counts a call, its duration, the bulkhead and the pool:
    ~8 file writes in multiprocess mode, 6-7% of an uncached request's CPU). A gauge
    written this way lags by the flush interval, and a call that enters and leaves between
    two flushes writes nothing at all."""

    __slots__ = ("_child", "_pending", "_tally")

    def __init__(self, child: Any, tally: Tally = TALLY) -> None:
        self._child = child
        self._pending = 0.0
        self._tally = tally
        tally.batched.append(self)

    def inc(self, amount: float = 1.0) -> None:
        self._pending += amount
        self._tally.due()

    def dec(self, amount: float = 1.0) -> None:  # gauges only
        self._pending -= amount
        self._tally.due()

    def flush(self) -> None:
        pending, self._pending = self._pending, 0.0
        if pending:
            self._child.inc(pending)


class BatchedObservations:
    """One histogram child's observations added up per bucket (see BatchedHistogram)."""

    __slots__ = ("_bounds", "_child", "_counts", "_sum", "_tally")

    def __init__(self, child: Any, tally: Tally = TALLY) -> None:
        self._child = child
        self._bounds: list[float] = list(child._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._tally = tally
        tally.batched.append(self)

    def observe(self, value: float) -> None:
        self._sum += value
        self._counts[bisect_left(self._bounds, value)] += 1
        self._tally.due()

    def flush(self) -> None:
        counts, self._counts = self._counts, [0] * len(self._bounds)
        if not any(counts):
            return
        total, self._sum = self._sum, 0.0
        child = self._child
        child._sum.inc(total)
        for bucket, count in zip(child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
