"""The dbt revenue models, built on the mrr-playbook reference data and on hand-made edge cases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.dbt.helpers import NO_UNIT_TESTS, Build, create_warehouse, dbt_build

PLAYBOOK_CSV = Path(__file__).parent / "fixtures" / "mrr_playbook_subscription_periods.csv"
PLAYBOOK_AS_OF = date(2020, 3, 15)
EDGE_AS_OF = date(2024, 7, 10)


# --- the mrr-playbook reference ------------------------------------------------------------------


def playbook_periods() -> pd.DataFrame:
    periods = pd.read_csv(PLAYBOOK_CSV, dtype={"subscription_id": str, "customer_id": str})
    for column in ("start_date", "end_date"):
        periods[column] = pd.to_datetime(periods[column]).dt.date
    return periods


@pytest.fixture(scope="module")
def playbook(tmp_path_factory: pytest.TempPathFactory) -> Build:
    workdir = tmp_path_factory.mktemp("dbt-playbook")
    periods = playbook_periods()
    subscriptions = pd.DataFrame(
        {
            "subscription_id": periods["subscription_id"],
            "customer_id": periods["customer_id"],
            "start_date": periods["start_date"],
            "end_date": periods["end_date"],
            "mrr": periods["monthly_amount"].astype(float),
            "status": "active",
            "_source_file": PLAYBOOK_CSV.name,
            "_source_row": range(2, len(periods) + 2),
        }
    )
    ids = sorted(periods["customer_id"].unique(), key=int)
    customers = pd.DataFrame({"customer_id": ids, "name": [f"Customer {i}" for i in ids]})
    create_warehouse(workdir / "warehouse.duckdb", {"subscriptions": subscriptions, "customers": customers})
    # The whole project, unit tests too: the suite's one DuckDB build that runs them (tests/dbt/helpers.py), and
    # test_build_has_no_warnings speaks for every node.
    return dbt_build(workdir, workdir / "warehouse.duckdb", PLAYBOOK_AS_OF, extra=())


def month_starts(first: date, last: date) -> list[date]:
    return [d.date() for d in pd.date_range(first.replace(day=1), last.replace(day=1), freq="MS")]


def expected_customer_months(periods: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The playbook's own rule (dates on month starts: counted when start <= month < end), classified
    month by month in plain Python, independently of the SQL."""
    months = month_starts(periods["start_date"].min(), as_of)
    rows = []
    for customer_id, subs in periods.groupby("customer_id"):
        series = [
            sum(
                float(s.monthly_amount)
                for s in subs.itertuples()
                if s.start_date <= m and (pd.isna(s.end_date) or m < s.end_date)
            )
            for m in months
        ]
        previous, has_paid = 0.0, False
        for month, mrr in zip(months, series, strict=True):
            if mrr > 0 or previous > 0:
                if mrr > 0 and not has_paid:
                    movement = "new"
                elif mrr > 0 and previous == 0:
                    movement = "reactivation"
                elif mrr == 0:
                    movement = "churn"
                elif mrr > previous:
                    movement = "expansion"
                elif mrr < previous:
                    movement = "contraction"
                else:
                    movement = "none"
                rows.append((month, customer_id, mrr, previous, movement, mrr - previous))
            has_paid = has_paid or mrr > 0
            previous = mrr
    columns = ["month", "customer_id", "mrr", "previous_mrr", "movement", "movement_mrr"]
    return pd.DataFrame(rows, columns=columns).sort_values(["customer_id", "month"], ignore_index=True)


def customer_mrr_monthly(build: Build) -> pd.DataFrame:
    frame = build.query(
        "select month, customer_id, mrr, previous_mrr, movement, movement_mrr from marts.customer_mrr_monthly"
    )
    frame["month"] = pd.to_datetime(frame["month"]).dt.date
    for column in ("mrr", "previous_mrr", "movement_mrr"):
        frame[column] = frame[column].astype(float)
    return frame.sort_values(["customer_id", "month"], ignore_index=True)


def test_build_has_no_warnings(playbook: Build) -> None:
    assert playbook.warnings == []


def test_customer_mrr_monthly_matches_an_independent_computation(playbook: Build) -> None:
    expected = expected_customer_months(playbook_periods(), PLAYBOOK_AS_OF)
    pd.testing.assert_frame_equal(customer_mrr_monthly(playbook), expected, check_dtype=False)


