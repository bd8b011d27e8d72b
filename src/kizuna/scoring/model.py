"""Calibrated classifiers on a time-based split, and their evaluation: ROC AUC, PR AUC, Brier, reliability, lift."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ModelKind = Literal["gbm", "logistic"]
# The scores_model setting: one kind forced, or `auto` (each score's kind chosen by validation, see choose_kind).
KindSetting = Literal["auto", "gbm", "logistic"]
# The candidates of `auto`, simplest first: a tie goes to the first.
CANDIDATE_KINDS: tuple[ModelKind, ...] = ("logistic", "gbm")
# gbm must beat logistic's validation ROC AUC by more than this to be chosen: a smaller gain is below the
# precision the report prints (three decimals), and the simpler model extrapolates more gently.
TIE_MARGIN = 0.001
CALIBRATION_FOLDS = 3
# Up to this many training rows, CALIBRATION_FOLDS models are fit on folds grouped by customer and their
# calibrated probabilities averaged: on small data the average is clearly better (Telco sample, gbm: ROC AUC
# 0.842 against 0.836 for one model). Beyond it, one model is fit on 3/4 of the customers and calibrated on the
# other 1/4: 2.7 times less training than three folds and a third of the prediction work for scoring and
# explanations, which dominate at 1M customers (docs/scores.md, bench/scores).
ENSEMBLE_MAX_ROWS = 200_000
CALIBRATION_SHARE = 0.25


@dataclass(frozen=True)
class TimeSplit:
    """Training months strictly before validation months; both are snapshot dates with complete labels."""

    train_months: list[date]
    validation_months: list[date]


class NotEnoughHistoryError(ValueError):
    """The warehouse's history cannot train a score yet (too few months, or only one outcome)."""


def time_split(snapshots: pd.Series, validation_months: int) -> TimeSplit:
    """The last `validation_months` labelled snapshots validate; every earlier one trains."""
    months = sorted(set(snapshots))
    if len(months) < validation_months + 2:
        raise NotEnoughHistoryError(
            f"only {len(months)} snapshot months with complete 90-day outcomes; need at least {validation_months + 2} "
            "(settings.scores_validation_months validate, at least two train): more history is needed"
        )
    return TimeSplit(months[:-validation_months], months[-validation_months:])


