"""The scoring step: train on the warehouse's history, score the as-of snapshot, write the two marts atomically."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import sklearn
from threadpoolctl import threadpool_limits

from kizuna.scoring.deals import DealEvaluation, forecast_deals
from kizuna.scoring.explain import MIN_EFFECT, contributions, factor_texts
from kizuna.scoring.features import (
    TARGETS,
    choose_products,
    feature_set,
    load_scoring_rows,
    load_training_rows,
    matrix,
)
from kizuna.scoring.model import Evaluation, ModelKind, evaluate, fit_calibrated, time_split
from kizuna.settings import Settings
from kizuna.warehouse import connect

log = logging.getLogger(__name__)

MARTS_SCHEMA = "marts"
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

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in feature_set(self.products)]


@dataclass
class ScoreResult:
    as_of: date
    model_version: str
    customers_scored: int
    deals_forecast: int
    evaluations: dict[str, Evaluation]
    deal_evaluation: DealEvaluation | None
    report_path: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)


def train_score(
    labelled: pd.DataFrame,
    name: str,
    kind: ModelKind,
    seed: int,
    validation_months: int,
    inputs: tuple[tuple[str, ...], np.ndarray] | None = None,
) -> TrainedScore:
    """Evaluate on the later labelled months with a model trained on the earlier ones, then refit on all of them.
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
    model = fit_calibrated(x[train], y[train], groups[train], kind, seed)
    p = model.predict_proba(x[~train])[:, 1]
    baseline = labelled[BASELINES[name]].to_numpy(dtype="float64", na_value=np.nan)[~train]
    baseline = np.nan_to_num(-baseline if name == "churn" else baseline, nan=0.0)
    evaluation = evaluate(target, split, y[train], y[~train], p, BASELINES[name], baseline)
    final = fit_calibrated(x, y, groups, kind, seed)
    return TrainedScore(name, final, evaluation, _medians(x), products, float(y.mean()))


def _medians(x: np.ndarray) -> np.ndarray:
    """The explanation reference per input; 0 for an input no training row has (it is never used)."""
    observed = ~np.isnan(x).all(axis=0)
    out = np.zeros(x.shape[1])
    out[observed] = np.nanmedian(x[:, observed], axis=0)
    return out


def train_scores(labelled: pd.DataFrame, kind: ModelKind, seed: int, validation_months: int) -> dict[str, TrainedScore]:
    """Churn and expansion, each evaluated on the later months and refit on all labelled rows."""
    labelled = labelled.reset_index(drop=True)
    products = choose_products(labelled)
    inputs = products, matrix(labelled, products)
    return {name: train_score(labelled, name, kind, seed, validation_months, inputs) for name in TARGETS}


def model_version(kind: ModelKind, seed: int, labelled: pd.DataFrame, feature_names: list[str]) -> str:
    """Names the model by its training window and a digest of what shaped it (features, seed, library)."""
    window = f"{min(labelled['snapshot_on']):%Y%m}-{max(labelled['snapshot_on']):%Y%m}"
    digest = hashlib.sha256(
        json.dumps([kind, seed, feature_names, sklearn.__version__, len(labelled)]).encode()
    ).hexdigest()[:8]
    return f"{kind}-{window}-{digest}"


def score_customers(rows: pd.DataFrame, scores: dict[str, TrainedScore]) -> pd.DataFrame:
    """One row per customer of the scoring snapshot: probabilities and factor lines in both languages."""
    rows = rows.reset_index(drop=True)
    out = pd.DataFrame({"customer_id": rows["customer_id"], "as_of": rows["snapshot_on"]})
    for name, column in (("churn", "churn_risk"), ("expansion", "expansion_propensity")):
        trained = scores[name]
        x = matrix(rows, trained.products)
        probability = trained.model.predict_proba(x)[:, 1] if len(rows) else np.zeros(0)
        out[column] = probability
        # factors for customers at least as likely as the average one (docs/scores.md, Explanations)
        floor = max(MIN_EFFECT, trained.base_rate)
        effects = contributions(trained.model, x, trained.reference, probability, floor)
        for locale in ("ja", "en"):
            out[f"{name}_factors_{locale}"] = factor_texts(x, effects, locale, feature_set(trained.products))
    return out


