"""The scoring step: score the as-of snapshot with the current stored model (training one when there is none
that may score this day), and write the two marts atomically. The weekly train-scores flow keeps the model fresh."""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from kizuna.core.connection import Connection
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.scoring import store
from kizuna.scoring.deals import DealEvaluation, forecast_deals
from kizuna.scoring.explain import LOCALES, MIN_EFFECT, contributions, factor_lines
from kizuna.scoring.features import feature_set, load_scoring_rows, matrix
from kizuna.scoring.model import Evaluation
from kizuna.scoring.report import REPORT_FILE
from kizuna.scoring.training import ModelBundle, TrainedScore, train_models

log = logging.getLogger(__name__)

MARTS_SCHEMA = "marts"


@dataclass
class ScoreResult:
    as_of: date
    model_version: str
    customers_scored: int
    deals_forecast: int
    evaluations: dict[str, Evaluation]
    deal_evaluation: DealEvaluation | None
    report_path: Path | None = None
    features: list[str] = field(default_factory=list)
    trained: bool = False  # this run trained the model (none usable was stored); else it loaded one
    training_reason: str = ""
    model_as_of: date | None = None


def score_customers(rows: pd.DataFrame, scores: dict[str, TrainedScore]) -> pd.DataFrame:
    """One row per customer of the scoring snapshot: probabilities and factor lines in both languages."""
    rows = rows.reset_index(drop=True)
    out = pd.DataFrame({"customer_id": rows["customer_id"], "as_of": rows["snapshot_on"]})
    matrices: dict[tuple[str, ...], np.ndarray] = {}  # both scores usually chose the same products: one matrix
    for name, column in (("churn", "churn_risk"), ("expansion", "expansion_propensity")):
        trained = scores[name]
        x = matrices.get(trained.products)
        if x is None:
            x = matrices[trained.products] = matrix(rows, trained.products)
        probability = trained.model.predict_proba(x)[:, 1] if len(rows) else np.zeros(0)
        out[column] = probability
        # factors for customers at least as likely as the average one (docs/scores.md, Explanations)
        floor = max(MIN_EFFECT, trained.base_rate)
        effects = contributions(trained.model, x, trained.reference, probability, floor)
        for locale, lines in factor_lines(x, effects, LOCALES, feature_set(trained.products)).items():
            out[f"{name}_factors_{locale}"] = lines
    return out