def test_movement_counts_match_an_independent_classification(playbook: Build) -> None:
    expected = expected_customer_months(playbook_periods(), PLAYBOOK_AS_OF)["movement"].value_counts()
    actual = customer_mrr_monthly(playbook)["movement"].value_counts()
    assert actual.sort_index().to_dict() == expected.sort_index().to_dict()
    # Every playbook customer ends before the as-of month, so each has exactly one more churn than
    # reactivations, and one new month.
    assert actual["new"] == 55
    assert actual["churn"] == 55 + actual["reactivation"]


def test_customer_1_hand_verified(playbook: Build) -> None:
    # CSV: 1,1,2018-11-01,2019-02-01,50 / 2,1,2019-04-01,2019-06-01,50 / 3,1,2019-06-01,2019-08-01,75
    frame = customer_mrr_monthly(playbook)
    rows = frame[frame["customer_id"] == "1"][["month", "mrr", "movement", "movement_mrr"]]
    assert [tuple(r) for r in rows.itertuples(index=False)] == [
        (date(2018, 11, 1), 50.0, "new", 50.0),
        (date(2018, 12, 1), 50.0, "none", 0.0),
        (date(2019, 1, 1), 50.0, "none", 0.0),
        (date(2019, 2, 1), 0.0, "churn", -50.0),  # nothing in March: silent after the churn month
        (date(2019, 4, 1), 50.0, "reactivation", 50.0),
        (date(2019, 5, 1), 50.0, "none", 0.0),
        (date(2019, 6, 1), 75.0, "expansion", 25.0),
        (date(2019, 7, 1), 75.0, "none", 0.0),
        (date(2019, 8, 1), 0.0, "churn", -75.0),
    ]


def test_mrr_kpis_monthly_matches_the_customer_months(playbook: Build) -> None:
    kpis = playbook.query("select * from marts.mrr_kpis_monthly order by month")
    kpis["month"] = pd.to_datetime(kpis["month"]).dt.date
    assert kpis["month"].tolist() == month_starts(date(2017, 9, 1), PLAYBOOK_AS_OF)  # every month, no gaps

    expected = expected_customer_months(playbook_periods(), PLAYBOOK_AS_OF)
    kpis = kpis.set_index("month")
    for month, group in expected.groupby("month"):
        row = kpis.loc[month]
        by_movement = group.groupby("movement")["movement_mrr"].sum()
        assert float(row["starting_mrr"]) == group["previous_mrr"].sum(), month
        assert float(row["ending_mrr"]) == group["mrr"].sum(), month
        assert float(row["new_mrr"]) == by_movement.get("new", 0.0), month
        assert float(row["expansion_mrr"]) == by_movement.get("expansion", 0.0), month
        assert float(row["contraction_mrr"]) == -by_movement.get("contraction", 0.0), month
        assert float(row["churned_mrr"]) == -by_movement.get("churn", 0.0), month
        assert float(row["reactivation_mrr"]) == by_movement.get("reactivation", 0.0), month
        assert row["churned_customers"] == (group["movement"] == "churn").sum(), month
        assert row["ending_customers"] == (group["mrr"] > 0).sum(), month

    # Hand-verified: January 2020 lost 28 of 28 starting customers (1,255) and won 4 new ones (175).
    january = kpis.loc[date(2020, 1, 1)]
    assert (float(january["starting_mrr"]), float(january["new_mrr"]), float(january["ending_mrr"])) == (
        1255.0,
        175.0,
        175.0,
    )
    assert january["customer_churn_rate"] == 1.0
    assert january["arpa"] == pytest.approx(43.75)
    # The as-of month starts from nothing: zeros, and rates are unknown rather than 0.
    march = kpis.loc[date(2020, 3, 1)]
    assert float(march["starting_mrr"]) == 0.0 and float(march["ending_mrr"]) == 0.0
    assert pd.isna(march["customer_churn_rate"]) and pd.isna(march["nrr"]) and pd.isna(march["arpa"])


def test_rates_follow_their_definitions(playbook: Build) -> None:
    kpis = playbook.query("select * from marts.mrr_kpis_monthly where starting_mrr > 0")
    start = kpis["starting_mrr"].astype(float)
    contraction, churned = kpis["contraction_mrr"].astype(float), kpis["churned_mrr"].astype(float)
    expansion = kpis["expansion_mrr"].astype(float)
    # Double precision, not a 4-byte float (DuckDB's `float`): 1e-12, not pytest's default 1e-6.
    assert kpis["customer_churn_rate"].tolist() == pytest.approx(
        (kpis["churned_customers"] / kpis["starting_customers"]).tolist(), rel=1e-12
    )
    assert kpis["gross_revenue_churn_rate"].tolist() == pytest.approx(
        ((contraction + churned) / start).tolist(), rel=1e-12
    )
    assert kpis["net_revenue_churn_rate"].tolist() == pytest.approx(
        ((contraction + churned - expansion) / start).tolist(), rel=1e-12
    )
    assert kpis["nrr"].tolist() == pytest.approx((1 - kpis["net_revenue_churn_rate"]).tolist(), rel=1e-12)
    assert kpis["grr"].tolist() == pytest.approx((1 - kpis["gross_revenue_churn_rate"]).tolist(), rel=1e-12)