def write_marts(con: duckdb.DuckDBPyConnection, customers: pd.DataFrame, deals: pd.DataFrame) -> None:
    """Replace marts.customer_scores and marts.deal_forecasts together: readers see both old or both new."""
    con.register("customer_scores_frame", customers)
    con.register("deal_forecasts_frame", deals)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {MARTS_SCHEMA}")
        con.execute(
            f"""CREATE OR REPLACE TABLE {MARTS_SCHEMA}.customer_scores AS
            SELECT CAST(customer_id AS VARCHAR) AS customer_id, CAST(as_of AS DATE) AS as_of,
                   CAST(churn_risk AS DOUBLE) AS churn_risk, CAST(expansion_propensity AS DOUBLE) AS expansion_propensity,
                   churn_factors_ja, churn_factors_en, expansion_factors_ja, expansion_factors_en,
                   model_version, CAST(scored_at AS TIMESTAMP) AS scored_at
            FROM customer_scores_frame ORDER BY customer_id"""
        )
        con.execute(
            f"""CREATE OR REPLACE TABLE {MARTS_SCHEMA}.deal_forecasts AS
            SELECT CAST(deal_id AS VARCHAR) AS deal_id, CAST(customer_id AS VARCHAR) AS customer_id, deal_type, stage,
                   CAST(amount AS DOUBLE) AS amount, CAST(created_at AS TIMESTAMP) AS created_at,
                   CAST(win_probability AS DOUBLE) AS win_probability,
                   CAST(expected_close_month AS DATE) AS expected_close_month,
                   CAST(expected_amount AS DOUBLE) AS expected_amount,
                   CAST(last_activity_on AS DATE) AS last_activity_on,
                   CAST(days_since_last_activity AS BIGINT) AS days_since_last_activity, activity_band,
                   next_action_ja, next_action_en, model_version, CAST(as_of AS DATE) AS as_of,
                   CAST(scored_at AS TIMESTAMP) AS scored_at
            FROM deal_forecasts_frame ORDER BY deal_id"""
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("customer_scores_frame")
        con.unregister("deal_forecasts_frame")


def score_warehouse(settings: Settings, as_of: date, *, scored_at: datetime | None = None) -> ScoreResult:
    """Train churn and expansion scores on the history dbt built, score the as-of customers and open deals, and
    write marts.customer_scores and marts.deal_forecasts; the evaluation goes to var/scores/<model_version>.json."""
    kind, seed = settings.scores_model, settings.scores_seed
    scored_at = scored_at or datetime.now(UTC).replace(tzinfo=None)
    with threadpool_limits(limits=settings.scores_threads), connect(settings.warehouse) as con:
        labelled, _ = load_training_rows(con, seed)
        scoring = load_scoring_rows(con)
        if len(scoring) and scoring["snapshot_on"].iloc[0] != as_of:
            raise ValueError(
                f"the warehouse's features are as of {scoring['snapshot_on'].iloc[0]}, not {as_of}: run `kizuna run "
                f"--as-of {as_of}` (or dbt build with that as_of) before scoring"
            )
        scores = train_scores(labelled, kind, seed, settings.scores_validation_months)
        version = model_version(kind, seed, labelled, scores["churn"].feature_names)
        customers = score_customers(scoring, scores)
        customers["model_version"], customers["scored_at"] = version, scored_at
        deals, deal_evaluation = forecast_deals(con, as_of, kind, seed)
        deals["model_version"], deals["as_of"], deals["scored_at"] = version, as_of, scored_at
        write_marts(con, customers, deals)
    result = ScoreResult(
        as_of, version, len(customers), len(deals), {n: s.evaluation for n, s in scores.items()}, deal_evaluation
    )
    result.features = scores["churn"].feature_names
    result.report_path = write_report(settings.var_dir / "scores", result)
    log.info("scores %s: %d customers, %d open deals", version, len(customers), len(deals))
    return result


def write_report(directory: Path, result: ScoreResult) -> Path:
    """The training run's evaluation, feature list and window, next to the model version it names."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.model_version}.json"
    body = {
        "model_version": result.model_version,
        "as_of": result.as_of.isoformat(),
        "features": result.features,
        "sklearn": sklearn.__version__,
        "evaluations": {n: e.as_dict() for n, e in result.evaluations.items()},
        "deals": result.deal_evaluation.__dict__ if result.deal_evaluation else None,
    }
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return path
