"""The clock: naive source timestamps are Tokyo time stored as UTC; business dates and as-of months come from Tokyo.

DST-free Asia/Tokyo is UTC+9: 2026-11-30 23:30 JST is 14:30 UTC the same day, while 2026-11-30 20:00 UTC is
already 2026-12-01 05:00 in Tokyo. Month ends and leap days are where a wrong zone or a naive month shows.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import duckdb
import pytest

from kizuna.core import dates
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.quality.gate import gate_parameters
from kizuna.reporting.summary import last_full_month_kpis
from kizuna.sources.ingest import stage_sources
from tests.conftest import write_csv

TOKYO = ZoneInfo("Asia/Tokyo")


def test_naive_source_timestamps_are_tokyo_time_stored_as_utc(settings: Settings) -> None:
    write_csv(
        settings.source_dir / "customers.csv",
        ["customer_id", "name", "created_at"],
        [
            ["C1", "naive, late evening in Tokyo", "2026-11-30 23:30"],
            ["C2", "explicit UTC, already December in Tokyo", "2026-11-30T20:00:00+00:00"],
            ["C3", "naive, just after midnight in Tokyo", "2026/12/01 00:30:00"],
            ["C4", "explicit +09:00", "2026-12-01 00:30:00+09:00"],
        ],
    )
    write_csv(
        settings.source_dir / "subscriptions.csv",
        ["subscription_id", "customer_id", "start_date"],
        [
            ["S1", "C1", "2026-11-30"],
        ],
    )
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        stored = dict(con.execute("SELECT customer_id, created_at FROM raw_incoming.customers").fetchall())
    assert stored == {
        "C1": dt.datetime(2026, 11, 30, 14, 30),
        "C2": dt.datetime(2026, 11, 30, 20, 0),
        "C3": dt.datetime(2026, 11, 30, 15, 30),
        "C4": dt.datetime(2026, 11, 30, 15, 30),
    }
    # The Tokyo business date of each (what reports and campaigns must use): C2 is a December event.
    tokyo_dates = {k: v.replace(tzinfo=dt.UTC).astimezone(TOKYO).date() for k, v in stored.items()}
    assert tokyo_dates == {
        "C1": dt.date(2026, 11, 30),
        "C2": dt.date(2026, 12, 1),
        "C3": dt.date(2026, 12, 1),
        "C4": dt.date(2026, 12, 1),
    }


@pytest.mark.parametrize(
    ("utc_now", "business_day"),
    [
        (dt.datetime(2026, 11, 30, 14, 59, tzinfo=dt.UTC), dt.date(2026, 11, 30)),
        (dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC), dt.date(2026, 12, 1)),
        (dt.datetime(2026, 12, 31, 15, 0, tzinfo=dt.UTC), dt.date(2027, 1, 1)),
        (dt.datetime(2028, 2, 28, 15, 30, tzinfo=dt.UTC), dt.date(2028, 2, 29)),
    ],
    ids=["before-midnight-jst", "midnight-jst-is-next-month", "new-year-in-tokyo-first", "leap-day"],
)
def test_today_is_the_tokyo_date_whatever_the_machine_clock_zone(
    monkeypatch: pytest.MonkeyPatch, utc_now: dt.datetime, business_day: dt.date
) -> None:
    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Frozen:  # type: ignore[override]
            moment = utc_now.astimezone(tz) if tz else utc_now.replace(tzinfo=None)
            return cls(*moment.timetuple()[:6], tzinfo=moment.tzinfo)

    monkeypatch.setattr(dates, "datetime", Frozen)
    monkeypatch.setenv("TZ", "UTC")
    assert dates.business_today("Asia/Tokyo") == business_day
    assert dates.parse_as_of(None, "Asia/Tokyo") == business_day


@pytest.mark.parametrize(
    ("as_of", "month"),
    [
        (dt.date(2026, 12, 1), dt.date(2026, 11, 1)),
        (dt.date(2026, 11, 30), dt.date(2026, 10, 1)),
        (dt.date(2027, 1, 1), dt.date(2026, 12, 1)),
        (dt.date(2028, 3, 1), dt.date(2028, 2, 1)),
    ],
    ids=["first-of-month", "last-of-month", "new-year", "after-leap-february"],
)
def test_the_last_full_month_across_month_and_year_ends(as_of: dt.date, month: dt.date) -> None:
    con = duckdb.connect(":memory:")
    con.execute("CREATE SCHEMA marts")
    con.execute(
        "CREATE TABLE marts.mrr_kpis_monthly AS SELECT (DATE '2026-01-01' + INTERVAL (i) MONTH)::DATE AS month, "
        "* EXCLUDE (i) FROM (SELECT i, 0::DECIMAL(18,2) AS x FROM range(30) t(i))"
    )
    from kizuna.reporting import summary

    for column in summary.KPI_COLUMNS:
        con.execute(f"ALTER TABLE marts.mrr_kpis_monthly ADD COLUMN IF NOT EXISTS {column} DOUBLE DEFAULT 0")
    assert last_full_month_kpis(con, as_of)["month"] == month


@pytest.mark.parametrize(
    ("as_of", "horizon"),
    [
        (dt.date(2028, 2, 29), "2029-02-28T23:59:59"),
        (dt.date(2026, 1, 31), "2027-01-31T23:59:59"),
        (dt.date(2026, 12, 31), "2027-12-31T23:59:59"),
    ],
    ids=["leap-day", "month-end", "year-end"],
)
def test_the_gate_date_horizon_exists_on_month_ends_and_leap_days(as_of: dt.date, horizon: str) -> None:
    con = duckdb.connect(":memory:")
    assert gate_parameters(con, as_of, 0.5)["max_plausible_date"] == horizon