def write_marts(con: Connection, customers: pd.DataFrame, deals: pd.DataFrame) -> None:
    """Replace marts.customer_scores and marts.deal_forecasts together: readers see both old or both new."""
    con.register("customer_scores_frame", customers)
    con.register("deal_forecasts_frame", deals)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {MARTS_SCHEMA}")
        # a drop and a create, not CREATE OR REPLACE: PostgreSQL has no such statement for tables
        con.execute(f"DROP TABLE IF EXISTS {MARTS_SCHEMA}.customer_scores")
        con.execute(
            f"""CREATE TABLE {MARTS_SCHEMA}.customer_scores AS
            SELECT CAST(customer_id AS VARCHAR) AS customer_id, CAST(as_of AS DATE) AS as_of,
                   CAST(churn_risk AS DOUBLE PRECISION) AS churn_risk,
                   CAST(expansion_propensity AS DOUBLE PRECISION) AS expansion_propensity,
                   churn_factors_ja, churn_factors_en, expansion_factors_ja, expansion_factors_en,
                   model_version, CAST(scored_at AS TIMESTAMP) AS scored_at
            FROM customer_scores_frame ORDER BY customer_id"""
        )
        con.execute(f"DROP TABLE IF EXISTS {MARTS_SCHEMA}.deal_forecasts")
        con.execute(
            f"""CREATE TABLE {MARTS_SCHEMA}.deal_forecasts AS
            SELECT CAST(deal_id AS VARCHAR) AS deal_id, CAST(customer_id AS VARCHAR) AS customer_id, deal_type, stage,
                   CAST(amount AS DOUBLE PRECISION) AS amount, CAST(created_at AS TIMESTAMP) AS created_at,
                   CAST(win_probability AS DOUBLE PRECISION) AS win_probability,
                   CAST(expected_close_month AS DATE) AS expected_close_month,
                   CAST(expected_amount AS DOUBLE PRECISION) AS expected_amount,
                   CAST(last_activity_on AS DATE) AS last_activity_on,
                   CAST(days_since_last_activity AS BIGINT) AS days_since_last_activity, activity_band,
                   next_action_ja, next_action_en, risk_ja, risk_en, model_version, CAST(as_of AS DATE) AS as_of,
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


def scoring_snapshot_on(con: Connection) -> date | None:
    """The day dbt last computed the features as of (the scoring snapshot); None before it ever did."""
    row = con.execute(
        "SELECT max(snapshot_on) FROM intermediate.int_customer_features_monthly WHERE is_scoring_snapshot"
    ).fetchone()
    return None if not row or row[0] is None else pd.Timestamp(row[0]).date()


def features_as_of(con: Connection) -> date:
    """The day dbt last computed the features as of; an error before it ever did."""
    built = scoring_snapshot_on(con)
    if built is None:
        raise ValueError("the warehouse has no scoring features yet: run `kizuna run` (dbt build) first")
    return built


def _train(settings: Settings, as_of: date, now: datetime) -> ModelBundle:
    def connection() -> AbstractContextManager[Connection]:
        return connect(settings.warehouse_target, read_only=True)

    bundle = train_models(
        connection, as_of, settings.scores_model, settings.scores_seed, settings.scores_validation_months, now
    )
    for name, choice in bundle.kinds.items():
        log.info("scores %s: %s model (%s)", name, choice.kind, choice.reason)
    return bundle


def train_and_store(settings: Settings, as_of: date | None = None, *, now: datetime | None = None) -> store.StoredModel:
    """The weekly training: train on the warehouse as dbt last built it and make the result the current model
    (unless it is trained as of an earlier day than the current one: a backfill does not replace it)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    with connect(settings.warehouse_target, read_only=True) as con:
        built_as_of = features_as_of(con)
    if as_of is not None and as_of != built_as_of:
        raise ValueError(
            f"the warehouse's features are as of {built_as_of}, not {as_of}: run `kizuna run --as-of {as_of}` "
            "first, or train as of the features' day"
        )
    with threadpool_limits(limits=settings.scores_threads):
        bundle = _train(settings, built_as_of, now)
    return _save(settings, bundle)


def _save(settings: Settings, bundle: ModelBundle) -> store.StoredModel:
    models_dir = settings.models_dir
    current = store.current_version(models_dir)
    newest = current is None
    if current is not None:
        try:
            newest = store.load(models_dir, current).bundle.as_of <= bundle.as_of
        except store.ModelFileError as exc:
            log.warning("replacing the current model: %s", exc)
            newest = True
    directory = store.save(models_dir, bundle, make_current=newest)
    log.info("scores model %s saved in %s%s", bundle.version, directory, "" if newest else " (not made current)")
    return store.StoredModel(bundle, directory)


def usable_model(settings: Settings, as_of: date, now: datetime) -> tuple[store.StoredModel | None, str]:
    """The current stored model when it may score `as_of`; else None and why (for the log)."""
    version = store.current_version(settings.models_dir)
    if version is None:
        return None, f"no trained model in {settings.models_dir} yet"
    try:
        stored = store.load(settings.models_dir, version)
    except store.ModelFileError as exc:
        return None, str(exc)
    reason = store.why_not_usable(
        stored.bundle, as_of, settings.scores_model, settings.scores_seed, settings.scores_max_model_age_days, now
    )
    return (None, reason) if reason else (stored, "")


def predict_threads(settings: Settings) -> int:
    """Threads for scoring with a trained model: settings.scores_predict_threads, else the cores this process may
    use. A prediction sums the same trees per row whatever the thread count, so the numbers do not change."""
    if settings.scores_predict_threads:
        return settings.scores_predict_threads
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return max(1, len(cores))


def score_warehouse(
    settings: Settings, as_of: date, *, scored_at: datetime | None = None, retrain: bool = False
) -> ScoreResult:
    """Score the as-of customers and open deals with the current model and write marts.customer_scores and
    marts.deal_forecasts. Without a model that may score this day (none yet, too old, another scikit-learn,
    trained after this day) or with `retrain`, train one on the warehouse first and store it."""
    scored_at = scored_at or datetime.now(UTC).replace(tzinfo=None)
    stored, reason = (None, "retraining was asked for") if retrain else usable_model(settings, as_of, scored_at)
    with connect(settings.warehouse_target) as con:
        built_as_of = scoring_snapshot_on(con)
    if built_as_of is not None and built_as_of != as_of:
        raise ValueError(
            f"the warehouse's features are as of {built_as_of}, not {as_of}: run `kizuna run "
            f"--as-of {as_of}` (or dbt build with that as_of) before scoring"
        )
    if stored is None:
        log.info("training the scores now: %s", reason)
        with threadpool_limits(limits=settings.scores_threads):
            bundle = _train(settings, as_of, scored_at)
    else:
        bundle = stored.bundle
    with threadpool_limits(limits=predict_threads(settings)):
        # after training, with connections of their own: the training data, DuckDB's buffers of those reads and
        # the day's customers are not held at once (docs/scores.md, "Memory")
        with connect(settings.warehouse_target, read_only=True) as con:
            scoring = load_scoring_rows(con)
        customers = score_customers(scoring, bundle.scores)
        del scoring
        customers["model_version"], customers["scored_at"] = bundle.version, scored_at
        with connect(settings.warehouse_target) as con:
            deals = forecast_deals(con, as_of, bundle.deal_model)
            deals["model_version"], deals["as_of"], deals["scored_at"] = bundle.version, as_of, scored_at
            write_marts(con, customers, deals)
    if stored is None:
        stored = _save(settings, bundle)
    result = ScoreResult(
        as_of,
        bundle.version,
        len(customers),
        len(deals),
        bundle.evaluations,
        bundle.deal_evaluation,
        report_path=stored.directory / REPORT_FILE,
        features=bundle.feature_names,
        trained=bool(reason),
        training_reason=reason,
        model_as_of=bundle.as_of,
    )
    log.info("scores %s: %d customers, %d open deals", bundle.version, len(customers), len(deals))
    return result