def test_customers_are_all_churned_as_of_march_2020(playbook: Build) -> None:
    customers = playbook.query("select * from marts.customers")
    assert len(customers) == 55
    assert set(customers["status"]) == {"churned"}
    assert (customers["current_mrr"].astype(float) == 0).all()
    one = customers[customers["customer_id"] == "1"].iloc[0]
    assert pd.Timestamp(one["churned_month"]).date() == date(2019, 8, 1)
    assert pd.Timestamp(one["first_paid_month"]).date() == date(2018, 11, 1)
    assert one["tenure_months"] == 7  # Nov-Jan and Apr-Jul: the gap is not tenure
    assert playbook.query("select count(*) as n from marts.subscription_renewals")["n"][0] == 0


# --- edge cases: arbitrary days, annual billing, open-ended subscriptions, renewals ---------------


EDGE_SUBSCRIPTIONS: list[dict[str, Any]] = [
    # Mid-month start and end: counts March to May 2024, churns in June.
    {"subscription_id": "mid", "customer_id": "c-mid", "start_date": date(2024, 3, 15),
     "end_date": date(2024, 6, 15), "mrr": 100},
    # Annual billing: 120,000 a year is 10,000 a month; open-ended, renews on its anniversary.
    {"subscription_id": "annual", "customer_id": "c-annual", "start_date": date(2024, 1, 10),
     "amount": 120000, "billing_period_months": 12, "contract_term_months": 12},
    # Open-ended month-to-month since 2023-05-31 (blank term = 1): never dropped, renews each month.
    {"subscription_id": "open", "customer_id": "c-open", "start_date": date(2023, 5, 31), "mrr": 5000},
    # A second, smaller subscription from June: expansion; it has an end date, which is its renewal date.
    {"subscription_id": "open-addon", "customer_id": "c-open", "start_date": date(2024, 6, 1),
     "end_date": date(2024, 12, 1), "mrr": 1000, "product": "analytics"},
    # A trial: active, but no MRR.
    {"subscription_id": "trial", "customer_id": "c-trial", "start_date": date(2024, 7, 1),
     "end_date": date(2024, 7, 31), "mrr": 3000, "status": "trialing"},
]  # fmt: skip
EDGE_CUSTOMERS = ["c-mid", "c-annual", "c-open", "c-trial", "c-none"]
# The marts these tests read and everything they are built from, with every data test on them (36 models and
# 154 data tests of the project's 62 and 251; cautious: not a test that also reads a model left out): the edge
# cases are about revenue. The models beyond (signals, engagement, scoring, campaigns) are built and tested on
# the playbook's rows above and on the demo data.
MONTHLY_MARTS = (
    "customer_mrr_monthly",
    "mrr_kpis_monthly",
    "cohort_retention_monthly",
    "existing_customer_revenue_monthly",
    "inside_sales_kpis_monthly",
)
EDGE_SELECTION = (
    "--select",
    " ".join(f"+{mart}" for mart in (*MONTHLY_MARTS, "customers", "subscription_renewals")),
    "--indirect-selection",
    "cautious",
)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    workdir = tmp_path_factory.mktemp("dbt-edge")
    subscriptions = pd.DataFrame(EDGE_SUBSCRIPTIONS)
    subscriptions["product"] = subscriptions["product"].fillna("crm")
    subscriptions["status"] = subscriptions["status"].fillna("active")
    subscriptions["currency"] = None  # defaults to JPY
    customers = pd.DataFrame({"customer_id": EDGE_CUSTOMERS, "name": EDGE_CUSTOMERS})
    create_warehouse(workdir / "warehouse.duckdb", {"subscriptions": subscriptions, "customers": customers})
    yield dbt_build(workdir, workdir / "warehouse.duckdb", EDGE_AS_OF, extra=(*EDGE_SELECTION, *NO_UNIT_TESTS))


