"""ESTIMATE_CHANGED alerts: a watched property's estimate moved past its watch's threshold.

Two jobs (registered by `register`):

- `estimates.check {"property_ids": [...]}`, enqueued by the alerts pipeline when watched
  properties sell: the estimate of each property as of today, with the active model.
- `estimates.model-activation`, every minute: when the active model is not the one every
  watch was last checked with, checks those watches (and the watches never estimated yet,
  whose baseline is NULL: `watchProperty` writes them so), 500 properties a batch, for up to
  `ACTIVATION_BUDGET_S` a run; the next minute's run goes on where it stopped.

A check estimates through the path `Property.estimate` takes (`subject_of`: the property's
record and its market sales before the day, one `ModelRegistry.predict` per batch), so the
alert's figure is the one the API answers. Per watch:

- no baseline yet: the estimate becomes the baseline (its first estimate), no alert;
- |current - baseline| / baseline >= estimate_change_pct %: an ESTIMATE_CHANGED alert
  (`{"previous", "current", "changePct", "modelVersion"}`) and the baseline moves to current;
- under the threshold: the baseline stays, so slow drifts add up until together they cross
  the threshold (moving it on every check would let a property drift any distance in small
  steps without one alert); only the model version is recorded, so an activation checks a
  watch once.

Alerts, baselines and the alerts' webhook deliveries are written in one transaction (the
watches read under a row lock, so two checks of one watch do not both alert); subscribers
are woken after the commit. Without an active model (a fresh install) the jobs do nothing
and succeed: the watches are checked once one is active.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import orjson

from app.estimates.service import ModelRegistry, subject_of
from app.jobs import periodic
from app.jobs.registry import Job, JobRegistry
from app.settings import Settings
from app.streams.broker import AlertBroker
from db.engine import Database
from db.repositories import watch_estimates as repo
from db.repositories.estimates import market_history
from db.repositories.properties import properties_by_id
from db.repositories.watch_estimates import BaselineUpdate, EstimateAlert, WatchBaseline
from db.repositories.webhooks import create_deliveries

logger = logging.getLogger("propintel.estimates.watches")

CHECK = "estimates.check"
MODEL_ACTIVATION = "estimates.model-activation"
BATCH = 500
"""Properties per check: one statement for their records, one for their histories, one
model call."""
ACTIVATION_BUDGET_S = 40.0
"""How long one model-activation run checks batches before it leaves the rest to the next
minute's run (so runs do not pile up behind a big backlog)."""


class AlertPublisher(Protocol):
    """What a check needs of `AlertBroker`: wake the subscriptions of these users."""

    async def publish(self, user_ids: Iterable[int]) -> None: ...


minute_of = periodic.every_minutes(1)
"""The period of a per-minute task: '2026-12-01T11:47' (UTC)."""


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    watches: int = 0
    baselines_set: int = 0
    alerts: int = 0
    deliveries: int = 0

    def __add__(self, other: CheckOutcome) -> CheckOutcome:
        return CheckOutcome(
            self.watches + other.watches,
            self.baselines_set + other.baselines_set,
            self.alerts + other.alerts,
            self.deliveries + other.deliveries,
        )


def change_pct(previous: int, current: int) -> float:
    return (current - previous) / previous * 100


def dedupe_key(watch_id: int, version: int, as_of: date, previous: int, current: int) -> str:
    """The same check of the same watch (a re-run, or two jobs racing) makes one alert."""
    return f"E:{watch_id}:{version}:{as_of.isoformat()}:{previous}:{current}"


def decide(
    watch: WatchBaseline,
    current: int,
    version: int,
    as_of: date,
    *,
    stale_only: bool,
) -> tuple[BaselineUpdate | None, EstimateAlert | None]:
    """What one watch's check writes: its new baseline (or model version) and its alert."""
    previous = watch.baseline_estimate
    if stale_only and watch.baseline_model_version == version and previous is not None:
        return None, None  # checked with this model since the batch was chosen
    if previous is None or previous <= 0:
        return BaselineUpdate(watch.id, current, version), None
    change = change_pct(previous, current)
    if abs(change) >= watch.estimate_change_pct:
        data = {
            "previous": previous,
            "current": current,
            "changePct": round(change, 2),
            "modelVersion": version,
        }
        alert = EstimateAlert(
            user_id=watch.user_id,
            watch_id=watch.id,
            property_id=watch.property_id,
            data=orjson.dumps(data).decode(),
            dedupe_key=dedupe_key(watch.id, version, as_of, previous, current),
        )
        return BaselineUpdate(watch.id, current, version), alert
    if watch.baseline_model_version != version:
        return BaselineUpdate(watch.id, previous, version), None
    return None, None


