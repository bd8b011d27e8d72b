"""Per-customer factors in plain words: how much each feature moves the probability away from a typical customer."""

from __future__ import annotations

from typing import Any

import numpy as np

from kizuna.scoring.features import FEATURES, Feature

SEPARATOR = {"en": "; ", "ja": "、"}


MIN_EFFECT = 0.01
CHUNK_ROWS = 20_000


def contributions(
    model: Any, x: np.ndarray, reference: np.ndarray, probability: np.ndarray, floor: float = MIN_EFFECT
) -> np.ndarray:
    """p(x) - p(x with feature j set to the training median), per row and feature: cheap, model-agnostic, additive
    enough to rank factors. Shape (rows, features).

    Rows whose probability is below `floor` are not explained (all 0); with the default floor that loses nothing,
    as no feature moves a probability down by more than the probability itself. A value already equal to the
    median changes nothing, so its effect is exactly 0 without asking the model. Rows go through it in chunks.
    """
    rows, width = x.shape
    effects = np.zeros((rows, width))
    for start in range(0, rows, CHUNK_ROWS):
        index = start + np.flatnonzero(probability[start : start + CHUNK_ROWS] >= floor)
        chunk = x[index]
        same = (chunk == reference) | (np.isnan(chunk) & np.isnan(reference))
        row, column = np.nonzero(~same)
        if len(row) == 0:
            continue
        swapped = chunk[row]
        swapped[np.arange(len(row)), column] = reference[column]
        effects[index[row], column] = probability[index[row]] - model.predict_proba(swapped)[:, 1]
    return effects


def factor_texts(
    x: np.ndarray,
    effects: np.ndarray,
    locale: str,
    features: tuple[Feature, ...] = FEATURES,
    *,
    top: int = 3,
    min_effect: float = MIN_EFFECT,
) -> list[str]:
    """The `top` features that raise the probability most (by at least min_effect), as one line per row.

    The ranking is one sort of all explained rows at once; a phrase is made once per (feature, value) and reused
    (most values repeat: counts, days, 0/1 products)."""
    texts = [""] * x.shape[0]
    rows = np.flatnonzero((effects >= min_effect).any(axis=1))
    if not len(rows):
        return texts
    explained = effects[rows]
    order = np.argsort(-explained, axis=1, kind="stable")[:, :top]
    strong = (np.take_along_axis(explained, order, axis=1) >= min_effect).tolist()
    values = np.take_along_axis(x[rows], order, axis=1).tolist()
    separator = SEPARATOR[locale]
    phrases: dict[tuple[int, float], str] = {}
    for i, row_order, row_strong, row_values in zip(rows.tolist(), order.tolist(), strong, values, strict=True):
        parts = []
        for j, is_strong, value in zip(row_order, row_strong, row_values, strict=True):
            if not is_strong:
                continue
            phrase = phrases.get((j, value))
            if phrase is None:
                phrase = phrases[(j, value)] = features[j].phrase(value, locale)
            if phrase:
                parts.append(phrase)
        texts[i] = separator.join(parts)
    return texts
