"""The report on 2026-12-05, five days into December: one reporting month (November), no partial month drawn.

The warehouse is written by hand as a build of 2026-12-05 would leave it (is_complete false for December only),
with the shapes that broke the report before: December's month-to-date figures (a false cliff), company-size
bands that sort wrongly as text, reason codes, small movements, and a win-back campaign nobody can be measured in.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from kizuna.core.settings import Settings
from kizuna.reporting.report import RenderedSection, ReportResult, build_report

AS_OF = dt.date(2026, 12, 5)
NOVEMBER = dt.date(2026, 11, 1)
# Current MRR of each customer as of 2026-12-05 (the customers mart) and what each paid in November.
CUSTOMERS = [  # customer_id, status now, rank now, MRR now, MRR in November
    ("C1", "active", "A", 650_000, 600_000),
    ("C2", "active", "B", 310_000, 300_000),
    ("C3", "active", "C", 90_000, 200_000),
    ("C4", "churned", None, 0, 29_700),  # paid in November, churned in December: no rank now
]
NOVEMBER_MRR = sum(c[4] for c in CUSTOMERS)
TEXT_ORDER_BANDS = ["1-49", "1000+", "300-999", "50-299", "unknown"]


def _kpi_months() -> pd.DataFrame:
    """Twelve complete months ending in November at NOVEMBER_MRR, then December to date: a cliff if drawn."""
    months = pd.date_range("2025-12-01", "2026-12-01", freq="MS").date
    rows = []
    ending = float(NOVEMBER_MRR) - 12 * 19_700
    for month in months:
        starting = ending
        if month == dt.date(2026, 12, 1):
            moves = {"new_mrr": 2_000, "expansion_mrr": 0, "contraction_mrr": 0, "churned_mrr": 29_700}
            fx = 0.0
        else:
            moves = {"new_mrr": 20_000, "expansion_mrr": 5_000, "contraction_mrr": 1_000, "churned_mrr": 4_000}
            fx = -300.0
        ending = starting + moves["new_mrr"] + moves["expansion_mrr"] - moves["contraction_mrr"]
        ending += fx - moves["churned_mrr"]
        rows.append(
            {
                "month": month,
                "is_complete": month < dt.date(2026, 12, 1),
                "starting_mrr": starting,
                **moves,
                "reactivation_mrr": 0.0,
                "fx_impact_mrr": fx,
                "ending_mrr": ending,
                "ending_customers": 4 if month < dt.date(2026, 12, 1) else 3,
                "nrr": (starting + moves["expansion_mrr"] - moves["contraction_mrr"] - moves["churned_mrr"]) / starting,
                "grr": (starting - moves["contraction_mrr"] - moves["churned_mrr"]) / starting,
                "customer_churn_rate": 0.0 if month < dt.date(2026, 12, 1) else 0.25,
            }
        )
    frame = pd.DataFrame(rows)
    assert frame.loc[frame["month"] == NOVEMBER, "ending_mrr"].item() == NOVEMBER_MRR
    return frame


def write_warehouse(path: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE SCHEMA ops")
        con.register("kpis", _kpi_months())
        con.execute("CREATE TABLE marts.mrr_kpis_monthly AS SELECT * FROM kpis")
        con.execute(
            """CREATE TABLE marts.inside_sales_kpis_monthly AS
               SELECT month, is_complete, CASE WHEN is_complete THEN 40 ELSE 3 END AS accounts_approached,
                      CASE WHEN is_complete THEN 25 ELSE 1 END AS effective_conversations
               FROM kpis"""
        )
        con.register(
            "customers", pd.DataFrame(CUSTOMERS, columns=["customer_id", "status", "rank", "mrr", "november_mrr"])
        )
        con.execute("CREATE TABLE marts.customers AS SELECT customer_id, status, rank, mrr FROM customers")
        con.execute(
            """CREATE TABLE marts.customer_mrr_monthly AS
               SELECT DATE '2026-11-01' AS month, true AS is_complete, customer_id, november_mrr AS mrr,
                      true AS is_customer FROM customers
               UNION ALL
               SELECT DATE '2026-12-01', false, customer_id, mrr, mrr > 0 FROM customers"""
        )
        bands = [("company_size", b, 100_000.0 * (i + 1)) for i, b in enumerate(TEXT_ORDER_BANDS)]
        bands += [("tenure", b, 50_000.0) for b in ("0-11", "12-23", "24-35", "36+")]
        revenue = pd.DataFrame(
            [
                {"month": NOVEMBER, "breakdown": k, "band": b, "existing_mrr": v, "churned_customers": 0}
                for k, b, v in bands
            ]
            + [
                {
                    "month": NOVEMBER,
                    "breakdown": "cancel_reason",
                    "band": r,
                    "existing_mrr": None,
                    "churned_customers": n,
                }
                for r, n in (("past_due", 2), ("unknown", 1), ("価格", 3))
            ]
        )
        con.register("revenue", revenue)
        con.execute(
            """CREATE TABLE marts.existing_customer_revenue_monthly AS
               SELECT month, month < DATE '2026-12-01' AS is_complete, breakdown, band, existing_mrr, churned_customers
               FROM revenue"""
        )
        # A win-back campaign: customers chosen because they pay nothing, so no MRR change can be measured.
        con.execute(
            """CREATE TABLE ops.campaign_recipients AS SELECT * FROM (VALUES
                 ('winback_autumn', 'W1', 'treatment', DATE '2026-11-10'),
                 ('winback_autumn', 'W2', 'holdout', DATE '2026-11-10')) t(campaign, customer_id, variant, as_of)"""
        )
    finally:
        con.close()


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    write_warehouse(path)
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ReportResult]:
    """The report of 2026-12-05 in both languages, drawn once for the tests that only read it."""
    root = tmp_path_factory.mktemp("report-december")
    write_warehouse(root / "warehouse.duckdb")
    return {lang: report(root, root / "warehouse.duckdb", lang) for lang in ("en", "ja")}


def report(tmp_path: Path, warehouse: Path, lang: str, as_of: dt.date = AS_OF) -> ReportResult:
    settings = Settings(warehouse=warehouse, var_dir=tmp_path / "var", outbox_dir=tmp_path / "outbox")
    return build_report(settings, as_of, lang)  # type: ignore[arg-type]


def section(result: ReportResult, key: str) -> RenderedSection:
    return next(s for s in result.sections if s.key == key)


def chart_rows(result: ReportResult) -> dict[str, list[dict[str, Any]]]:
    """Every data row each chart draws, by chart name."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for s in result.sections:
        for chart in s.section.charts:
            spec = chart.spec.to_dict()
            rows[chart.name] = [row for data in spec.get("datasets", {}).values() for row in data]
    return rows


