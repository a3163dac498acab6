"""Where a subscription has read up to in its user's alerts, safe against ids that commit out
of order.

Alert ids come from one sequence, taken at INSERT and visible at COMMIT: two matching jobs
running at once may commit alert 11 before alert 10. A reader that jumped to "after 11" would
never see 10. So the cursor reads from a floor held back by `grace_s`: ids delivered in the
last `grace_s` seconds are read again and skipped (they are remembered), and the floor only
moves past an id once it was delivered `grace_s` ago, by which time any lower id still in
flight has committed (an alert transaction is one set-based statement and a few inserts).
"""

from __future__ import annotations

import time
from collections import deque

GRACE_S = 60.0
"""How long an id below the newest delivered may still appear (a slow alert transaction)."""


class AlertCursor:
    __slots__ = ("_delivered", "_floor", "_grace_s", "_recent")

    def __init__(self, after_id: int, *, grace_s: float = GRACE_S) -> None:
        self._floor = after_id
        """Everything at or below it was delivered (or predates the subscription)."""
        self._grace_s = grace_s
        self._recent: deque[tuple[float, int]] = deque()
        """(delivery time, id) of ids above the floor, in delivery order."""
        self._delivered: set[int] = set()

    @property
    def floor(self) -> int:
        """Read alerts with ids above this (then `fresh` drops what was delivered)."""
        self._advance(time.monotonic())
        return self._floor

    def delivered(self, alert_id: int) -> bool:
        """Whether `alert_id` was delivered (or predates the subscription)."""
        return alert_id <= self._floor or alert_id in self._delivered

    def fresh(self, alert_id: int) -> bool:
        """Whether `alert_id` (read above the floor) is new; records it as delivered."""
        if self.delivered(alert_id):
            return False
        self._delivered.add(alert_id)
        self._recent.append((time.monotonic(), alert_id))
        return True

    def _advance(self, now: float) -> None:
        recent = self._recent
        while recent and now - recent[0][0] >= self._grace_s:
            _, alert_id = recent.popleft()
            self._delivered.discard(alert_id)
            # Everything delivered before it is older still; lower ids it skipped over have
            # had the grace period to commit.
            self._floor = max(self._floor, alert_id)
        # Ids below the floor can no longer be fresh: forget them.
        if self._delivered and min(self._delivered) <= self._floor:
            self._delivered = {i for i in self._delivered if i > self._floor}
