"""Training the scores: churn and expansion on the labelled snapshots, deal wins on closed deals, one bundle."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from kizuna.core.connection import Connection
from kizuna.scoring.deals import DealEvaluation, closed_deals, train_deal_model
from kizuna.scoring.features import FEATURE_NAMES, TARGETS, choose_products, feature_set, load_training_rows, matrix
from kizuna.scoring.model import (
    Evaluation,
    KindChoice,
    KindSetting,
    ModelKind,
    choose_kind,
    evaluate,
    fit_calibrated,
    roc_auc,
    time_split,
)

# The naive baseline each score must beat: one signal a rep could read off the customer page.
BASELINES = {"churn": "usage_vs_3_month_average", "expansion": "plan_usage_ratio"}


@dataclass
class TrainedScore:
    """One target's final model (trained on every labelled month), its evaluation and its explanation reference."""

    name: str
    model: Any
    evaluation: Evaluation
    reference: np.ndarray
    products: tuple[str, ...] = ()
    base_rate: float = 0.0
    choice: KindChoice | None = None  # the kind and why (None in models stored before the choice was recorded)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in feature_set(self.products)]


@dataclass
class ModelBundle:
    """Everything one training run produced: what scoring needs, and what the model card reports."""

    version: str
    kind: KindSetting  # the scores_model setting it was trained under; each score's kind is in `kinds`
    seed: int
    as_of: date  # trained on what the warehouse knew on this day: it may score this day or later ones only
    trained_at: datetime
    first_month: date  # the labelled snapshot months it learned from
    last_month: date
    training_rows: int  # labelled rows read (a sample of customers beyond MAX_TRAINING_ROWS)
    labelled_rows: int  # labelled rows in the warehouse
    scores: dict[str, TrainedScore]
    deal_model: Any | None
    deal_evaluation: DealEvaluation | None
    sklearn_version: str = sklearn.__version__
    fixed_features: tuple[str, ...] = FEATURE_NAMES
    deal_choice: KindChoice | None = None

    @property
    def kinds(self) -> dict[str, KindChoice]:
        """Each score's kind and why (churn, expansion, deals), for the card and the report."""
        out = {name: trained.choice for name, trained in self.scores.items() if trained.choice}
        return out | ({"deals": self.deal_choice} if self.deal_choice else {})

    @property
    def feature_names(self) -> list[str]:
        return self.scores["churn"].feature_names

    @property
    def evaluations(self) -> dict[str, Evaluation]:
        return {name: trained.evaluation for name, trained in self.scores.items()}


def train_score(
    labelled: pd.DataFrame,
    name: str,
    kind: KindSetting,
    seed: int,
    validation_months: int,
    inputs: tuple[tuple[str, ...], np.ndarray] | None = None,
) -> TrainedScore:
    """Evaluate on the later labelled months with a model trained on the earlier ones, then refit on all of them.
    With `kind` auto, each candidate kind is evaluated so and the better one refit (model.choose_kind).
    `inputs`: the product inputs and the labelled rows' matrix, when the caller has them (both scores share one)."""
    target = TARGETS[name]
    labelled = labelled.reset_index(drop=True)
    split = time_split(labelled["snapshot_on"], validation_months)
    train = labelled["snapshot_on"].isin(split.train_months).to_numpy()
    if inputs is None:
        products = choose_products(labelled)
        inputs = products, matrix(labelled, products)
    products, x = inputs
    y, groups = labelled[target].astype(int).to_numpy(), labelled["customer_id"].to_numpy()
    predictions: dict[str, np.ndarray] = {}

    def validate(candidate: ModelKind) -> float:
        model = fit_calibrated(x[train], y[train], groups[train], candidate, seed)
        predictions[candidate] = model.predict_proba(x[~train])[:, 1]
        return roc_auc(y[~train], predictions[candidate])

    choice = choose_kind(kind, validate)
    p = predictions[choice.kind]
    baseline = labelled[BASELINES[name]].to_numpy(dtype="float64", na_value=np.nan)[~train]
    baseline = np.nan_to_num(-baseline if name == "churn" else baseline, nan=0.0)
    evaluation = evaluate(target, split, y[train], y[~train], p, BASELINES[name], baseline)
    final = fit_calibrated(x, y, groups, choice.kind, seed)
    return TrainedScore(name, final, evaluation, _medians(x), products, float(y.mean()), choice)


