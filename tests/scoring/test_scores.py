"""Scores on one demo warehouse: no peeking, a time split, calibration, grounded explanations, deal bands."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kizuna.core.warehouse import connect
from kizuna.scoring.deals import activity_band
from kizuna.scoring.features import FEATURE_NAMES, FEATURES_TABLE, PRODUCTS_COLUMN
from kizuna.scoring.model import time_split
from kizuna.scoring.run import score_warehouse
from kizuna.transform import dbt_runner
from tests.conftest import demo_settings
from tests.scoring.conftest import AS_OF, CUTOFF, SCORED_AT, SELECT, Demo


def _table(path: Path, sql: str) -> pd.DataFrame:
    with connect(path, read_only=True) as con:
        return con.execute(sql).df()


def test_features_never_use_data_dated_on_or_after_the_snapshot(demo: Demo, tmp_path: Path) -> None:
    """Rewrite the future (after CUTOFF) in a copy: every feature of every snapshot up to CUTOFF stays the same."""
    changed = demo_settings(tmp_path)
    shutil.copy(demo.settings.warehouse, changed.warehouse)
    with connect(changed.warehouse) as con:
        cutoff = [CUTOFF]
        con.execute("DELETE FROM raw.activities WHERE CAST(occurred_at AS DATE) >= ?", cutoff)
        con.execute("DELETE FROM raw.support_tickets WHERE CAST(created_at AS DATE) >= ?", cutoff)
        con.execute("UPDATE raw.usage SET value = 0 WHERE month >= ?", cutoff)
        con.execute("DELETE FROM raw.deals WHERE CAST(created_at AS DATE) >= ?", cutoff)
        con.execute("UPDATE raw.deals SET closed_at = NULL, is_won = NULL WHERE CAST(closed_at AS DATE) >= ?", cutoff)
        con.execute("DELETE FROM raw.invoices WHERE CAST(issued_at AS DATE) >= ?", cutoff)
        con.execute("DELETE FROM raw.subscriptions WHERE start_date >= ?", cutoff)
        # everyone still subscribed on the cutoff leaves ten days later
        con.execute(
            "UPDATE raw.subscriptions SET end_date = ? + 10, status = 'canceled' WHERE end_date IS NULL OR end_date > ?",
            [CUTOFF, CUTOFF],
        )
    dbt_runner.build(changed, AS_OF, select=SELECT)
    query = (
        f"SELECT customer_id, snapshot_on, {', '.join(FEATURE_NAMES)}, {PRODUCTS_COLUMN} FROM {FEATURES_TABLE} "
        f"WHERE snapshot_on <= DATE '{CUTOFF}' ORDER BY customer_id, snapshot_on"
    )
    before, after = _table(demo.settings.warehouse, query), _table(changed.warehouse, query)
    assert len(before) > 5000
    pd.testing.assert_frame_equal(before, after)
    labels = "SELECT count(*) AS n FROM {t} WHERE snapshot_on = DATE '2026-05-01' AND is_churned_next_90_days"
    # the rewrite did reach the outcomes: the same snapshot's labels changed, its features did not
    assert (
        _table(changed.warehouse, labels.format(t=FEATURES_TABLE)).n[0]
        > _table(demo.settings.warehouse, labels.format(t=FEATURES_TABLE)).n[0]
    )


def test_time_split_trains_only_on_months_before_validation(demo: Demo) -> None:
    for evaluation in demo.result.evaluations.values():
        split = evaluation.split
        assert split.train_months and split.validation_months
        assert max(split.train_months) < min(split.validation_months)
        assert not set(split.train_months) & set(split.validation_months)
        assert max(split.validation_months) <= dt.date(2026, 8, 1)  # 90 days complete before the as-of month
    months = pd.Series([dt.date(2026, m, 1) for m in (3, 1, 2, 5, 4)])
    assert time_split(months, 2).validation_months == [dt.date(2026, 4, 1), dt.date(2026, 5, 1)]
    with pytest.raises(ValueError, match="more history"):
        time_split(months, 4)


@pytest.mark.parametrize("score", ["churn", "expansion"], ids=["churn", "expansion"])
def test_scores_are_calibrated_and_beat_the_base_rate_on_later_months(demo: Demo, score: str) -> None:
    e = demo.result.evaluations[score]
    assert e.roc_auc > 0.75 and e.brier < e.brier_of_base_rate and e.top_decile_lift > 3
    predicted = sum(r["predicted_mean"] * r["rows"] for r in e.reliability) / e.validation_rows
    assert abs(predicted - e.base_rate_validation) < 0.03
    for row in e.reliability:
        # observed rate within the decile's predicted range, give or take 0.1 (deciles hold ~400 rows)
        assert row["predicted_min"] - 0.1 <= row["observed_rate"] <= row["predicted_max"] + 0.1, row
    for row in e.reliability_by_band:
        if row["rows"] >= 30:  # fewer rows: the observed rate is too noisy to judge
            assert row["band_from"] - 0.1 <= row["observed_rate"] <= row["band_to"] + 0.1, row


def test_churn_beats_the_naive_usage_baseline(demo: Demo) -> None:
    e = demo.result.evaluations["churn"]
    assert e.roc_auc >= e.baseline_roc_auc


def test_explanations_are_readable_and_grounded(demo: Demo) -> None:
    scores = _table(
        demo.settings.warehouse,
        f"""SELECT s.*, f.usage_vs_3_month_average FROM marts.customer_scores s
            JOIN {FEATURES_TABLE} f ON f.customer_id = s.customer_id AND f.is_scoring_snapshot""",
    )
    assert len(scores) > 1000 and scores["as_of"].nunique() == 1
    assert scores["churn_risk"].between(0, 1).all() and scores["expansion_propensity"].between(0, 1).all()
    dropped = scores[(scores.usage_vs_3_month_average <= -0.3) & (scores.churn_risk >= 0.5)]
    assert len(dropped) >= 10
    for row in dropped.itertuples():
        drop = f"{-row.usage_vs_3_month_average:.0%}"
        assert f"usage down {drop} against its 3-month average" in row.churn_factors_en
        assert f"利用が直近3か月平均より{drop}減少" in row.churn_factors_ja
    risky = scores[scores.churn_risk >= 0.3]
    assert (risky.churn_factors_en != "").all() and (risky.churn_factors_ja != "").all()
    text = " ".join(scores.churn_factors_en) + " ".join(scores.expansion_factors_ja)
    assert "nan" not in text.lower() and "None" not in text


def test_deal_forecasts_cover_open_deals_with_bands_and_actions(demo: Demo) -> None:
    deals = _table(demo.settings.warehouse, "SELECT * FROM marts.deal_forecasts")
    open_deals = _table(demo.settings.warehouse, "SELECT deal_id FROM staging.stg_crm__deals WHERE closed_at IS NULL")
    assert sorted(deals.deal_id) == sorted(open_deals.deal_id) and len(deals) > 50
    assert deals.win_probability.between(0, 1).all()
    assert (pd.to_datetime(deals.expected_close_month).dt.date >= AS_OF.replace(day=1)).all()
    assert np.allclose(deals.expected_amount, deals.amount * deals.win_probability)
    assert [activity_band(d) for d in deals.days_since_last_activity] == deals.activity_band.tolist()
    assert (deals.next_action_en.str.len() > 0).all() and deals.next_action_ja.str.contains("受注した").all()
    # no signals mart in this build: a deal's risk is only its own quiet days, from the orange band on
    quiet = deals.days_since_last_activity >= 15
    assert (
        deals.risk_en[quiet].str.startswith("no activity on this deal in").all() and deals.risk_en[~quiet].isna().all()
    )
    assert demo.result.deal_evaluation is not None and demo.result.deal_evaluation.roc_auc > 0.6


@pytest.mark.parametrize(
    ("days", "band"),
    [(0, "green"), (7, "green"), (8, "yellow"), (14, "yellow"), (15, "orange"), (30, "orange"), (31, "red")],
    ids=lambda v: str(v),
)
def test_activity_bands(days: int, band: str) -> None:
    assert activity_band(days) == band


def test_same_warehouse_and_seed_give_the_same_scores(demo: Demo) -> None:
    """Training again (not loading the stored model) gives the same version and byte-identical scores."""
    query = "SELECT * FROM marts.customer_scores ORDER BY customer_id"
    first = _table(demo.settings.warehouse, query)
    again = score_warehouse(demo.settings, AS_OF, scored_at=SCORED_AT, retrain=True)
    assert again.trained and again.model_version == demo.result.model_version
    pd.testing.assert_frame_equal(first, _table(demo.settings.warehouse, query))
