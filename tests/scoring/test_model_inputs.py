"""Model inputs on small frames: product-mix inputs, features a warehouse lacks, the explanation shortcut."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from kizuna.scoring.explain import SEPARATOR, contributions, factor_lines
from kizuna.scoring.features import (
    FEATURE_NAMES,
    FEATURES,
    PRODUCT_FEATURES_MAX,
    Feature,
    choose_products,
    feature_set,
    matrix,
)
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
        texts = factor_lines(x, fast, (locale,), features)[locale]
        assert texts == factor_lines(x, naive, (locale,), features)[locale]
        assert sum(t != "" for t in texts) >= 20


def row_by_row(x: np.ndarray, effects: np.ndarray, locale: str, features: tuple[Feature, ...]) -> list[str]:
    """The factor lines as written before factor_lines: one row at a time, a phrase remembered per (feature, value)
    (so 0.0 and -0.0 read as the first of them met)."""
    texts = [""] * x.shape[0]
    rows = np.flatnonzero((effects >= 0.01).any(axis=1))
    explained = effects[rows]
    order = np.argsort(-explained, axis=1, kind="stable")[:, :3]
    strong = (np.take_along_axis(explained, order, axis=1) >= 0.01).tolist()
    values = np.take_along_axis(x[rows], order, axis=1).tolist()
    phrases: dict[tuple[int, float], str] = {}
    for i, row_order, row_strong, row_values in zip(rows.tolist(), order.tolist(), strong, values, strict=True):
        parts = []
        for j, is_strong, value in zip(row_order, row_strong, row_values, strict=True):
            if is_strong:
                phrase = phrases.get((j, value))
                if phrase is None:
                    phrase = phrases[(j, value)] = features[j].phrase(value, locale)
                if phrase:
                    parts.append(phrase)
        texts[i] = SEPARATOR[locale].join(parts)
    return texts


def test_factor_lines_read_as_one_row_at_a_time() -> None:
    """Ties keep the feature order, missing values read as missing (or not at all where a feature has no words
    for it), fewer than three strong factors, none, one locale or both."""
    features = FEATURES[:6]  # usage (missing: words), plan, days, touches (missing: no words), conversations, tickets
    nan = np.nan
    x = np.array(
        [
            [0.25, 0.5, 10.0, 3.0, 1.0, 2.0],
            [nan, 0.5, nan, nan, 1.0, 2.0],  # missing usage reads "no usage history", missing touches nothing
            [0.0, 0.5, -0.0, 3.0, 1.0, 0.0],
            [0.0, 0.5, 0.0, 3.0, 1.0, 0.0],  # 0.0 after -0.0: one phrase for both ("0 days", never "-0 days")
            [0.25, 1.25, 30.0, 3.0, 4.0, 2.0],
            [0.1, 0.2, 3.0, 4.0, 5.0, 6.0],  # nothing strong
        ]
    )
    effects = np.array(
        [
            [0.05, 0.05, 0.05, 0.05, 0.0, 0.0],  # a four-way tie: the first three features
            [0.20, 0.01, 0.30, 0.40, 0.0, 0.0],  # touches missing ranks first and reads as nothing
            [0.0, 0.0, 0.02, 0.0, 0.0, 0.009],  # one strong factor; the next is under the floor
            [0.0, 0.03, 0.02, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.01, 0.02, 0.03, 0.04],  # four strong: the top three
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    both = factor_lines(x, effects, ("ja", "en"), features)
    for locale in ("ja", "en"):
        assert (
            both[locale]
            == row_by_row(x, effects, locale, features)
            == factor_lines(x, effects, (locale,), features)[locale]
        )
    assert both["en"][:4] == [
        "usage up 25% against its 3-month average; plan at 50% of its limit; no touch for 10 days",
        "never touched; no usage history",
        "no touch for 0 days",
        "plan at 50% of its limit; no touch for 0 days",
    ]
    assert both["en"][4] == "2 support tickets in 90 days; 4 conversations in 90 days; 3 touches in 90 days"
    assert both["en"][5] == ""


def test_counts_agree_with_their_number_and_never_read_minus_zero() -> None:
    """A marketer reads these lines in call lists and emails: "1 open renewal deal", not "1 open renewal deals",
    and a rounded -0.2 days as "0 days", not "-0 days"."""
    by_name = {f.name: f for f in FEATURES}

    def en(name: str, value: float) -> str:
        return by_name[name].phrase(value, "en")

    assert en("open_renewal_deals", 1.0) == "1 open renewal deal"
    assert en("open_renewal_deals", 2.0) == "2 open renewal deals"
    assert en("open_expansion_deals", 1.0) == "1 open upsell or cross-sell deal"
    assert en("touches_last_90_days", 1.0) == "1 touch in 90 days"
    assert en("touches_last_90_days", 0.0) == "0 touches in 90 days"
    assert en("tickets_last_90_days", 1.0) == "1 support ticket in 90 days"
    assert en("tenure_months", 1.0) == "customer for 1 month"
    assert en("days_to_renewal", 0.6) == "renewal in 1 day"  # as shown: rounded to 1
    assert en("employee_count", 1.0) == "1 employee"
    assert en("employee_count", 1200.0) == "1,200 employees"
    assert en("product_count", 1.0) == "1 product held"
    assert en("days_since_last_touch", -0.2) == "no touch for 0 days"
    assert en("days_since_last_touch", -0.0) == "no touch for 0 days"
    assert by_name["days_since_last_touch"].phrase(-0.2, "ja") == "0日間接触なし"
    assert by_name["open_renewal_deals"].phrase(1.0, "ja") == "更新商談1件進行中"