class EstimateWatches:
    def __init__(
        self,
        db: Database,
        models: ModelRegistry,
        broker: AlertPublisher,
        *,
        batch: int = BATCH,
        budget_s: float = ACTIVATION_BUDGET_S,
    ) -> None:
        self.db = db
        self.models = models
        self.broker = broker
        self.batch = batch
        self.budget_s = budget_s

    async def run_check(self, job: Job) -> None:
        """`estimates.check {"property_ids": [...]}`."""
        property_ids = _property_ids(job.payload)
        if self.models.active is None:
            # A worker whose registry has not read the table yet (or a fresh install).
            await self.models.refresh()
        if self.models.active is None:
            logger.debug("estimates.check %s: no active price model, nothing to check", job.id)
            return
        outcome = CheckOutcome()
        for start in range(0, len(property_ids), self.batch):
            outcome += await self.check(property_ids[start : start + self.batch])
        logger.debug("estimates.check %s: %s", job.id, outcome)

    async def run_model_activation(self, job: Job) -> None:
        """`estimates.model-activation`: checks the watches the active model has not."""
        active = await self.models.refresh()  # the table's active model, not a stale copy
        if active is None:
            logger.debug("estimates.model-activation: no active price model")
            return
        started = time.monotonic()
        outcome = CheckOutcome()
        after = 0
        while True:
            property_ids = await repo.stale_watched_properties(
                self.db, active.version, after=after, limit=self.batch
            )
            if not property_ids:
                break
            outcome += await self.check(property_ids, stale_only=True)
            after = property_ids[-1]
            if len(property_ids) < self.batch or time.monotonic() - started > self.budget_s:
                break
        if outcome.watches:
            logger.info(
                "price model %d: checked %d watches (%d first estimates, %d alerts)",
                active.version,
                outcome.watches,
                outcome.baselines_set,
                outcome.alerts,
            )

    async def check(self, property_ids: Sequence[int], *, stale_only: bool = False) -> CheckOutcome:
        """Checks the watches of these properties (one batch) against today's estimates.

        `stale_only` (the model-activation run): skip a watch another check has already
        brought to the active model since the batch was chosen."""
        today = datetime.now(UTC).date()
        records = await properties_by_id(self.db, property_ids)
        estimated = sorted(records)
        history = await market_history(self.db, estimated, today) if estimated else {}
        subjects = [subject_of(records[pid], history.get(pid, ())) for pid in estimated]
        active = self.models.active
        if active is None:
            return CheckOutcome()
        version = active.version
        # `predict` takes the registry's active model before its first await, with no await
        # since `active` was read: the figures are of model `version`, even if the poll
        # swaps the model while they are computed.
        estimates = await self.models.predict(subjects, today) if subjects else []
        current = {pid: e.price for pid, e in zip(estimated, estimates, strict=True)}
        updates: list[BaselineUpdate] = []
        alerts: list[EstimateAlert] = []
        now = datetime.now(UTC)
        first = 0
        async with self.db.begin() as conn:
            watches = await repo.lock_watches(conn, property_ids)
            for watch in watches:
                price = current.get(watch.property_id)
                if price is None:
                    if stale_only and watch.baseline_model_version != version:
                        # A deleted property: nothing to estimate; record the check so that
                        # every minute's run does not pick it again.
                        updates.append(BaselineUpdate(watch.id, watch.baseline_estimate, version))
                    continue
                update, alert = decide(watch, price, version, today, stale_only=stale_only)
                if update is not None:
                    updates.append(update)
                    first += watch.baseline_estimate is None
                if alert is not None:
                    alerts.append(alert)
            await repo.move_baselines(conn, updates)
            inserted = await repo.insert_estimate_alerts(conn, alerts, now=now)
            deliveries = await create_deliveries(conn, [alert_id for alert_id, _ in inserted])
        if inserted:
            await self._publish({user_id for _, user_id in inserted})
        return CheckOutcome(len(watches), first, len(inserted), deliveries)

    async def _publish(self, user_ids: set[int]) -> None:
        try:
            await self.broker.publish(sorted(user_ids))
        except Exception:  # best effort: the alerts are committed; subscribers poll too
            logger.warning("could not wake the subscribers of new alerts", exc_info=True)


def _property_ids(payload: dict[str, Any]) -> list[int]:
    ids = payload.get("property_ids")
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids
    ):
        raise ValueError(f"estimates.check wants {{'property_ids': [int, ...]}}, got {payload!r}")
    return sorted(set(ids))


def register(
    registry: JobRegistry,
    *,
    db: Database,
    settings: Settings,
    models: ModelRegistry,
    broker: AlertBroker,
) -> EstimateWatches:
    """Adds `estimates.check` and the per-minute `estimates.model-activation`."""
    watches = EstimateWatches(db, models, broker)
    registry.register(CHECK, watches.run_check, lease=timedelta(minutes=2))
    registry.register(
        MODEL_ACTIVATION,
        watches.run_model_activation,
        lease=timedelta(seconds=math.ceil(ACTIVATION_BUDGET_S) + 120),
    )
    registry.every(MODEL_ACTIVATION, MODEL_ACTIVATION, minute_of)
    return watches
