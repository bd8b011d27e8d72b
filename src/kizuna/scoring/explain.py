"""Per-customer factors in plain words: how much each feature moves the probability away from a typical customer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kizuna.scoring.features import FEATURES, Feature

SEPARATOR = {"en": "; ", "ja": "、"}
LOCALES = ("ja", "en")


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
    value) and locale (most values repeat: counts, days, 0/1 products; -0.0 and 0.0 read alike, NaN as missing),
    and the lines are joined from a table of phrases."""
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