class ObservedColumns(TransformerMixin, BaseEstimator):
    """Keeps the columns with at least one value in training. A warehouse without an optional source (no usage
    file, no activities) leaves those features empty for everyone, and gradient boosting cannot bin an empty
    column; an empty column carries nothing to learn, so dropping it changes no prediction."""

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> ObservedColumns:
        self.keep_ = ~np.isnan(x).all(axis=0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return x[:, self.keep_]


def new_classifier(kind: ModelKind, seed: int) -> Any:
    """The base model before calibration: gradient boosting, or standardised L2 logistic regression."""
    if kind == "logistic":
        return make_pipeline(
            ObservedColumns(),
            SimpleImputer(strategy="median", add_indicator=True),
            StandardScaler(),
            LogisticRegression(C=0.3, max_iter=2000, random_state=seed),
        )
    return make_pipeline(
        ObservedColumns(),
        HistGradientBoostingClassifier(
            max_iter=120,
            learning_rate=0.06,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        ),
    )


@dataclass(frozen=True)
class KindChoice:
    """Which kind one score uses, and why: the setting, each evaluated kind's validation ROC AUC, the rule."""

    kind: ModelKind
    setting: KindSetting
    roc_auc: dict[str, float]  # per evaluated kind, on the validation rows (NaN: one outcome only there)
    reason: str


def choose_kind(setting: KindSetting, validate: Callable[[ModelKind], float] | None) -> KindChoice:
    """The kind a score trains with. A forced setting is used as it is (`validate` runs for its figure only);
    `auto` validates each candidate (`validate(kind)`: the ROC AUC on the validation rows of a model fit on
    the training rows only) and takes gbm only when it beats logistic by more than TIE_MARGIN; a tie, or no
    validation possible (`validate` None, or one outcome only in the validation rows), takes logistic."""
    if setting != "auto":
        figure: dict[str, float] = {setting: validate(setting)} if validate else {}
        return KindChoice(setting, setting, figure, f"forced by scores_model={setting}")
    if validate is None:
        return KindChoice("logistic", setting, {}, "no validation rows with both outcomes: the simpler logistic")
    aucs: dict[str, float] = {kind: validate(kind) for kind in CANDIDATE_KINDS}
    gbm, logistic = aucs["gbm"], aucs["logistic"]
    if gbm != gbm or logistic != logistic:  # NaN
        return KindChoice("logistic", setting, aucs, "one outcome only in the validation rows: the simpler logistic")
    if gbm - logistic > TIE_MARGIN:
        reason = f"gbm's validation ROC AUC {gbm:.4f} beats logistic's {logistic:.4f} by more than {TIE_MARGIN}"
        return KindChoice("gbm", setting, aucs, reason)
    if logistic > gbm:
        reason = f"logistic's validation ROC AUC {logistic:.4f} beats gbm's {gbm:.4f}"
    else:
        reason = (
            f"gbm's validation ROC AUC {gbm:.4f} is within {TIE_MARGIN} of logistic's {logistic:.4f}: "
            "a tie goes to the simpler logistic"
        )
    return KindChoice("logistic", setting, aucs, reason)


@contextmanager
def interrupts_kept() -> Iterator[None]:
    """An interrupt that lands inside a fit leaves it as itself, not disguised as scikit-learn refusing the data.

    numpy reads a structured buffer's format with Python code (gradient boosting has it read one per tree, 2,160
    times for one training on the demo) and reports whatever is raised meanwhile as "ValueError: '…' is not a
    valid PEP 3118 buffer format string", the real exception as its cause. A signal handled there (Ctrl-C,
    Prefect's TerminationSignal when a run is cancelled, pytest-timeout's alarm) would otherwise fail the step as
    a data error: Prefect marks the run Failed instead of Cancelled or Crashed and alerts on data that is fine.
    Interrupts are BaseExceptions that are not Exceptions; numpy's own parse errors are Exceptions and stay."""
    try:
        yield
    except Exception as exc:
        interrupt = exc.__cause__
        if interrupt is None or isinstance(interrupt, Exception):
            raise
        interrupt.add_note(f"a library had turned it into {type(exc).__name__}: {exc}")
        raise interrupt from None


def fit_calibrated(x: np.ndarray, y: np.ndarray, groups: np.ndarray, kind: ModelKind, seed: int) -> Any:
    """Fit and calibrate (Platt/sigmoid) on customers the model did not learn from: grouped folds averaged
    (up to ENSEMBLE_MAX_ROWS rows), else one model calibrated on a held-out quarter of the customers."""
    with interrupts_kept():
        return _fit_calibrated(x, y, groups, kind, seed)


def _fit_calibrated(x: np.ndarray, y: np.ndarray, groups: np.ndarray, kind: ModelKind, seed: int) -> Any:
    if y.min() == y.max():
        raise NotEnoughHistoryError(
            "the training months hold only one outcome (all churned or none): cannot train a classifier"
        )
    if len(y) <= ENSEMBLE_MAX_ROWS:
        folds = list(GroupKFold(n_splits=CALIBRATION_FOLDS).split(x, y, groups))
        model = CalibratedClassifierCV(new_classifier(kind, seed), method="sigmoid", cv=folds)
        return model.fit(x, y)
    split = GroupShuffleSplit(n_splits=1, test_size=CALIBRATION_SHARE, random_state=seed)
    fit_rows, calibration_rows = next(split.split(x, y, groups))
    if len(set(y[fit_rows].tolist())) < 2 or len(set(y[calibration_rows].tolist())) < 2:
        raise NotEnoughHistoryError("one outcome is too rare to both fit and calibrate a classifier")
    base = new_classifier(kind, seed).fit(x[fit_rows], y[fit_rows])
    calibrated = CalibratedClassifierCV(FrozenEstimator(base), method="sigmoid")
    return calibrated.fit(x[calibration_rows], y[calibration_rows])


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Predicted against observed per decile of predicted probability (ties stay in one decile)."""
    order = np.argsort(p, kind="stable")
    rows = []
    for index, chunk in enumerate(np.array_split(order, bins), start=1):
        if len(chunk) == 0:
            continue
        rows.append(
            {
                "decile": float(index),
                "rows": float(len(chunk)),
                "predicted_min": float(p[chunk].min()),
                "predicted_max": float(p[chunk].max()),
                "predicted_mean": float(p[chunk].mean()),
                "observed_rate": float(y[chunk].mean()),
            }
        )
    return rows


BANDS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def reliability_bands(y: np.ndarray, p: np.ndarray, edges: tuple[float, ...] = BANDS) -> list[dict[str, float]]:
    """Predicted against observed per fixed probability band: readable where deciles crowd rare outcomes at 0."""
    rows = []
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    for band in range(len(edges) - 1):
        inside = index == band
        if inside.any():
            rows.append(
                {
                    "band_from": edges[band],
                    "band_to": edges[band + 1],
                    "rows": float(inside.sum()),
                    "predicted_mean": float(p[inside].mean()),
                    "observed_rate": float(y[inside].mean()),
                }
            )
    return rows


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Outcome rate among the 10% highest scores, over the overall rate."""
    base = float(y.mean())
    if base == 0:
        return float("nan")
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    return float(y[top].mean()) / base


@dataclass
class Evaluation:
    """Figures of one score on the validation months, and of a naive baseline on the same rows."""

    target: str
    split: TimeSplit
    train_rows: int
    validation_rows: int
    base_rate_train: float
    base_rate_validation: float
    roc_auc: float
    pr_auc: float
    brier: float
    brier_of_base_rate: float
    top_decile_lift: float
    baseline_name: str
    baseline_roc_auc: float
    reliability: list[dict[str, float]] = field(default_factory=list)
    reliability_by_band: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["split"] = {
            "train_months": [m.isoformat() for m in self.split.train_months],
            "validation_months": [m.isoformat() for m in self.split.validation_months],
        }
        return out


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC, or NaN when the rows hold one outcome only (nothing to rank)."""
    return float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else float("nan")


def evaluate(
    target: str,
    split: TimeSplit,
    y_train: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    baseline_name: str,
    baseline: np.ndarray,
) -> Evaluation:
    both = len(set(y.tolist())) == 2
    return Evaluation(
        target=target,
        split=split,
        train_rows=len(y_train),
        validation_rows=len(y),
        base_rate_train=float(y_train.mean()),
        base_rate_validation=float(y.mean()),
        roc_auc=roc_auc(y, p),
        pr_auc=float(average_precision_score(y, p)) if both else float("nan"),
        brier=float(brier_score_loss(y, p)),
        brier_of_base_rate=float(brier_score_loss(y, np.full(len(y), y_train.mean()))),
        top_decile_lift=top_decile_lift(y, p),
        baseline_name=baseline_name,
        baseline_roc_auc=float(roc_auc_score(y, baseline)) if both else float("nan"),
        reliability=reliability_table(y, p),
        reliability_by_band=reliability_bands(y, p),
    )
