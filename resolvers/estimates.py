"""Price estimates, comparable sales, and the model registry (admin)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated

import strawberry

from app.context import Context, Info
from app.errors import ConflictError, DomainError, ErrorCode, NotFoundError, UserInputError
from app.estimates.service import ActiveModel
from app.estimates.tasks import JobRunning
from app.ml import Estimate, Subject
from app.telemetry.request import current_request
from db.records import PropertyRecord, SaleRecord
from db.repositories import price_models as registry_repo
from db.repositories.price_models import JobRecord, ModelRecord
from loaders.sales import RecentSalesKey
from resolvers.admin import require_admin
from resolvers.fields import Audience, batched
from resolvers.filters import check_name, check_postcode
from schema.enums import PropertyNature
from schema.estimates import PriceEstimate, PriceModelType, PropertyFeaturesInput, TrainingJob

EARLIEST_AS_OF = date(2001, 1, 1)  # the data starts here (comparable sales' lower bound)
MAX_AREA_M2 = 10_000_000.0  # 1,000 ha: larger is a data error, not a residential lot
MAX_COMPARABLES = 20
_ZONING = re.compile(r"^[A-Za-z0-9 ._/-]{1,16}$")


class NoActiveModel(DomainError):
    code = ErrorCode.SERVICE_UNAVAILABLE

    def __init__(self, training: JobRecord | None = None) -> None:
        if training is None:
            message = "No price model is active yet: an admin trains one with retrainModel."
        else:
            since = training.started_at or training.created_at
            message = (
                f"No price model is active yet: one is training (job {training.id}, started "
                f"{since:%Y-%m-%d %H:%M:%S} UTC); estimates answer once it finishes."
            )
        super().__init__(message, retryAfterSeconds=60)


async def active_model(context: Context, estimates: int) -> ActiveModel:
    """The model this request estimates with; SERVICE_UNAVAILABLE (saying whether one is
    training, and since when) when there is none, counting the `estimates` asked for as
    unavailable (they never reach ModelRegistry.predict, which counts the rest)."""
    models = context.models
    active = models.active if models is not None else None
    if active is None:
        if models is not None and not _in_a_plans_attempt():
            models.count_unavailable(estimates)
        raise NoActiveModel(await registry_repo.running_job(context.db))
    return active


def _in_a_plans_attempt() -> bool:
    """Whether a compiled plan is running the operation: NoActiveModel is not a dependency's
    failure, so the plan hands the operation to Strawberry (app/graphql/executor.py), whose
    run refuses the same estimates again and counts them then. The request's record knows:
    the view notes STANDARD or FALLBACK before Strawberry runs; a plan notes COMPILED only
    once it has succeeded. (Websockets run no plans.)"""
    request = current_request.get()
    return request is not None and request.method != "WS" and request.executor is None


def check_as_of(as_of: date | None, model: ModelRecord) -> date:
    """`asOf` (default: today) within what the model can speak for: from the first day of its
    data to today. Past its data is allowed and said (`extrapolatedDays`)."""
    today = datetime.now(UTC).date()
    if as_of is None:
        return today
    if not model.data_from <= as_of <= today:
        raise UserInputError(
            f"`asOf` must be between {model.data_from} (where the price model's data starts) "
            f"and today ({today}), got {as_of}",
            argument="asOf",
        )
    return as_of


def _estimate(value: Estimate, model: ModelRecord) -> PriceEstimate:
    return PriceEstimate(
        price=value.price,
        low=value.low,
        high=value.high,
        model_version=model.version,
        as_of=value.as_of,
        data_to=model.data_to,
        extrapolated_days=max(0, (value.as_of - model.data_to).days),
    )


@batched(Audience.PUBLIC)
async def estimate(
    parents: list[PropertyRecord],
    context: Context,
    as_of: Annotated[
        date | None, strawberry.argument(description="The date of the estimate (default: today).")
    ] = None,
) -> list[PriceEstimate]:
    active = await active_model(context, len(parents))
    when = check_as_of(as_of, active.record)
    assert context.models is not None  # active_model found one there
    loader = context.loaders.estimates(context.models, active.version)
    loader.remember(parents)
    found = await loader.load_many([(p.id, when) for p in parents])
    return [_estimate(value, active.record) for value in found]


async def estimate_price(
    info: Info, input: PropertyFeaturesInput, as_of: date | None = None
) -> PriceEstimate:
    context = info.context
    active = await active_model(context, 1)
    when = check_as_of(as_of, active.record)
    models = context.models
    assert models is not None  # active_model found one there
    check_name(input.locality_name, "input.localityName")
    check_postcode(input.postcode, "input.postcode")
    if input.area_m2 is not None and not 0 < input.area_m2 <= MAX_AREA_M2:
        raise UserInputError(
            f"`input.areaM2` must be above 0 and at most {MAX_AREA_M2:,.0f} m², "
            f"got {input.area_m2}",
            argument="input.areaM2",
        )
    if input.zoning is not None and not _ZONING.match(input.zoning):
        raise UserInputError(
            "`input.zoning` must be a zoning code of 1 to 16 letters and digits, e.g. R2",
            argument="input.zoning",
        )
    if input.street_name is not None:
        check_name(input.street_name, "input.streetName")
    locality = await context.loaders.locality_by_name.load(
        (input.locality_name.strip().upper(), input.postcode)
    )
    if locality is None or not active.model.knows_locality(locality.id):
        raise UserInputError(
            f"Unknown locality {input.locality_name!r} with postcode {input.postcode}: "
            "no sales to estimate from",
            argument="input.localityName",
        )
    subject = Subject(
        locality_id=locality.id,
        locality_name=locality.name,
        postcode=input.postcode,
        district_code=None,  # the model knows the district of a locality it knows
        latitude=locality.latitude,
        longitude=locality.longitude,
        is_strata=input.is_strata,
        area_m2=input.area_m2,
        zoning=input.zoning.strip().upper() if input.zoning else None,
        nature=input.nature.value if isinstance(input.nature, PropertyNature) else None,
        primary_purpose=None,
        street_name=input.street_name.strip().upper() if input.street_name else None,
    )
    (value,) = await models.predict([subject], when)
    return _estimate(value, active.record)


COMPARABLE_POOL = 40
"""Recent sales per locality and kind that comparables are chosen from."""


@batched(Audience.PUBLIC)
async def comparable_sales(
    parents: list[PropertyRecord],
    context: Context,
    first: int = 5,
    as_of: Annotated[
        date | None,
        strawberry.argument(
            description="Only sales contracted on or before this date, as a valuer on that "
            "day would see them (give the estimate's `asOf`); default: up to the newest."
        ),
    ] = None,
) -> list[list[SaleRecord]]:
    """At most two statements for any number of properties (one per kind present), and
    none for a locality and kind already read in this request (or cached)."""
    if not 1 <= first <= MAX_COMPARABLES:
        raise UserInputError(
            f"`first` must be between 1 and {MAX_COMPARABLES}, got {first}", argument="first"
        )
    today = datetime.now(UTC).date()
    if as_of is not None and not EARLIEST_AS_OF <= as_of <= today:
        raise UserInputError(
            f"`asOf` must be between {EARLIEST_AS_OF} and today ({today}), got {as_of}",
            argument="asOf",
        )
    pools = await context.loaders.recent_market_sales.load_many(
        [RecentSalesKey(p.locality_id, p.is_strata, COMPARABLE_POOL, as_of) for p in parents]
    )
    return [_closest(p, pool, first) for p, pool in zip(parents, pools, strict=True)]


def _closest(subject: PropertyRecord, pool: Sequence[SaleRecord], first: int) -> list[SaleRecord]:
    """What a valuer pulls first: other properties' recent sales, nearest in land area (when
    both areas are known), newest first among equals. One sale per property."""
    seen: set[int] = {subject.id}
    candidates = []
    for sale in pool:  # newest first
        if sale.property_id in seen:
            continue
        seen.add(sale.property_id)
        candidates.append(sale)

    def distance(sale: SaleRecord) -> float:
        if subject.area_m2 is None or sale.area_m2 is None:
            return 0.0 if subject.area_m2 is None else float("inf")
        return abs(sale.area_m2 - subject.area_m2)

    return sorted(candidates, key=distance)[:first]  # stable: newest first among equals


async def models(info: Info) -> list[PriceModelType]:
    require_admin(info)
    return [PriceModelType(record=r) for r in await registry_repo.models(info.context.db)]


async def retrain_model(info: Info, activate: bool = True) -> TrainingJob:
    """Queues a training (its training_jobs row and the `model.train` job, one transaction)
    and returns at once with the job: a job worker trains, never this API process (unless
    its in-process worker claims the job, which trains in a child process)."""
    require_admin(info)
    trainer = info.context.trainer
    if trainer is None:
        raise NoActiveModel()
    try:
        job = await trainer.start(activate=activate, requested_by=info.context.principal.user_id)
    except JobRunning as running:
        which = f"Training job {running.job.id}" if running.job else "A training job"
        raise ConflictError(f"{which} is still running.") from None
    return TrainingJob(record=job)


async def model_training_status(info: Info, id: strawberry.ID) -> TrainingJob:
    require_admin(info)
    if not re.fullmatch(r"[0-9a-f]{32}", id):
        raise UserInputError(f"{id!r} is not a training job id", argument="id")
    job = await registry_repo.job(info.context.db, id)
    if job is None:
        raise NotFoundError(f"No training job {id}.")
    return TrainingJob(record=job)


async def activate_model(info: Info, version: int) -> PriceModelType:
    require_admin(info)
    context = info.context
    previous = context.models.active.version if context.models and context.models.active else None
    record = await registry_repo.activate(context.db, version)
    if record is None:
        raise NotFoundError(f"No price model version {version}.")
    if context.models is not None:
        await context.models.refresh()
    if previous is not None and previous != version and context.caching is not None:
        # Estimates are keyed by version already; responses that held them are tagged.
        await context.caching.invalidate(tags=[f"model:{previous}"])
    return PriceModelType(record=record)
