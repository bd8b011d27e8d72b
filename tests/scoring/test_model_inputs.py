"""Model inputs on small frames: product-mix inputs, features a warehouse lacks, the explanation shortcut."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from kizuna.scoring.explain import contributions, factor_texts
from kizuna.scoring.features import FEATURE_NAMES, PRODUCT_FEATURES_MAX, choose_products, feature_set, matrix
from kizuna.scoring.model import ModelKind, fit_calibrated


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """As the scoring step does (settings.scores_threads): OpenMP threads on a busy machine crawl."""
    with threadpool_limits(limits=1):
        yield


def frame(products: Sequence[str | None], rng: np.random.Generator) -> pd.DataFrame:
    out = pd.DataFrame({name: rng.normal(size=len(products)) for name in FEATURE_NAMES})
    out["products_held"] = products
    out["snapshot_on"] = dt.date(2026, 5, 1)
    return out


def test_product_mix_inputs_follow_what_training_rows_hold() -> None:
    rng = np.random.default_rng(0)
    held = (
        ["CRM Suite (Standard)|Support Plan (Premium)"] * 60 + ["CRM Suite (Starter)"] * 39 + ["Rare add-on"] + [None]
    )
    rows = frame(held, rng)
    products = choose_products(rows)
    # the most held first; one row of 101 (1%) is enough share (MIN_PRODUCT_SHARE 0.5%)
    assert products == ("CRM Suite (Standard)", "Support Plan (Premium)", "CRM Suite (Starter)", "Rare add-on")
    x = matrix(rows, products)
    assert x.shape == (101, len(FEATURE_NAMES) + 4)
    assert x[0, -4:].tolist() == [1, 1, 0, 0] and x[60, -4:].tolist() == [0, 0, 1, 0] and x[-1, -4:].tolist() == [0] * 4
    names = [f"P{i:02d}" for i in range(PRODUCT_FEATURES_MAX + 3)]
    many = frame(["|".join(names)] * 10 + ["P14"] * 10, rng)
    assert choose_products(many) == ("P14", *names[: PRODUCT_FEATURES_MAX - 1])
    phrases = feature_set(products)[-1]
    assert phrases.phrase(1.0, "en") == "holds Rare add-on" and phrases.phrase(0.0, "ja") == "Rare add-on未契約"


@pytest.mark.parametrize("kind", ["gbm", "logistic"])
def test_a_feature_no_row_has_trains_and_changes_no_prediction(kind: ModelKind) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 4))
    y = (x[:, 0] + rng.normal(scale=0.5, size=600) > 0.8).astype(int)
    groups = np.arange(600)
    empty = np.hstack([x[:, :2], np.full((600, 1), np.nan), x[:, 2:]])  # e.g. no usage file at all
    with_empty = fit_calibrated(empty, y, groups, kind, seed=7)
    without = fit_calibrated(x, y, groups, kind, seed=7)
    np.testing.assert_array_equal(with_empty.predict_proba(empty), without.predict_proba(x))


def test_explaining_only_rows_above_the_floor_gives_the_same_factors() -> None:
    rng = np.random.default_rng(2)
    rows = frame(["A|B"] * 250 + ["A"] * 250, rng)
    products = choose_products(rows)
    x = matrix(rows, products)
    y = (x[:, 0] + x[:, -1] + rng.normal(scale=0.3, size=len(x)) > 2.0).astype(int)
    model = fit_calibrated(x, y, np.arange(len(x)), "gbm", seed=7)
    p = model.predict_proba(x)[:, 1]
    assert (p < 0.01).sum() >= 20 and (p >= 0.01).sum() >= 20  # both kinds of rows are present
    reference = np.nanmedian(x, axis=0)
    # every row, every feature, as the definition says: p(x) - p(x with feature j set to the median)
    swapped = np.repeat(x[None, :, :], x.shape[1], axis=0)
    for j in range(x.shape[1]):
        swapped[j, :, j] = reference[j]
    moved = model.predict_proba(swapped.reshape(-1, x.shape[1]))[:, 1].reshape(x.shape[1], len(x)).T
    naive = p[:, None] - moved
    fast = contributions(model, x, reference, p)
    assert (fast[p < 0.01] == 0).all() and (naive[p < 0.01] < 0.01).all()
    assert (fast[p >= 0.01] == naive[p >= 0.01]).all()
    assert (naive[(x == reference) & (p >= 0.01)[:, None]] == 0).all()  # the pairs skipped are exactly 0
    features = feature_set(products)
    for locale in ("en", "ja"):
        texts = factor_texts(x, fast, locale, features)
        assert texts == factor_texts(x, naive, locale, features)
        assert sum(t != "" for t in texts) >= 20
