"""Price model (issue 7): what is this property worth on date asOf?

HistGradientBoostingRegressor on log(price) relative to a leak-free trailing locality level,
with a split-conformal 80% interval. See docs/price-model.md.
"""

from app.pricing.data import TrainingData, load_training_sales, load_training_sales_sync
from app.pricing.model import (
    Estimate,
    PriceModel,
    Subject,
    ValidationMetrics,
    is_residential,
    train,
    train_from_url,
)

__all__ = [
    "Estimate",
    "PriceModel",
    "Subject",
    "TrainingData",
    "ValidationMetrics",
    "is_residential",
    "load_training_sales",
    "load_training_sales_sync",
    "train",
    "train_from_url",
]
