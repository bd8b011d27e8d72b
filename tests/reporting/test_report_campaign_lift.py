"""The campaigns section shows marts.campaign_lift as the mart has it, and computes no lift of its own.

The mart is written by hand with known figures (the report only reads it): the docs' demo row of
cross_sell_analytics (docs/tracking.md), whose rates shown rounded would give another lift if subtracted, a
90-day interval that is not symmetric about the lift (as no Wald recomputation would make it), a campaign whose
holdout is too small for an interval, and rows of another scope and breakdown that the section must not show.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from kizuna.core.settings import Settings
from kizuna.reporting.report import RenderedSection, ReportResult, build_report
from kizuna.reporting.sections.context import Table

AS_OF = dt.date(2027, 3, 1)

COLUMNS = (
    "campaign, scope, run_id, breakdown, breakdown_value, window_days, "
    "treatment_customers, holdout_customers, treatment_customers_waiting, holdout_customers_waiting, "
    "treatment_csql_rate, holdout_csql_rate, csql_rate_lift, csql_rate_lift_ci_low, csql_rate_lift_ci_high, "
    "treatment_expansion_mrr_per_customer, holdout_expansion_mrr_per_customer, expansion_mrr_per_customer_lift, "
    "expansion_mrr_per_customer_lift_ci_low, expansion_mrr_per_customer_lift_ci_high, is_holdout_too_small"
)
ROWS = [
    # 96/606 against 1/74: shown 15.8% / 1.4%, whose difference (14.4 pt) is not the mart's lift (+14.5 pt).
    ("cross_sell_analytics", "campaign", None, "all", "all", 30, 606, 74, 0, 0,
     96 / 606, 1 / 74, 96 / 606 - 1 / 74, 0.10589, 0.18391, 815.23, 0.0, 815.23, 2.4, 1628.1, False),
    # An interval from another method (not lift ± 1.96·SE): the report must show its bounds as they are.
    ("cross_sell_analytics", "campaign", None, "all", "all", 90, 606, 74, 3, 1,
     123 / 606, 4 / 74, 0.149, 0.072, 0.205, 3065.0, 270.0, 2795.0, 961.4, 4628.6, False),
    ("upsell_small", "campaign", None, "all", "all", 30, 120, 12, 8, 2,
     0.1, 0.0, 0.1, None, None, 500.0, 0.0, 500.0, None, None, True),
    # Per run and per locale: other readings of the same campaign, not the pooled one the report shows.
    ("cross_sell_analytics", "run", "r1", "all", "all", 30, 606, 74, 0, 0,
     0.9, 0.0, 0.999, 0.9, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, False),
    ("cross_sell_analytics", "campaign", None, "locale", "ja", 30, 500, 60, 0, 0,
     0.9, 0.0, 0.888, 0.8, 0.95, 0.0, 0.0, 0.0, 0.0, 0.0, False),
]  # fmt: skip


def write_warehouse(path: Path, with_lift: bool = True) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA marts")
        if with_lift:
            con.execute(
                """CREATE TABLE marts.campaign_lift (
                     campaign VARCHAR, scope VARCHAR, run_id VARCHAR, breakdown VARCHAR, breakdown_value VARCHAR,
                     window_days INTEGER, treatment_customers BIGINT, holdout_customers BIGINT,
                     treatment_customers_waiting BIGINT, holdout_customers_waiting BIGINT,
                     treatment_csql_rate DOUBLE, holdout_csql_rate DOUBLE, csql_rate_lift DOUBLE,
                     csql_rate_lift_ci_low DOUBLE, csql_rate_lift_ci_high DOUBLE,
                     treatment_expansion_mrr_per_customer DOUBLE, holdout_expansion_mrr_per_customer DOUBLE,
                     expansion_mrr_per_customer_lift DOUBLE, expansion_mrr_per_customer_lift_ci_low DOUBLE,
                     expansion_mrr_per_customer_lift_ci_high DOUBLE, is_holdout_too_small BOOLEAN)"""
            )
            con.executemany(f"INSERT INTO marts.campaign_lift ({COLUMNS}) VALUES ({', '.join('?' * 21)})", ROWS)
    finally:
        con.close()


def campaigns(tmp_path: Path, lang: str, with_lift: bool = True) -> RenderedSection:
    warehouse = tmp_path / f"lift-{lang}-{with_lift}.duckdb"
    write_warehouse(warehouse, with_lift)
    settings = Settings(warehouse=warehouse, var_dir=tmp_path / "var", outbox_dir=tmp_path / "outbox")
    result: ReportResult = build_report(settings, AS_OF, lang)  # type: ignore[arg-type]
    assert result.errors == {}
    return next(s for s in result.sections if s.key == "campaigns")


def lift_table(section: RenderedSection) -> Table:
    return next(t for t in section.section.tables if "campaign_lift" in t.title)


def test_the_marts_lift_and_interval_are_shown_as_the_mart_has_them(tmp_path: Path) -> None:
    section = campaigns(tmp_path, "en")
    table = lift_table(section)
    assert "campaign_lift" in section.sources
    assert not any("campaign_lift" in m for m in section.section.missing)
    assert table.columns == [
        "Campaign",
        "Window",
        "Customers measured (treatment / holdout)",
        "Waiting (treatment / holdout)",
        "CSQL rate (treatment / holdout)",
        "CSQL rate lift [95% interval]",
        "Expansion MRR per customer (treatment / holdout)",
        "Expansion MRR per customer lift [95% interval]",
    ]
    assert table.rows == [
        [
            "cross_sell_analytics",
            "30 days",
            "606 / 74",
            "0 / 0",
            "15.8% / 1.4%",
            "+14.5 pt [+10.6 pt, +18.4 pt]",
            "¥815 / ¥0",
            "+¥815 [+¥2, +¥1,628]",
        ],
        [
            "cross_sell_analytics",
            "90 days",
            "606 / 74",
            "3 / 1",
            "20.3% / 5.4%",
            "+14.9 pt [+7.2 pt, +20.5 pt]",
            "¥3,065 / ¥270",
            "+¥2,795 [+¥961, +¥4,629]",
        ],
        [
            "upsell_small",
            "30 days",
            "120 / 12",
            "8 / 2",
            "10.0% / 0.0%",
            "+10.0 pt (holdout too small for an interval)",
            "¥500 / ¥0",
            "+¥500 (holdout too small for an interval)",
        ],
    ]


def test_no_lift_is_computed_in_the_report(tmp_path: Path) -> None:
    """What a recomputation would show differs from the mart's figures, and only the mart's are on the page."""
    page = "\n".join(" | ".join(row) for row in lift_table(campaigns(tmp_path, "en")).rows)
    # The shown rates subtracted: 15.8% − 1.4% = 14.4 pt; the mart's lift of the exact rates is +14.5 pt.
    assert "+14.4 pt" not in page and "+14.5 pt" in page
    # A Wald interval of the 90-day row: 0.149 ± 1.96·SE, symmetric; the mart's is [+7.2, +20.5].
    p_t, n_t, p_h, n_h = 123 / 606, 606, 4 / 74, 74
    se = (p_t * (1 - p_t) / n_t + p_h * (1 - p_h) / n_h) ** 0.5
    wald = f"[{(0.149 - 1.959964 * se) * 100:+.1f} pt, {(0.149 + 1.959964 * se) * 100:+.1f} pt]"
    assert wald != "[+7.2 pt, +20.5 pt]" and wald not in page and "[+7.2 pt, +20.5 pt]" in page
    # The other scopes and breakdowns of the mart are not the section's.
    assert "+99.9 pt" not in page and "+88.8 pt" not in page


def test_japanese_labels_and_yen(tmp_path: Path) -> None:
    table = lift_table(campaigns(tmp_path, "ja"))
    assert table.rows[0][1:] == [
        "30 日",
        "606 / 74",
        "0 / 0",
        "15.8% / 1.4%",
        "+14.5 pt [+10.6 pt, +18.4 pt]",
        "815円 / 0円",
        "+815円 [+2円, +1,628円]",
    ]
    assert table.rows[2][5] == "+10.0 pt （対照群が少なく区間なし）"


def test_without_the_mart_nothing_is_added_and_nothing_is_missing(tmp_path: Path) -> None:
    section = campaigns(tmp_path, "en", with_lift=False)
    assert section.sources == ["campaign_performance", "ops.campaign_recipients"]
    assert not any("campaign_lift" in t.title for t in section.section.tables)
    assert not any("campaign_lift" in m for m in section.section.missing)
