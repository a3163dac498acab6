"""The job queue as the API sees it: enqueue outside a write, and its state (`jobQueue`)."""

from __future__ import annotations

from db.engine import Database


class JobQueue:
    def __init__(self, db: Database) -> None:
        self.db = db
