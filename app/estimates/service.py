"""The active price model of this process (ModelRegistry).

The registry table says which model is active; each process keeps that model in memory and
checks the table every `PROPINTEL_MODEL_POLL_S` seconds in the background (never on a
request's path), so an activation reaches every process within that time and the process
that activated at once. Loading an artifact (decompress, unpickle) runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from app.ml import Estimate, PriceModel, Subject
from app.resilience.bulkhead import Bulkhead, Preset
from app.telemetry import metrics
from db.engine import Database
from db.records import PropertyRecord
from db.repositories import price_models as repo
from db.repositories.price_models import ModelRecord

logger = logging.getLogger("propintel.estimates")


def subject_of(record: PropertyRecord, history: Sequence[tuple[date, int]]) -> Subject:
    """A stored property as the model sees it: its record and its market sales (contract
    date, price) before the estimate's date, oldest first. `Property.estimate`
    (loaders/estimates.py) and the estimate watches (app/estimates/watches.py) both build
    their subjects here, so a watch's estimate is the one the API answers."""
    return Subject(
        locality_id=record.locality_id,
        locality_name="",
        postcode=record.postcode,
        district_code=record.district_code,
        latitude=record.latitude,
        longitude=record.longitude,
        is_strata=record.is_strata,
        area_m2=record.area_m2,
        zoning=record.zoning,
        nature=record.nature,
        primary_purpose=record.primary_purpose,
        street_name=record.street_name,
        previous_sales=tuple(history),
        house_number=record.house_number,
    )


@dataclass(frozen=True, slots=True)
class ActiveModel:
    record: ModelRecord
    model: PriceModel

    @property
    def version(self) -> int:
        return self.record.version


class ModelRegistry:
    def __init__(self, db: Database, *, poll_s: float) -> None:
        self.db = db
        self.poll_s = poll_s
        self.active: ActiveModel | None = None
        self.bulkhead = Bulkhead("ml", Preset.ML_OPERATIONS.value)
        self.predict_calls = 0
        """Model calls made by this process (tests check a page costs one)."""
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # propintel_model_predictions_total, per estimate asked for (a page's batch is one
        # model call and as many estimates).
        self._predicted = metrics.model_predictions.labels("ok")
        self._unavailable = metrics.model_predictions.labels("unavailable")

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception:  # the API serves without estimates until the model can be read
            logger.warning("price model not loaded at startup", exc_info=True)
        self._task = asyncio.create_task(self._poll(), name="price-model-poll")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> ActiveModel | None:
        """Loads the active model if it changed since the last look."""
        async with self._lock:
            version = await repo.active_version(self.db)
            if version is None:
                self.active = None
            elif self.active is None or self.active.version != version:
                found = await repo.artifact(self.db, version)
                if found is not None:
                    record, data, digest = found
                    model = await asyncio.to_thread(PriceModel.from_bytes, data, sha256=digest)
                    self.active = ActiveModel(record, model)
                    logger.info("price model %d active", version)
            return self.active

    async def predict(self, subjects: Sequence[Subject], as_of: date) -> list[Estimate]:
        """One model call for the whole batch, off the event loop, behind ML_OPERATIONS."""
        active = self.active
        try:
            if active is None:
                raise LookupError("no active model")
            async with self.bulkhead:
                self.predict_calls += 1
                estimates = await asyncio.to_thread(active.model.predict, subjects, as_of)
        except Exception:  # no model, the bulkhead full, the model failing
            self.count_unavailable(len(subjects))
            raise
        self._predicted.inc(len(estimates))
        return estimates

    def count_unavailable(self, estimates: int) -> None:
        """Estimates asked for and not given (propintel_model_predictions_total
        {outcome="unavailable"}): here, and where a request is refused for want of a model
        before it reaches `predict` (resolvers/estimates.py `active_model`)."""
        self._unavailable.inc(estimates)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.refresh()
            except Exception as error:  # the database may be away; the current model stays
                logger.debug("price model poll failed: %r", error)