def _medians(x: np.ndarray) -> np.ndarray:
    """The explanation reference per input; 0 for an input no training row has (it is never used)."""
    observed = ~np.isnan(x).all(axis=0)
    out = np.zeros(x.shape[1])
    out[observed] = np.nanmedian(x[:, observed], axis=0)
    return out


def train_scores(
    labelled: pd.DataFrame,
    kind: KindSetting,
    seed: int,
    validation_months: int,
    inputs: tuple[tuple[str, ...], np.ndarray] | None = None,
) -> dict[str, TrainedScore]:
    """Churn and expansion, each evaluated on the later months and refit on all labelled rows. `inputs`: the
    product inputs and matrix when the caller built them (see fit_inputs); then `labelled` needs FIT_COLUMNS only."""
    labelled = labelled.reset_index(drop=True)
    if inputs is None:
        products = choose_products(labelled)
        inputs = products, matrix(labelled, products)
    return {name: train_score(labelled, name, kind, seed, validation_months, inputs) for name in TARGETS}


# What the fits and the evaluation read from the labelled rows besides the matrix: who, when, outcomes, baselines.
FIT_COLUMNS = ("customer_id", "snapshot_on", *TARGETS.values(), *BASELINES.values())


def fit_inputs(labelled: pd.DataFrame) -> tuple[pd.DataFrame, tuple[tuple[str, ...], np.ndarray]]:
    """The labelled rows' product inputs and matrix, and the rows cut to FIT_COLUMNS (a copy: once the caller lets
    go of the full frame, its feature columns, already in the matrix, are freed during the fits)."""
    products = choose_products(labelled)
    inputs = products, matrix(labelled, products)
    return labelled.loc[:, list(FIT_COLUMNS)].copy(), inputs


def model_version(
    kind: KindSetting, churn_kind: ModelKind, seed: int, labelled: pd.DataFrame, feature_names: list[str], as_of: date
) -> str:
    """Names the model by churn's kind, its training window and a digest of what shaped it (the setting, features,
    seed, library, the day it was trained as of: the deal model learns from every deal closed by then)."""
    window = f"{min(labelled['snapshot_on']):%Y%m}-{max(labelled['snapshot_on']):%Y%m}"
    digest = hashlib.sha256(
        json.dumps([kind, seed, feature_names, sklearn.__version__, len(labelled), as_of.isoformat()]).encode()
    ).hexdigest()[:8]
    return f"{churn_kind}-{window}-{digest}"


def train_models(
    connection: Callable[[], AbstractContextManager[Connection]],
    as_of: date,
    kind: KindSetting,
    seed: int,
    validation_months: int,
    trained_at: datetime,
) -> ModelBundle:
    """Train churn, expansion and deal wins on the warehouse's history as of `as_of` (the features dbt built).

    Each read opens its own connection (`connection()`) and closes it before the fits, and each input is dropped
    once its models are fit: DuckDB's buffers, the labelled snapshots and the closed deals are never held at
    once, which kept the first run at 1M customers above 4 GB (docs/scores.md, "Memory")."""
    with connection() as con:
        labelled, labelled_rows = load_training_rows(con, seed)
    labelled, inputs = fit_inputs(labelled)
    scores = train_scores(labelled, kind, seed, validation_months, inputs)
    del inputs
    churn_kind = scores["churn"].choice.kind if scores["churn"].choice else "gbm"
    version = model_version(kind, churn_kind, seed, labelled, scores["churn"].feature_names, as_of)
    first_month, last_month, training_rows = min(labelled["snapshot_on"]), max(labelled["snapshot_on"]), len(labelled)
    del labelled
    with connection() as con:
        closed = closed_deals(con, as_of)
    deal_model, deal_evaluation, deal_choice = train_deal_model(closed, kind, seed)
    return ModelBundle(
        version=version,
        kind=kind,
        seed=seed,
        as_of=as_of,
        trained_at=trained_at,
        first_month=first_month,
        last_month=last_month,
        training_rows=training_rows,
        labelled_rows=labelled_rows,
        scores=scores,
        deal_model=deal_model,
        deal_evaluation=deal_evaluation,
        deal_choice=deal_choice,
    )
