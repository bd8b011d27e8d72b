"""The deals' two reads on a hand-built warehouse: training reads the closed deals only, the forecast the open ones,
each with the same inputs the single read of every deal gave them; the won deals' cycles set the close month."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import duckdb
import pandas as pd
import pytest

from kizuna.scoring.deals import DEAL_FEATURES, TRAINING_COLUMNS, _deals, closed_deals, deal_matrix, forecast_deals

AS_OF = dt.date(2026, 11, 23)

# (deal_id, customer_id, deal_type, created_at, closed_at, is_won)
DEALS = [
    ("d1", "c1", "upsell", "2026-01-05 10:00", "2026-02-04 10:00", True),  # won after 30 days
    ("d2", "c1", "upsell", "2026-03-01 09:00", "2026-03-21 09:00", False),  # lost
    ("d3", "c2", "renewal", "2026-06-10 08:00", "2026-06-20 08:00", True),  # won after 10 days
    ("d4", "c1", "upsell", "2026-11-01 12:00", None, None),  # open: closes 30 days after creation
    ("d5", "c2", "new", "2026-11-20 12:00", None, None),  # open, no won deal of its type: a week from as-of
    ("d6", "c2", "upsell", "2026-11-24 12:00", None, None),  # created after the as-of day: neither read
]
# (customer_id, activity_type, occurred_at)
ACTIVITIES = [
    ("c1", "call", "2025-12-20 10:00"),  # 16 days before d1
    ("c1", "email", "2026-01-04 10:00"),  # 1 day before d1
    ("c1", "note", "2026-01-04 11:00"),  # not a touch
    ("c1", "meeting", "2026-11-10 10:00"),  # after d4's creation: its last activity
    ("c2", "visit", "2026-06-01 10:00"),
]


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging; CREATE SCHEMA intermediate")
    con.execute(
        """CREATE TABLE staging.stg_crm__deals (deal_id VARCHAR, customer_id VARCHAR, deal_type VARCHAR,
        stage VARCHAR, amount DOUBLE, created_at TIMESTAMP, closed_at TIMESTAMP, is_won BOOLEAN, lead_source VARCHAR)"""
    )
    for deal_id, customer, kind, created, closed, won in DEALS:
        stage = "closed" if closed else "proposal"
        con.execute(
            "INSERT INTO staging.stg_crm__deals VALUES (?, ?, ?, ?, 1000, ?, ?, ?, 'web')",
            [deal_id, customer, kind, stage, created, closed, won],
        )
    con.execute(
        "CREATE TABLE staging.stg_crm__activities (customer_id VARCHAR, activity_type VARCHAR, occurred_at TIMESTAMP)"
    )
    con.executemany("INSERT INTO staging.stg_crm__activities VALUES (?, ?, ?)", ACTIVITIES)
    con.execute(
        """CREATE TABLE intermediate.int_customer_features_monthly AS
        SELECT * FROM (VALUES ('c1', DATE '2026-01-01', false, 50000.0), ('c1', DATE '2026-11-01', false, 60000.0),
                              ('c1', DATE '2026-11-23', true, 70000.0))
               t(customer_id, snapshot_on, is_scoring_snapshot, mrr)"""
    )
    for column in ("usage_vs_3_month_average", "plan_usage_ratio", "days_since_last_touch", "tenure_months"):
        con.execute(f"ALTER TABLE intermediate.int_customer_features_monthly ADD COLUMN {column} DOUBLE")
    con.execute("ALTER TABLE intermediate.int_customer_features_monthly ADD COLUMN tickets_last_90_days BIGINT")
    yield con
    con.close()


def test_training_reads_the_closed_deals_with_their_inputs(con: duckdb.DuckDBPyConnection) -> None:
    closed = closed_deals(con, AS_OF)
    assert closed["deal_id"].tolist() == ["d1", "d2", "d3"]
    d1 = closed.iloc[0]
    # touches (not notes) in the 30 days before creation; the customer as seen on the first of its month
    assert d1["touches_30_days_before"] == 2 and d1["mrr"] == 50000.0
    assert pd.isna(closed.iloc[1]["mrr"])  # no snapshot for March: the input is missing, the deal kept


def test_the_forecast_reads_the_open_deals_and_the_won_cycles(con: duckdb.DuckDBPyConnection) -> None:
    forecast = forecast_deals(con, AS_OF, None)
    assert forecast["deal_id"].tolist() == ["d4", "d5"]
    d4, d5 = forecast.iloc[0], forecast.iloc[1]
    # created 2026-11-01 + the 30-day cycle of the won upsell (the lost one's 20 days do not count)
    assert d4["expected_close_month"] == dt.date(2026, 12, 1)
    assert d4["last_activity_on"] == dt.date(2026, 11, 10) and d4["days_since_last_activity"] == 13
    assert d5["expected_close_month"] == dt.date(2026, 11, 1)  # no won "new" deal: a week from as-of
    assert forecast["win_probability"].isna().all()  # no model


def test_training_reads_only_its_columns_and_the_same_rows_as_the_whole_read(con: duckdb.DuckDBPyConnection) -> None:
    closed = closed_deals(con, AS_OF)
    # no last touch, touch types or rank: the forecast's, one row per customer, the 1M read's peak (docs/scores.md)
    assert tuple(closed.columns) == TRAINING_COLUMNS
    whole = _deals(con, AS_OF, closed=True)  # the read training had before: every column of the forecast's
    assert {"last_touch_at", "recent_touch_types", "rank"} <= set(whole.columns)
    pd.testing.assert_frame_equal(closed, whole.loc[:, list(TRAINING_COLUMNS)])
    x = deal_matrix(closed)  # everything the win model's matrix reads is there
    assert x.shape == (3, len(DEAL_FEATURES)) and x[0, DEAL_FEATURES.index("touches_30_days_before")] == 2
