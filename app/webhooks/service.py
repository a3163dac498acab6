"""Webhook endpoints and their deliveries: what the API does on a user's behalf."""

from __future__ import annotations

from app.settings import Settings
from db.engine import Database


class WebhookService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