def svg_text(result: ReportResult, chart: str) -> str:
    drawn = next(c for s in result.sections for c in s.charts if c.name == chart)
    return base64.b64decode(drawn.svg_data_uri.split(",", 1)[1]).decode("utf-8")


def test_the_month_in_progress_is_not_drawn_and_november_is_reported_throughout(
    reports: dict[str, ReportResult],
) -> None:
    result = reports["en"]
    html = result.path.read_text(encoding="utf-8")
    assert result.errors == {}

    drawn = chart_rows(result)
    assert {"mrr_trend", "nrr_grr_monthly", "churn_rates", "inside_sales_activity"} <= set(drawn)
    for name, rows in drawn.items():
        months = {str(r["month"])[:7] for r in rows if "month" in r}
        assert "2026-12" not in months, f"{name} draws December, five days old"
    assert max(str(r["month"])[:7] for r in drawn["mrr_trend"]) == "2026-11"

    # One month everywhere: the headline, the bridge, ranks (today's ranks, November's MRR) and inside sales.
    assert "Reporting month: 2026-11" in html and "MRR bridge 2026-11" in html
    headline = re.search(r'<div class="label">MRR \(2026-11\)</div><div class="value">([^<]+)</div>', html)
    assert headline is not None and headline.group(1) == f"¥{NOVEMBER_MRR:,.0f}"
    ranks = section(result, "ranks").section.tables[0]
    assert ranks.title == "Rank A/B/C 2026-11"
    by_rank = {row[0]: row for row in ranks.rows}
    assert set(by_rank) == {"A", "B", "C", "none"}  # C4 paid in November, has no rank now
    assert sum(int(row[2].lstrip("¥").replace(",", "")) for row in ranks.rows) == NOVEMBER_MRR
    assert by_rank["none"][1:3] == ["1", "¥29,700"]
    inside = section(result, "inside_sales").section.tables[0]
    assert inside.title.endswith("2026-11") and inside.columns[1] == "2026-11"
    assert "2026-12 is in progress (month to date as of 2026-12-05)" in html


