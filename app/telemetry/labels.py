"""Metric children by label tuple, for counters on the request path."""

from __future__ import annotations

from typing import Any


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
