"""The price model (app/ml) on the test slice, and (opt-in) on the full data."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import sys
import types
import zlib
from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from app.ml import (
    PriceModel,
    Subject,
    TrainingData,
    ValidationMetrics,
    is_residential,
    load_training_sales,
    subject_of_sale,
    train,
    train_from_url,
)
from app.ml.artifact import ARTIFACT_MAGIC
from app.ml.design import design_matrices
from app.ml.features import Levels


@pytest.fixture(scope="module")
def slice_data(sqlite_url: str) -> TrainingData:
    return asyncio.run(load_training_sales(sqlite_url))


@pytest.fixture(scope="module")
def model(slice_data: TrainingData) -> PriceModel:
    return train(slice_data, max_iter=40, max_leaf_nodes=15, min_samples_leaf=20)


def subjects_from_sales(data: TrainingData, count: int) -> tuple[list[Subject], list[int]]:
    """Residential sales of the last weeks as subjects (previous sales from the data)."""
    residential = np.flatnonzero(is_residential(data))
    newest = residential[np.argsort(data.day[residential])][-count:]
    loc_index = {int(v): i for i, v in enumerate(data.loc_id)}
    subjects = []
    for i in newest:
        same = np.flatnonzero((data.property_id == data.property_id[i]) & (data.day < data.day[i]))
        same = same[np.argsort(data.day[same])]
        li = loc_index[int(data.locality_id[i])]
        subjects.append(subject_of_sale(data, int(i), same, district_code=data.loc_district[li]))
    return subjects, [int(data.price[i]) for i in newest]


def test_loads_the_same_sales_from_postgresql_and_sqlite(
    slice_data: TrainingData, postgres_url: str
) -> None:
    pg = asyncio.run(load_training_sales(postgres_url))
    assert len(pg) == len(slice_data) > 5_000
    assert sorted(pg.price.tolist()) == sorted(slice_data.price.tolist())
    assert int(is_residential(pg).sum()) == int(is_residential(slice_data).sum())


def test_training_gives_finite_metrics(model: PriceModel) -> None:
    m = model.metrics
    for value in (m.mdape, m.within_10, m.within_20, m.coverage, m.baseline_mdape):
        assert math.isfinite(value)
    assert 0 < m.mdape < 0.5
    assert m.n_validation > 0
    assert m.n_train > 1_000
    assert m.validation_from is not None
    assert m.validation_to == model.data_to
    assert model.data_from < model.data_to
    assert len(model.feature_names) == model.estimator.n_features_in_


def test_predicts_a_batch_of_100_with_intervals_around_the_estimate(
    model: PriceModel, slice_data: TrainingData
) -> None:
    subjects, prices = subjects_from_sales(slice_data, 100)
    estimates = model.predict(subjects, date(2024, 10, 1))
    assert len(estimates) == 100
    for e in estimates:
        assert 0 < e.low <= e.price <= e.high
        assert e.as_of == date(2024, 10, 1)
    ape = [abs(e.price - p) / p for e, p in zip(estimates, prices, strict=True)]
    assert float(np.median(ape)) < 0.3
    per_subject = model.predict(subjects, [date(2024, 10, 1)] * 100)
    assert per_subject == estimates


def test_round_trips_through_bytes(model: PriceModel, slice_data: TrainingData) -> None:
    subjects, _ = subjects_from_sales(slice_data, 50)
    copy = PriceModel.from_bytes(model.to_bytes())
    assert copy.predict(subjects, date(2024, 6, 1)) == model.predict(subjects, date(2024, 6, 1))
    assert copy.metrics == model.metrics
    assert copy.feature_names == model.feature_names
    assert (copy.data_from, copy.data_to) == (model.data_from, model.data_to)


def test_artifacts_stored_before_the_move_to_app_ml_still_load(
    model: PriceModel, slice_data: TrainingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models stored by the app/pricing code pickled their classes by those module paths."""
    with monkeypatch.context() as patch:
        for cls, module in (
            (PriceModel, "app.pricing.model"),
            (ValidationMetrics, "app.pricing.model"),
            (Levels, "app.pricing.features"),
        ):
            fake = sys.modules.get(module) or types.ModuleType(module)
            setattr(fake, cls.__name__, cls)
            patch.setitem(sys.modules, module, fake)
            patch.setattr(cls, "__module__", module)
        old = model.to_bytes()
    pickled = zlib.decompress(old[len(ARTIFACT_MAGIC) :])
    assert b"app.pricing.model" in pickled
    assert b"app.pricing.features" in pickled
    assert b"app.ml" not in pickled
    assert "app.pricing.model" not in sys.modules

    copy = PriceModel.from_bytes(old, sha256=hashlib.sha256(old).hexdigest())
    assert type(copy.levels) is Levels
    assert type(copy.metrics) is ValidationMetrics
    subjects, _ = subjects_from_sales(slice_data, 20)
    assert copy.predict(subjects, date(2024, 6, 1)) == model.predict(subjects, date(2024, 6, 1))


