"""Per-customer factors in plain words: how much each feature moves the probability away from a typical customer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from kizuna.scoring.features import FEATURES, Feature
from kizuna.scoring.model import ObservedColumns

SEPARATOR = {"en": "; ", "ja": "、"}
LOCALES = ("ja", "en")


MIN_EFFECT = 0.01
CHUNK_ROWS = 20_000


def _tree_models(model: Any) -> list[tuple[np.ndarray, HistGradientBoostingClassifier]] | None:
    """The gradient-boosting models behind a calibrated model, each with the input columns it reads (an index into
    the model's input per column of its own); None for any other model (logistic, or a shape not known here)."""
    if not isinstance(model, CalibratedClassifierCV) or not hasattr(model, "calibrated_classifiers_"):
        return None
    found = []
    for calibrated in model.calibrated_classifiers_:
        estimator = calibrated.estimator
        if isinstance(estimator, FrozenEstimator):
            estimator = estimator.estimator
        if not isinstance(estimator, Pipeline):
            return None
        *steps, last = [step for _, step in estimator.steps]
        if not isinstance(last, HistGradientBoostingClassifier) or not all(
            isinstance(s, ObservedColumns) for s in steps
        ):
            return None
        if getattr(last, "_preprocessor", None) is not None or np.any(getattr(last, "is_categorical_", None) or False):
            return None
        columns = np.arange(int(last.n_features_in_)) if not steps else np.flatnonzero(steps[0].keep_)
        if len(steps) > 1 or len(columns) != last.n_features_in_:
            return None
        found.append((columns, last))
    return found


def split_thresholds(model: Any, width: int) -> list[np.ndarray] | None:
    """Per input column, the sorted thresholds the model's trees split it on; None when the model is not gradient
    boosting (see unchanged_by_swap)."""
    trees = _tree_models(model)
    if trees is None:
        return None
    per_column: list[list[np.ndarray]] = [[] for _ in range(width)]
    for columns, booster in trees:
        for predictors in booster._predictors:
            for predictor in predictors:
                nodes = predictor.nodes[predictor.nodes["is_leaf"] == 0]
                if nodes["is_categorical"].any():
                    return None
                for feature in np.unique(nodes["feature_idx"]):
                    per_column[columns[feature]].append(nodes["num_threshold"][nodes["feature_idx"] == feature])
    return [np.unique(np.concatenate(t)) if t else np.zeros(0) for t in per_column]


def unchanged_by_swap(thresholds: list[np.ndarray], chunk: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per row and column: True where setting the column to its reference cannot change a gradient-boosting
    prediction. A tree sends a value left when it is <= the node's threshold (NaN: the node's own way), so two
    values with as many thresholds below them take the same path through every tree, the same leaves, the same
    sum: the swapped row's probability is the row's own, bit for bit, and its effect exactly 0."""
    same = np.zeros(chunk.shape, dtype=bool)
    for j, splits in enumerate(thresholds):
        column, ref = chunk[:, j], reference[j]
        if not len(splits):  # never split on: no value of it changes anything
            same[:, j] = True
            continue
        if np.isnan(ref):
            same[:, j] = np.isnan(column)
            continue
        bins = np.searchsorted(splits, column, side="left")
        same[:, j] = (bins == np.searchsorted(splits, ref, side="left")) & ~np.isnan(column)
    return same


def contributions(
    model: Any, x: np.ndarray, reference: np.ndarray, probability: np.ndarray, floor: float = MIN_EFFECT
) -> np.ndarray:
    """p(x) - p(x with feature j set to the training median), per row and feature: cheap, model-agnostic, additive
    enough to rank factors. Shape (rows, features).

    Rows whose probability is below `floor` are not explained (all 0); with the default floor that loses nothing,
    as no feature moves a probability down by more than the probability itself. A value already equal to the
    median changes nothing, so its effect is exactly 0 without asking the model; nor, for gradient boosting, does
    a value on the same side of every split on its feature as the median (unchanged_by_swap). Rows go through it
    in chunks.
    """
    rows, width = x.shape
    effects = np.zeros((rows, width))
    thresholds = split_thresholds(model, width)
    for start in range(0, rows, CHUNK_ROWS):
        index = start + np.flatnonzero(probability[start : start + CHUNK_ROWS] >= floor)
        chunk = x[index]
        same = (chunk == reference) | (np.isnan(chunk) & np.isnan(reference))
        if thresholds is not None:
            same |= unchanged_by_swap(thresholds, chunk, reference)
        row, column = np.nonzero(~same)
        if len(row) == 0:
            continue
        swapped = chunk[row]
        swapped[np.arange(len(row)), column] = reference[column]
        effects[index[row], column] = probability[index[row]] - model.predict_proba(swapped)[:, 1]
    return effects


def factor_lines(
    x: np.ndarray,
    effects: np.ndarray,
    locales: tuple[str, ...] = LOCALES,
    features: tuple[Feature, ...] = FEATURES,
    *,
    top: int = 3,
    min_effect: float = MIN_EFFECT,
) -> dict[str, list[str]]:
    """Per locale, the `top` features that raise the probability most (by at least min_effect), as one line per
    row; ties keep the input order.

    The ranking is one sort of all explained rows at once, for every locale; a phrase is made once per (feature,
    value) and locale (most values repeat: counts, days, 0/1 products; -0.0 reads as the first of 0.0 and -0.0
    met, NaN as missing), and the lines are joined from a table of phrases."""
    lines = {locale: [""] * x.shape[0] for locale in locales}
    rows = np.flatnonzero((effects >= min_effect).any(axis=1))
    if not len(rows):
        return lines
    explained = effects[rows]
    order = np.argsort(-explained, axis=1, kind="stable")[:, :top]
    strong = np.take_along_axis(explained, order, axis=1) >= min_effect
    values = np.take_along_axis(x[rows], order, axis=1)
    # the strong slots, row by row and in rank order: one phrase code per distinct (feature, value), numbered as
    # first met; code 0 is the empty phrase of a slot that is not strong
    slot_feature, slot_value = order[strong], values[strong]
    codes = np.zeros(order.shape, dtype=np.int64)
    slot_codes = np.empty(len(slot_feature), dtype=np.int64)
    distinct: list[tuple[int, list[float]]] = []
    next_code = 1
    for j in np.unique(slot_feature).tolist():
        of_j = slot_feature == j
        found, uniques = pd.factorize(slot_value[of_j], use_na_sentinel=False)
        slot_codes[of_j] = found + next_code
        distinct.append((j, np.asarray(uniques, dtype="float64").tolist()))
        next_code += len(uniques)
    codes[strong] = slot_codes
    for locale in locales:
        separator = SEPARATOR[locale]
        table = [""] + [features[j].phrase(value, locale) for j, uniques in distinct for value in uniques]
        phrases = np.asarray(table, dtype=object)[codes].tolist()
        out = lines[locale]
        for i, parts in zip(rows.tolist(), phrases, strict=True):
            out[i] = separator.join([p for p in parts if p])
    return lines


def factor_texts(
    x: np.ndarray,
    effects: np.ndarray,
    locale: str,
    features: tuple[Feature, ...] = FEATURES,
    *,
    top: int = 3,
    min_effect: float = MIN_EFFECT,
) -> list[str]:
    """The `top` features that raise the probability most (by at least min_effect), as one line per row."""
    return factor_lines(x, effects, (locale,), features, top=top, min_effect=min_effect)[locale]
