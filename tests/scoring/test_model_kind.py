"""The model's kind chosen by the time-based validation, on hand-built rows where one kind clearly wins."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from kizuna.scoring import store
from kizuna.scoring.features import FEATURE_NAMES, TARGETS
from kizuna.scoring.model import TIE_MARGIN, KindSetting, ModelKind, choose_kind
from kizuna.scoring.training import ModelBundle, TrainedScore, train_score

MONTHS = [dt.date(2026, month, 1) for month in range(1, 7)]  # validation: the last 3 (as scores_validation_months)
Signal = Callable[[pd.DataFrame, np.random.Generator], np.ndarray]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def linear(rows: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Churn rises smoothly with one input: what logistic regression is, and few rows leave gbm coarse."""
    odds = 1.6 * rows["usage_vs_3_month_average"] - 1.0
    return rng.random(len(rows)) < 1 / (1 + np.exp(-odds))


def interaction(rows: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Churn when exactly one of two inputs is high (XOR of thresholds): no line separates it, trees do."""
    crossed = (rows["plan_usage_ratio"] > 0) != (rows["tickets_last_90_days"] > 0)
    return np.where(rng.random(len(rows)) < 0.05, ~crossed, crossed)


def labelled(customers: int, signal: Signal, seed: int = 3) -> pd.DataFrame:
    """Each customer at each month, every feature drawn afresh, the churn label from `signal` (expansion: noise)."""
    rng = np.random.default_rng(seed)
    frames = []
    for month in MONTHS:
        rows = pd.DataFrame({name: rng.normal(size=customers) for name in FEATURE_NAMES})
        rows["customer_id"] = [f"C{i:05d}" for i in range(customers)]
        rows["snapshot_on"] = month
        rows["products_held"] = None
        rows[TARGETS["churn"]] = signal(rows, rng)
        rows[TARGETS["expansion"]] = rng.random(customers) < 0.2
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def churn(rows: pd.DataFrame, kind: KindSetting) -> TrainedScore:
    return train_score(rows, "churn", kind, seed=7, validation_months=3)


@pytest.mark.parametrize(
    ("customers", "signal", "winner"),
    [(60, linear, "logistic"), (400, interaction, "gbm")],
    ids=["linear-signal-few-rows-logistic", "threshold-interaction-gbm"],
)
def test_auto_chooses_the_kind_that_validates_better(customers: int, signal: Signal, winner: ModelKind) -> None:
    trained = churn(labelled(customers, signal), "auto")
    choice = trained.choice
    assert choice is not None and choice.kind == winner and choice.setting == "auto"
    loser = "gbm" if winner == "logistic" else "logistic"
    assert choice.roc_auc[winner] > choice.roc_auc[loser] + TIE_MARGIN
    assert choice.reason.startswith(f"{winner}'s validation ROC AUC {choice.roc_auc[winner]:.4f} beats {loser}'s")
    # the evaluation reported is the chosen kind's, on the validation months only (the last three)
    assert trained.evaluation.roc_auc == choice.roc_auc[winner]
    assert trained.evaluation.split.validation_months == MONTHS[3:]
    assert trained.evaluation.validation_rows == 3 * customers
    # and the final model is of that kind (a pipeline ending in LogisticRegression or gradient boosting)
    base = trained.model.calibrated_classifiers_[0].estimator
    assert (
        type(base.steps[-1][1]).__name__
        == {
            "logistic": "LogisticRegression",
            "gbm": "HistGradientBoostingClassifier",
        }[winner]
    )


@pytest.mark.parametrize("forced", ["gbm", "logistic"])
def test_the_setting_forces_a_kind_and_evaluates_only_it(forced: ModelKind) -> None:
    trained = churn(labelled(60, linear), forced)
    assert trained.choice is not None
    assert (trained.choice.kind, trained.choice.setting) == (forced, forced)
    assert list(trained.choice.roc_auc) == [forced] and trained.choice.reason == f"forced by scores_model={forced}"


@pytest.mark.parametrize(
    ("gbm", "logistic", "kind", "says"),
    [
        (0.9009, 0.9, "logistic", "a tie goes to the simpler logistic"),
        (0.9, 0.9, "logistic", "a tie goes to the simpler logistic"),
        (0.9011, 0.9, "gbm", "beats logistic's 0.9000 by more than 0.001"),
        (0.89, 0.9, "logistic", "logistic's validation ROC AUC 0.9000 beats gbm's 0.8900"),
        (float("nan"), float("nan"), "logistic", "one outcome only in the validation rows"),
    ],
    ids=["within-margin", "equal", "beyond-margin", "logistic-better", "one-outcome"],
)
def test_the_rule_ties_go_to_logistic(gbm: float, logistic: float, kind: str, says: str) -> None:
    figures = {"gbm": gbm, "logistic": logistic}
    choice = choose_kind("auto", figures.__getitem__)
    assert choice.kind == kind and says in choice.reason
    assert choose_kind("auto", None).kind == "logistic"  # nothing to validate on (e.g. deals of one outcome)


def test_the_stored_card_and_report_name_both_kinds_scores_and_the_reason(tmp_path: Path) -> None:
    rows = labelled(60, linear)
    scores = {name: train_score(rows, name, "auto", seed=7, validation_months=3) for name in TARGETS}
    bundle = ModelBundle(
        version="logistic-test",
        kind="auto",
        seed=7,
        as_of=dt.date(2026, 10, 1),
        trained_at=dt.datetime(2026, 10, 1, 6),
        first_month=MONTHS[0],
        last_month=MONTHS[-1],
        training_rows=len(rows),
        labelled_rows=len(rows),
        scores=scores,
        deal_model=None,
        deal_evaluation=None,
    )
    directory = store.save(tmp_path / "models", bundle)
    card = json.loads((directory / store.CARD_FILE).read_text(encoding="utf-8"))
    churn_choice = scores["churn"].choice
    assert churn_choice is not None
    assert card["kind"] == "auto"
    assert card["kinds"]["churn"] == {
        "kind": "logistic",
        "setting": "auto",
        "roc_auc": churn_choice.roc_auc,
        "reason": churn_choice.reason,
    }
    report = (directory / "report.md").read_text(encoding="utf-8")
    line = next(line for line in report.splitlines() if line.startswith("| churn | logistic |"))
    assert f"| {churn_choice.roc_auc['logistic']:.4f} | {churn_choice.roc_auc['gbm']:.4f} |" in line
    assert "beats gbm's" in line
    # the loaded bundle keeps the choice (the daily run reuses it without training)
    loaded = store.load(tmp_path / "models", "logistic-test").bundle
    assert loaded.kinds["churn"] == churn_choice