def test_an_artifact_that_does_not_match_its_digest_is_refused(model: PriceModel) -> None:
    blob = model.to_bytes()
    with pytest.raises(ValueError, match="digest"):
        PriceModel.from_bytes(blob, sha256=hashlib.sha256(blob + b"x").hexdigest())


def test_a_sales_own_price_never_reaches_its_features(slice_data: TrainingData) -> None:
    before = design_matrices(slice_data)

    def with_price_times_10(i: int) -> TrainingData:
        price = slice_data.price.copy()
        price[i] *= 10
        return replace(slice_data, price=price)

    # A held-out sale's price: no held-out (or calibration) feature changes, its own included.
    held_out = int(before.val_idx[len(before.val_idx) // 2])
    after = design_matrices(with_price_times_10(held_out))
    assert np.array_equal(before.val_idx, after.val_idx)
    np.testing.assert_array_equal(before.X_val, after.X_val)
    np.testing.assert_array_equal(before.ref_val, after.ref_val)
    np.testing.assert_array_equal(before.X_cal, after.X_cal)
    # (Training rows: equal up to float re-association of one running sum over all streets.)
    np.testing.assert_allclose(before.X_train, after.X_train, rtol=0, atol=1e-9)

    # A training sale's price: its own row stays the same, later rows do see it (the
    # encodings are not inert).
    trained = int(before.train_idx[len(before.train_idx) // 2])
    after = design_matrices(with_price_times_10(trained))
    row = int(np.flatnonzero(before.train_idx == trained)[0])
    np.testing.assert_array_equal(before.X_train[row], after.X_train[row])
    assert before.ref_train[row] == after.ref_train[row]
    assert not np.array_equal(before.X_train, after.X_train)
    assert not np.array_equal(before.X_val, after.X_val)


def test_unknown_street_without_previous_sales_still_gets_an_estimate(
    model: PriceModel, slice_data: TrainingData
) -> None:
    subjects, _ = subjects_from_sales(slice_data, 1)
    bare = replace(subjects[0], street_name="NO SUCH STREET", previous_sales=())
    nowhere = replace(bare, locality_id=None, district_code=None, latitude=-33.9, longitude=151.2)
    for subject in (bare, nowhere):
        (e,) = model.predict([subject], date(2024, 9, 1))
        assert 0 < e.low <= e.price <= e.high
    assert model.knows_locality(subjects[0].locality_id)
    assert not model.knows_locality(-1)
    assert not model.knows_locality(None)


def test_previous_sales_move_the_estimate(model: PriceModel, slice_data: TrainingData) -> None:
    subjects, _ = subjects_from_sales(slice_data, 1)
    base = replace(subjects[0], previous_sales=())
    high = replace(base, previous_sales=((date(2023, 3, 1), 3_000_000),))
    low = replace(base, previous_sales=((date(2023, 3, 1), 300_000),))
    e_high, e_low = model.predict([high, low], date(2024, 9, 1))
    assert e_high.price > e_low.price
    # A sale on or after asOf is not a previous sale.
    (later,) = model.predict(
        [replace(base, previous_sales=((date(2024, 9, 1), 3_000_000),))], date(2024, 9, 1)
    )
    (none,) = model.predict([base], date(2024, 9, 1))
    assert later == none


def test_index_is_flat_after_the_data(model: PriceModel, slice_data: TrainingData) -> None:
    subjects = [replace(s, previous_sales=()) for s in subjects_from_sales(slice_data, 10)[0]]
    a = model.predict(subjects, date(2030, 1, 1))
    b = model.predict(subjects, date(2031, 6, 1))
    assert [e.price for e in a] == [e.price for e in b]


@pytest.mark.full_data
def test_full_data_meets_the_acceptance_figures() -> None:
    url = os.environ.get("PROPINTEL_FULL_DATA_URL")
    if not url:
        pytest.fail("set PROPINTEL_FULL_DATA_URL (scripts/test --full) to run the full-data checks")
    model = train_from_url(url, cache=os.environ.get("PROPINTEL_PRICING_CACHE"))
    m = model.metrics
    assert m.n_validation > 10_000
    assert m.mdape <= 0.12, m
    assert 0.77 <= m.coverage <= 0.83, m
    assert m.mdape < m.baseline_mdape
    for c in m.classes:
        print(c)  # the figures of docs/price-model.md (pytest -s)
    checked = [c for c in m.classes if c["sales"] >= 500]
    assert len(checked) >= 8, m.classes
    for c in checked:
        assert 0.77 <= c["coverage"] <= 0.83, c


def test_per_class_metrics_are_well_formed(model: PriceModel) -> None:
    from app.ml.classes import N_CLASSES, class_name

    classes = model.metrics.classes
    assert [c["name"] for c in classes] == [class_name(k) for k in range(N_CLASSES)]
    assert len({c["name"] for c in classes}) == N_CLASSES
    for c in classes:
        assert set(c) == {"name", "sales", "mdape", "coverage", "calibration_sales", "merged_into"}
        assert isinstance(c["sales"], int)
        assert c["sales"] >= 0
        if c["sales"]:
            assert math.isfinite(c["mdape"])
            assert 0 <= c["coverage"] <= 1
        else:
            assert c["mdape"] is None
            assert c["coverage"] is None
    # The bare class (strata flag only) is eligible for every held-out sale.
    bare = [c for c in classes if c["name"].endswith("no history/no street/no area")]
    assert sum(c["sales"] for c in bare) == model.metrics.n_validation
    assert model.class_offsets is not None
    assert model.class_offsets.shape == (N_CLASSES, 2)
    assert (model.class_offsets[:, 0] <= 0).all()
    assert (model.class_offsets[:, 1] >= 0).all()


def test_the_interval_follows_what_the_subject_has(
    model: PriceModel, slice_data: TrainingData
) -> None:
    from app.ml.classes import blank, class_of, facts_of
    from app.ml.features import feature_matrix

    subjects, _ = subjects_from_sales(slice_data, 200)
    full = [s for s in subjects if s.previous_sales and s.street_name][:20]
    assert full
    bare = [
        replace(s, previous_sales=(), street_name=None, primary_purpose=None, house_number=None)
        for s in full
    ]
    when = date(2024, 10, 1)
    days = np.full(len(full), when.toordinal(), dtype=np.int64)
    X_full, _ = feature_matrix(model.levels, model._rows(full, days))
    X_bare, _ = feature_matrix(model.levels, model._rows(bare, days))
    # Blanking the features a class lacks is exactly how prediction serves such a subject.
    has_area = np.isfinite(X_full[:, 2])
    for k in range(len(full)):
        code = int(
            class_of(
                np.array([False]),
                np.array([False]),
                has_area[k : k + 1],
                np.array([full[k].is_strata]),
            )[0]
        )
        np.testing.assert_array_equal(blank(X_full[k : k + 1], code), X_bare[k : k + 1])
        assert int(facts_of(X_bare[k : k + 1])[0]) == code
    assert model.class_offsets is not None
    for s, e in zip(bare, model.predict(bare, when), strict=True):
        code = int(facts_of(feature_matrix(model.levels, model._rows([s], days[:1]))[0])[0])
        lo, hi = model.class_offsets[code]
        assert abs(e.low - e.price * math.exp(lo)) <= 1 + 1e-6 * e.price
        assert abs(e.high - e.price * math.exp(hi)) <= 1 + 1e-6 * e.price


def test_artifacts_without_classes_still_load_and_use_the_bins(
    model: PriceModel, slice_data: TrainingData
) -> None:
    """Models stored before the caller classes: no class_offsets, metrics without classes."""
    import pickle

    from app.ml import artifact

    old = PriceModel.from_bytes(model.to_bytes())
    del old.class_offsets
    state = pickle.dumps(old.metrics)
    # A metrics pickle of before: the field list one shorter (the classes were added last).
    shorter = list(old.metrics.__getstate__())[:-1]  # type: ignore[call-overload]
    metrics = ValidationMetrics.__new__(ValidationMetrics)
    metrics.__setstate__(shorter)  # type: ignore[attr-defined]
    assert metrics.classes == []
    assert metrics.mdape == old.metrics.mdape
    assert pickle.loads(state) == old.metrics
    old.metrics = metrics
    copy = artifact.loads(artifact.dumps(old))
    assert copy.metrics.classes == []
    subjects, _ = subjects_from_sales(slice_data, 20)
    for e in copy.predict(subjects, date(2024, 6, 1)):
        assert 0 < e.low <= e.price <= e.high
