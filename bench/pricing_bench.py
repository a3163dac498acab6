"""Price model prediction latency: batches of 100 subjects, many repeats.

    .venv/bin/python bench/pricing_bench.py --database-url postgresql://postgres@127.0.0.1:5432/propintel_full
    .venv/bin/python bench/pricing_bench.py --artifact var/price-model.bin   # a saved model

With --database-url the model is trained first (and saved with --save PATH); the subjects
are the newest residential sales of the data (previous sales included), predicted at the
day after the data ends. Prints median and p95 milliseconds per batch: the whole `predict`
(features + the estimator's one call + intervals) and the estimator call alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.ml import (
    PriceModel,
    Subject,
    TrainingData,
    is_residential,
    load_training_sales_sync,
    subject_of_sale,
    train,
)
from app.ml.features import feature_matrix
from app.ml.model import predict_raw


def subjects_from(data: TrainingData, count: int) -> list[Subject]:
    residential = np.flatnonzero(is_residential(data))
    newest = residential[np.argsort(data.day[residential], kind="stable")][-count:]
    order = np.lexsort((data.day, data.property_id))
    props = data.property_id[order]
    out = []
    for i in newest:
        lo = np.searchsorted(props, data.property_id[i], side="left")
        hi = np.searchsorted(props, data.property_id[i], side="right")
        earlier = [j for j in order[lo:hi] if data.day[j] < data.day[i]]
        out.append(subject_of_sale(data, int(i), earlier))
    return out


def synthetic_subjects(model: PriceModel, count: int) -> list[Subject]:
    """Without the data: subjects spread over the model's localities, half with a sale."""
    ids = [int(i) for i in model.loc_ids[:: max(1, len(model.loc_ids) // count)]][:count]
    return [
        Subject(
            locality_id=lid,
            locality_name="",
            postcode="",
            district_code=None,
            latitude=None,
            longitude=None,
            is_strata=k % 3 == 0,
            area_m2=None if k % 3 == 0 else 450.0 + k,
            zoning="R2",
            nature="R",
            primary_purpose="RESIDENCE",
            street_name="MAIN ST",
            previous_sales=((date(2018, 5, 1), 600_000 + 1000 * k),) if k % 2 else (),
        )
        for k, lid in enumerate(ids)
    ]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="train from this database first")
    parser.add_argument("--artifact", type=Path, help="a saved model (PriceModel.to_bytes)")
    parser.add_argument("--save", type=Path, help="save the trained model here")
    parser.add_argument("--cache", type=Path, help="read/write the loaded sales here")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()

    data: TrainingData | None = None
    if args.artifact and args.artifact.exists():
        model = PriceModel.from_bytes(args.artifact.read_bytes())
        print(f"model: {args.artifact} ({args.artifact.stat().st_size / 1e6:.1f} MB)")
    elif args.database_url:
        started = time.perf_counter()
        data = load_training_sales_sync(args.database_url, cache=args.cache)
        loaded = time.perf_counter() - started
        model = train(data)
        print(f"loaded {len(data):,} sales in {loaded:.1f} s, trained in "
              f"{model.metrics.training_seconds:.1f} s")  # fmt: skip
        if args.save:
            args.save.write_bytes(model.to_bytes())
    else:
        parser.error("give --database-url or an existing --artifact")

    m = model.metrics
    print(f"validation {m.validation_from}..{m.validation_to}: MdAPE {m.mdape:.4f}, "
          f"within 10% {m.within_10:.3f}, within 20% {m.within_20:.3f}, coverage {m.coverage:.3f}, "
          f"n {m.n_validation:,}; baseline MdAPE {m.baseline_mdape:.4f}")  # fmt: skip
    for c in getattr(m, "classes", []):  # per caller class (app/ml/classes.py)
        if c["sales"]:
            print(f"  {c['name']:36} {c['sales']:>7,} sales  MdAPE {c['mdape']:.4f}  "
                  f"coverage {c['coverage']:.3f}  calibration {c['calibration_sales']:,}"
                  f"{'  merged: ' + c['merged_into'] if c['merged_into'] else ''}")  # fmt: skip

    if data is None and args.cache and args.cache.exists():
        data = TrainingData.load(args.cache)
    subjects = (
        subjects_from(data, args.batch)
        if data is not None
        else synthetic_subjects(model, args.batch)
    )
    as_of = model.data_to + timedelta(days=1)
    model.predict(subjects, as_of)  # warm-up
    days = np.full(len(subjects), as_of.toordinal(), dtype=np.int64)
    X, _ = feature_matrix(model.levels, model._rows(subjects, days))

    whole: list[float] = []
    estimator: list[float] = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.predict(subjects, as_of)
        t1 = time.perf_counter()
        predict_raw(model.estimator, X)
        t2 = time.perf_counter()
        whole.append((t1 - t0) * 1000)
        estimator.append((t2 - t1) * 1000)
    print(f"{len(subjects)} subjects x {args.repeats} batches, "
          f"{model.estimator.n_iter_} trees of <= {model.estimator.max_leaf_nodes} leaves")  # fmt: skip
    print(f"predict (whole batch): median {statistics.median(whole):.2f} ms, "
          f"p95 {percentile(whole, 95):.2f} ms, max {max(whole):.2f} ms")  # fmt: skip
    print(f"estimator call alone:  median {statistics.median(estimator):.2f} ms, "
          f"p95 {percentile(estimator, 95):.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
