"""Price model (issue 7): what is this property worth on date asOf?

HistGradientBoostingRegressor on log(price) relative to a leak-free trailing locality level,
with a split-conformal 80% interval. See docs/price-model.md.

A library layer: it reads the database only through db/repositories/training_data.py and
knows nothing of the service (app/estimates serves it). The modules, in dependency order:

* data        -- TrainingData: every market sale as numpy columns, loaded from db/
* residential -- which sales are residential (targets, levels)
* features    -- the leak-free features (levels, keyed residual sums, previous sales)
* design      -- the time split and the design matrices of its windows
* conformal   -- the split-conformal interval offsets
* subject     -- Subject and Estimate, what prediction is asked and answers
* metrics     -- ValidationMetrics, the scores and the baseline
* artifact    -- the stored bytes (pickle + zlib) and their SHA-256 check
* model       -- PriceModel, the fitted model, and predict
* training    -- train, train_from_url
"""

from app.ml.data import TrainingData, load_training_sales, load_training_sales_sync
from app.ml.metrics import ValidationMetrics
from app.ml.model import PriceModel
from app.ml.residential import is_residential
from app.ml.subject import Estimate, Subject, subject_of_sale
from app.ml.training import train, train_from_url

__all__ = [
    "Estimate",
    "PriceModel",
    "Subject",
    "TrainingData",
    "ValidationMetrics",
    "is_residential",
    "load_training_sales",
    "load_training_sales_sync",
    "subject_of_sale",
    "train",
    "train_from_url",
]
