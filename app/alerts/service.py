"""Saved searches, watches and alerts: what the API does on a user's behalf."""

from __future__ import annotations

from app.settings import Settings
from db.engine import Database


class AlertService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
