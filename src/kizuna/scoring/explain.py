"""Per-customer factors in plain words: how much each feature moves the probability away from a typical customer."""

from __future__ import annotations

from typing import Any

import numpy as np

from kizuna.scoring.features import FEATURES

SEPARATOR = {"en": "; ", "ja": "、"}


def contributions(model: Any, x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """p(x) - p(x with feature j set to the training median), per row and feature: cheap, model-agnostic, additive
    enough to rank factors. Shape (rows, features)."""
    rows, width = x.shape
    if rows == 0:
        return np.zeros((0, width))
    base = model.predict_proba(x)[:, 1]
    swapped = np.repeat(x[None, :, :], width, axis=0)
    for j in range(width):
        swapped[j, :, j] = reference[j]
    moved = model.predict_proba(swapped.reshape(width * rows, width))[:, 1].reshape(width, rows)
    return base[None, :].T - moved.T


def factor_texts(
    x: np.ndarray, effects: np.ndarray, locale: str, *, top: int = 3, min_effect: float = 0.01
) -> list[str]:
    """The `top` features that raise the probability most (by at least min_effect), as one line per row."""
    texts = []
    order = np.argsort(-effects, axis=1, kind="stable")
    for i in range(x.shape[0]):
        parts = [FEATURES[j].phrase(float(x[i, j]), locale) for j in order[i, :top] if effects[i, j] >= min_effect]
        texts.append(SEPARATOR[locale].join(p for p in parts if p))
    return texts
