"""The open deals' dates and bands, computed column-wise, say what expected_close and activity_band say per deal."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from kizuna.scoring.deals import _forecast_columns, activity_band, expected_close

AS_OF = date(2026, 11, 24)
CYCLES = {
    "new": np.array([10, 20, 30, 45, 60, 90]),  # even count: a suffix's median is a mean of two, sometimes x.5
    "upsell": np.array([7, 7, 15]),
    "renewal": np.array([], dtype="int64"),  # no won renewal yet: a week from the as-of day
}
DEALS = [
    # deal_type, created_at, last_touch_at
    ("new", datetime(2026, 11, 20, 9, 30), None),
    ("new", datetime(2026, 10, 1, 23, 59), datetime(2026, 11, 23, 8, 0)),
    ("new", datetime(2026, 9, 1), datetime(2026, 8, 1)),  # the last touch before creation: creation counts
    ("new", datetime(2025, 1, 1), None),  # older than every won cycle
    ("upsell", datetime(2026, 11, 1), datetime(2026, 11, 10, 12, 0)),
    ("upsell", datetime(2026, 11, 17), None),  # age 7: equal cycles are not longer
    ("renewal", datetime(2026, 11, 2), None),
    ("cross_sell", datetime(2026, 10, 15), datetime(2026, 11, 24, 7, 0)),  # a type without cycles at all
]


def test_forecast_columns_match_the_per_deal_rules() -> None:
    deals = pd.DataFrame(
        {
            "deal_id": [f"D{i}" for i in range(len(DEALS))],
            "customer_id": [f"C{i}" for i in range(len(DEALS))],
            "deal_type": [d[0] for d in DEALS],
            "stage": "proposal",
            "amount": [100_000.0 * (i + 1) for i in range(len(DEALS))],
            "created_at": pd.to_datetime([d[1] for d in DEALS]),
            "last_touch_at": pd.to_datetime([d[2] for d in DEALS]),
        }
    )
    probability = np.array([0.5, 0.25, np.nan, 0.1, 0.9, 0.3, 0.6, 0.2])
    out = _forecast_columns(deals, probability, CYCLES, AS_OF)

    for i, (deal_type, created_at, last_touch) in enumerate(DEALS):
        created_on = created_at.date()
        last_on = last_touch.date() if last_touch and last_touch.date() > created_on else created_on
        days = (AS_OF - last_on).days
        row = out.iloc[i]
        assert row["expected_close_month"] == expected_close(created_on, deal_type, CYCLES, AS_OF).replace(day=1), i
        assert row["last_activity_on"] == last_on, i
        assert row["days_since_last_activity"] == days, i
        assert row["activity_band"] == activity_band(days), i
        if np.isnan(probability[i]):
            assert row["expected_amount"] is None or np.isnan(row["expected_amount"])
        else:
            assert row["expected_amount"] == pytest.approx(100_000.0 * (i + 1) * probability[i])
    assert out["expected_close_month"].iloc[6] == date(2026, 12, 1)  # no history: a week from the as-of day
    assert out["activity_band"].tolist()[:2] == ["green", "green"]
