"""Types of price estimates and of the model registry."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

import strawberry

from db.repositories.price_models import JobRecord, ModelRecord
from schema.enums import PropertyNature


@strawberry.type(
    description="What a property is worth on `asOf`: the model's estimate and "
    "its 80% prediction interval [low, high]."
)
class PriceEstimate:
    price: int
    low: int
    high: int
    model_version: int
    as_of: date
    data_to: date = strawberry.field(
        description="The last sale date the model was trained on: it knows the market up to here."
    )
    extrapolated_days: int = strawberry.field(
        description="How many days `asOf` lies past `dataTo` (0: within the data). Past the "
        "data the model holds its price index flat at the last months it saw, so the further "
        "out, the less the estimate knows of the market since."
    )


@strawberry.input(description="A property we do not hold, described by its features.")
class PropertyFeaturesInput:
    locality_name: str
    postcode: str
    is_strata: bool
    area_m2: float | None = strawberry.field(
        default=None, description="Land area in square metres (strata lots: leave out)."
    )
    zoning: str | None = strawberry.field(default=None, description="Zoning code, e.g. 'R2'.")
    nature: PropertyNature | None = None
    street_name: str | None = None


@strawberry.type(
    description="Validation figures of one class of what a caller gives (history, street, "
    "area, strata): the interval is calibrated per class."
)
class ModelClassMetrics:
    name: str = strawberry.field(
        description="e.g. 'house/no history/no street/area': strata or house, whether the "
        "property has a previous sale, a street with earlier sales, a land area."
    )
    sales: int = strawberry.field(
        description="Held-out sales that have at least what the class has, predicted as the "
        "class is served (what it lacks left out)."
    )
    mdape: float | None = strawberry.field(description="Median absolute percentage error.")
    interval_coverage: float | None = strawberry.field(
        description="Share of those sales inside the 80% interval."
    )
    calibration_sales: int
    merged_into: str | None = strawberry.field(
        description="Too few calibration sales of its own: the flags whose classes it was "
        "calibrated together with ('area', 'street and area', 'all'); null when its own."
    )

    @classmethod
    def of(cls, c: dict[str, Any]) -> ModelClassMetrics:
        def number(name: str) -> float | None:
            value = c.get(name)
            return None if value is None else float(value)

        return cls(
            name=str(c["name"]),
            sales=int(c["sales"]),
            mdape=number("mdape"),
            interval_coverage=number("coverage"),
            calibration_sales=int(c.get("calibration_sales", 0)),
            merged_into=c.get("merged_into"),
        )


@strawberry.type(description="Validation figures on the most recent held-out weeks.")
class ModelMetrics:
    mdape: float = strawberry.field(description="Median absolute percentage error.")
    within10: float = strawberry.field(description="Share of sales estimated within 10%.")
    within20: float = strawberry.field(description="Share of sales estimated within 20%.")
    interval_coverage: float = strawberry.field(
        description="Share of held-out sales inside the 80% interval."
    )
    validation_sales: int
    training_sales: int
    baseline_mdape: float | None = strawberry.field(
        description="MdAPE of a locality x strata median over the same weeks, for comparison."
    )
    validation_from: date | None
    validation_to: date | None
    classes: list[ModelClassMetrics] = strawberry.field(
        description="Per class of what a caller gives; empty for models trained before."
    )

    @classmethod
    def of(cls, metrics: dict[str, Any]) -> ModelMetrics:
        def day(name: str) -> date | None:
            value = metrics.get(name)
            return None if value is None else date.fromisoformat(value)

        baseline = metrics.get("baseline_mdape")
        return cls(
            mdape=float(metrics["mdape"]),
            within10=float(metrics["within_10"]),
            within20=float(metrics["within_20"]),
            interval_coverage=float(metrics["coverage"]),
            validation_sales=int(metrics["n_validation"]),
            training_sales=int(metrics["n_train"]),
            baseline_mdape=None if baseline is None else float(baseline),
            validation_from=day("validation_from"),
            validation_to=day("validation_to"),
            classes=[ModelClassMetrics.of(c) for c in metrics.get("classes") or []],
        )


@strawberry.type(name="PriceModel", description="A trained model of the registry.")
class PriceModelType:
    record: strawberry.Private[ModelRecord]

    @strawberry.field
    def version(self) -> int:
        return self.record.version

    @strawberry.field
    def trained_at(self) -> datetime:
        return self.record.trained_at

    @strawberry.field
    def data_from(self) -> date:
        return self.record.data_from

    @strawberry.field
    def data_to(self) -> date:
        return self.record.data_to

    @strawberry.field
    def features(self) -> list[str]:
        return self.record.features

    @strawberry.field
    def training_seconds(self) -> float:
        return self.record.training_seconds

    @strawberry.field
    def active(self) -> bool:
        return self.record.active

    @strawberry.field
    def metrics(self) -> ModelMetrics:
        return ModelMetrics.of(self.record.metrics)


@strawberry.enum
class TrainingStatus(Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@strawberry.type(description="A training run started by retrainModel.")
class TrainingJob:
    record: strawberry.Private[JobRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.record.id)

    @strawberry.field
    def status(self) -> TrainingStatus:
        return TrainingStatus(self.record.status)

    @strawberry.field
    def activate(self) -> bool:
        return self.record.activate

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def started_at(self) -> datetime | None:
        return self.record.started_at

    @strawberry.field
    def finished_at(self) -> datetime | None:
        return self.record.finished_at

    @strawberry.field
    def model_version(self) -> int | None:
        return self.record.model_version

    @strawberry.field
    def error(self) -> str | None:
        return self.record.error