def test_a_warehouse_built_before_november_closed_reports_october(tmp_path: Path, warehouse: Path) -> None:
    """Built on 2026-11-20, November is month to date in the marts: a report of 2026-12-05 stops at October."""
    with duckdb.connect(str(warehouse)) as con:
        for mart in ("mrr_kpis_monthly", "inside_sales_kpis_monthly", "existing_customer_revenue_monthly"):
            con.execute(f"DELETE FROM marts.{mart} WHERE month = DATE '2026-12-01'")
            con.execute(f"UPDATE marts.{mart} SET is_complete = false WHERE month = DATE '2026-11-01'")
    result = report(tmp_path, warehouse, "en")
    html = result.path.read_text(encoding="utf-8")
    assert "Reporting month: 2026-10" in html and "MRR bridge 2026-10" in html
    assert "the warehouse may be stale" in html and "2026-11 was in progress when the marts were built" in html
    for name, rows in chart_rows(result).items():
        assert all(str(r["month"])[:7] <= "2026-10" for r in rows if "month" in r), name


def test_company_size_bands_read_in_numeric_order(reports: dict[str, ReportResult]) -> None:
    result = reports["ja"]
    existing = section(result, "existing").section
    size_table = next(t for t in existing.tables if "企業規模" in t.title)
    expected = ["1-49", "50-299", "300-999", "1000+", "不明"]
    assert [row[0] for row in size_table.rows] == expected
    chart = next(c for c in existing.charts if c.name == "existing_mrr_company_size")
    assert chart.spec.to_dict()["encoding"]["x"]["sort"] == expected
    tenure = next(t for t in existing.tables if "継続期間" in t.title)
    assert [row[0] for row in tenure.rows] == ["0-11", "12-23", "24-35", "36+"]


def test_reason_codes_have_japanese_labels(reports: dict[str, ReportResult]) -> None:
    result = reports["ja"]
    reasons = section(result, "reasons").section.tables[0]
    assert [row[0] for row in reasons.rows] == ["価格", "支払遅延（猶予期間の超過）", "理由の記録なし"]
    assert ">past_due<" not in result.path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("lang", "contraction", "fx"), [("en", "-¥1,000", "-¥300"), ("ja", "-1,000円", "-300円")], ids=["en", "ja"]
)
def test_small_bridge_movements_are_not_rounded_to_zero(
    reports: dict[str, ReportResult], lang: str, contraction: str, fx: str
) -> None:
    svg = svg_text(reports[lang], "mrr_bridge")
    labels = re.findall(r">([^<>]+)</text>", svg)
    assert contraction in labels and fx in labels, labels
    assert "0" not in labels and "-0" not in labels


def test_no_lift_chart_when_nobody_can_be_measured_a_sentence_instead(reports: dict[str, ReportResult]) -> None:
    result = reports["en"]
    campaigns = section(result, "campaigns")
    assert "campaign_lift" not in {c.name for c in campaigns.charts}
    assert any(n.startswith("no MRR change to show yet") for n in campaigns.section.notes)
    assert campaigns.section.tables and campaigns.section.tables[0].rows[0][0] == "winback_autumn"
