"""Tells subscribed connections that their user has new alerts.

The alerts table is the truth; a broker message is only a wake-up (which users have new
alerts), so a lost message delays an alert, it never loses one.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.settings import Settings


class AlertBroker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def publish(self, user_ids: Iterable[int]) -> None:
        """Wakes every subscription of these users (in every process). Best effort: never
        raises (a subscriber that misses it catches up by polling)."""
