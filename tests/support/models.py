"""A small price model for the tests that need estimates: trained on the slice in seconds."""

from __future__ import annotations

import asyncio

from app.estimates.tasks import store, train_artifact
from db.engine import Database, create_engine
from db.repositories.price_models import ModelRecord
from tests.support.settings import settings_for

FAST_TRAINING = {"max_iter": 60}
"""Few boosting rounds: the tests check wiring and batching, not accuracy."""


def train_and_activate(url: str) -> ModelRecord:
    """Trains a model on the data at `url`, stores it in that database's registry, active."""
    database_url = settings_for(url).database_url
    trained = train_artifact(database_url, FAST_TRAINING)

    async def register() -> ModelRecord:
        db = Database(create_engine(database_url))
        try:
            return await store(db, trained, activate=True)
        finally:
            await db.dispose()

    return asyncio.run(register())