def rows_of(build: Build, sql: str) -> list[tuple[Any, ...]]:
    frame = build.query(sql)
    return [tuple(r) for r in frame.astype(object).where(frame.notna(), None).itertuples(index=False)]


def test_arbitrary_days_count_from_start_month_through_the_month_before_the_end(edge: Build) -> None:
    assert rows_of(
        edge,
        "select cast(month as varchar), cast(mrr as double), movement from marts.customer_mrr_monthly "
        "where customer_id = 'c-mid' order by month",
    ) == [
        ("2024-03-01", 100.0, "new"),
        ("2024-04-01", 100.0, "none"),
        ("2024-05-01", 100.0, "none"),
        ("2024-06-01", 0.0, "churn"),
    ]


def test_annual_amount_is_normalised_to_monthly(edge: Build) -> None:
    assert rows_of(
        edge,
        "select cast(mrr as double) from staging.stg_billing__subscriptions where subscription_id = 'annual'",
    ) == [(10000.0,)]
    assert rows_of(edge, "select cast(current_mrr as double) from marts.customers where customer_id = 'c-annual'") == [
        (10000.0,)
    ]


def test_open_ended_subscription_counts_through_the_as_of_month(edge: Build) -> None:
    rows = rows_of(
        edge,
        "select cast(month as varchar), cast(mrr as double), movement from marts.customer_mrr_monthly "
        "where customer_id = 'c-open' order by month",
    )
    assert len(rows) == 15  # May 2023 to July 2024
    assert rows[0] == ("2023-05-01", 5000.0, "new")
    assert rows[-3:] == [
        ("2024-05-01", 5000.0, "none"),
        ("2024-06-01", 6000.0, "expansion"),
        ("2024-07-01", 6000.0, "none"),
    ]


def test_kpis_run_from_the_first_subscription_month_to_the_as_of_month(edge: Build) -> None:
    kpis = edge.query("select * from marts.mrr_kpis_monthly order by month")
    assert pd.Timestamp(kpis["month"].iloc[0]).date() == date(2023, 5, 1)
    assert pd.Timestamp(kpis["month"].iloc[-1]).date() == date(2024, 7, 1)
    assert len(kpis) == 15
    june = kpis[kpis["month"] == pd.Timestamp(2024, 6, 1)].iloc[0]
    assert (float(june["starting_mrr"]), float(june["expansion_mrr"]), float(june["churned_mrr"])) == (
        15100.0,
        1000.0,
        100.0,
    )
    assert float(june["ending_mrr"]) == 16000.0
    assert june["starting_customers"] == 3 and june["churned_customers"] == 1 and june["ending_customers"] == 2


def test_customers_status_and_renewal(edge: Build) -> None:
    assert rows_of(
        edge,
        "select customer_id, status, cast(current_mrr as double), cast(churned_month as varchar), tenure_months, "
        "contract_term_months, products_held, cast(next_renewal_date as varchar) "
        "from marts.customers order by customer_id",
    ) == [
        ("c-annual", "active", 10000.0, None, 7, 12, "crm", "2025-01-10"),
        ("c-mid", "churned", 0.0, "2024-06-01", 3, None, None, None),
        ("c-none", "never_paid", 0.0, None, 0, None, None, None),
        ("c-open", "active", 6000.0, None, 15, 1, "analytics, crm", "2024-07-31"),
        ("c-trial", "never_paid", 0.0, None, 0, 1, None, "2024-07-31"),
    ]


def test_subscription_renewals(edge: Build) -> None:
    assert rows_of(
        edge,
        "select subscription_id, cast(mrr as double), contract_term_months, cast(renewal_on as varchar), "
        "days_to_renewal from marts.subscription_renewals order by subscription_id",
    ) == [
        ("annual", 10000.0, 12, "2025-01-10", 184),  # start + 12 months, the first anniversary after as-of
        ("open", 5000.0, 1, "2024-07-31", 21),  # May 31 + 14 months
        ("open-addon", 1000.0, 1, "2024-12-01", 144),  # has an end date: that is the renewal date
        ("trial", 0.0, 1, "2024-07-31", 21),
    ]


def test_only_months_past_the_as_of_date_are_complete(edge: Build) -> None:
    """As of 2024-07-10, July is month to date: every monthly mart says so (doc block month_completeness)."""
    for mart in MONTHLY_MARTS:
        assert rows_of(
            edge,
            f"select cast(month as varchar), bool_and(is_complete), bool_or(is_complete) from marts.{mart} "
            "where month >= date '2024-06-01' group by month order by month",
        ) == [("2024-06-01", True, True), ("2024-07-01", False, False)], mart
