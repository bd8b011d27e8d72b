"""The KPI report: real figures from the demo, honest gaps where marts are missing, escaped data, Japanese glyphs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
import vl_convert as vlc

from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.reporting.charts import FONT_FAMILY, register_cjk_fonts
from kizuna.reporting.report import build_report
from tests.reporting.demo_warehouse import AS_OF

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def report_settings(tmp_path: Path, warehouse: Path) -> Settings:
    return Settings(warehouse=warehouse, var_dir=tmp_path / "var", outbox_dir=tmp_path / "var" / "outbox")


def test_report_renders_real_figures_from_the_demo(tmp_path: Path, demo_warehouse_path: Path) -> None:
    settings = report_settings(tmp_path, demo_warehouse_path)
    result = build_report(settings, AS_OF, "ja")

    assert result.path == tmp_path / "var" / "reports" / "report-2026-11-23-ja.html"
    html = result.path.read_text(encoding="utf-8")
    assert result.errors == {}
    # Everything but the engagement mart (built by the tracking area, not selected here) is there.
    assert result.missing == {"campaigns": ["まだ利用できません（マート campaign_performance がありません）"]}
    charts = {p.stem for p in result.png_paths}
    assert {
        "mrr_bridge",
        "mrr_trend",
        "arr_trend",
        "nrr_grr_monthly",
        "nrr_grr_trailing",
        "churn_rates",
        "cohort_logo_retention_rate",
        "rank_customers",
        "existing_mrr_company_size",
        "existing_mrr_tenure",
        "churn_reasons",
        "inside_sales_activity",
        "campaign_lift",
    } <= charts
    for png in result.png_paths:
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 2000, png

    with connect(demo_warehouse_path, read_only=True) as con:
        ending, churned = con.execute(
            "SELECT ending_mrr, churned_mrr FROM marts.mrr_kpis_monthly WHERE month = DATE '2026-10-01'"
        ).fetchone()
        holdout = con.execute(
            "SELECT count(DISTINCT customer_id) FROM ops.campaign_recipients WHERE variant = 'holdout'"
        ).fetchone()[0]
    assert f"{float(ending):,.0f}円" in html  # headline tile and bridge table
    assert f"{-float(churned):,.0f}円" in html  # churn enters the bridge as a loss
    assert "既存顧客 KPI レポート" in html and "MRR ブリッジ 2026-10" in html
    assert f'<td>対照群</td><td class="num">{holdout}</td>' in html
    assert html.count('<img src="data:image/svg+xml;base64,') == len(result.png_paths)


def _small_warehouse(path: Path, reason: str) -> None:
    """Only mrr_kpis_monthly, customers and one reason row: every other section must say what is missing."""
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            """CREATE TABLE marts.mrr_kpis_monthly AS
               SELECT month::DATE AS month, 1000000 + i * 10000 AS starting_mrr, 20000 AS new_mrr,
                      5000 AS expansion_mrr, 1000 AS contraction_mrr, 4000 AS churned_mrr,
                      1010000 + i * 10000 + 10000 AS ending_mrr, 0.98 AS nrr, 0.97 AS grr,
                      0.02 AS customer_churn_rate
               FROM (SELECT range AS month, row_number() OVER (ORDER BY range) - 1 AS i
                     FROM range(DATE '2025-11-01', DATE '2026-11-02', INTERVAL 1 MONTH))"""
        )
        con.execute(
            """CREATE TABLE marts.customers AS SELECT * FROM (VALUES
                 ('C1', 'active', 'A', 500000), ('C2', 'active', 'B', 100000), ('C3', 'active', 'C', 10000),
                 ('C4', 'churned', NULL, 0)) t(customer_id, status, rank, mrr)"""
        )
        con.execute(
            """CREATE TABLE marts.existing_customer_revenue_monthly AS
               SELECT DATE '2026-09-01' AS month, 'cancel_reason' AS breakdown, ? AS band,
                      100 AS existing_mrr, 3 AS churned_customers""",
            [reason],
        )
    finally:
        con.close()


def test_sections_say_which_marts_are_missing_and_data_is_escaped(tmp_path: Path) -> None:
    warehouse = tmp_path / "small.duckdb"
    reason = '<script>alert("x")</script>'
    _small_warehouse(warehouse, reason)
    settings = report_settings(tmp_path, warehouse)

    first = build_report(settings, dt.date(2026, 10, 5), "en")
    html = first.path.read_text(encoding="utf-8")
    assert first.errors == {}
    assert first.missing["cohorts"] == ["not available yet (mart cohort_retention_monthly missing)"]
    assert first.missing["inside_sales"] == ["not available yet (mart inside_sales_kpis_monthly missing)"]
    assert "not available yet (column fx_impact_mrr missing in mart mrr_kpis_monthly)" in first.missing["bridge"]
    assert "not available yet (column trailing_12m_nrr missing in mart mrr_kpis_monthly)" in first.missing["retention"]
    assert "not available yet (mart ops.campaign_recipients missing)" in first.missing["campaigns"]
    assert "rank movement not available yet" in html
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert {"mrr_bridge", "rank_customers", "churn_reasons"} <= {p.stem for p in first.png_paths}

    # A later report compares ranks with the ranks the earlier one recorded.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE marts.customers SET rank = 'A' WHERE customer_id = 'C2'")
    second = build_report(settings, dt.date(2026, 11, 23), "en")
    assert "rank_movement" in {p.stem for p in second.png_paths}
    assert "Rank movement (previous report 2026-10-05 → now)" in second.path.read_text(encoding="utf-8")


def test_japanese_labels_get_glyphs(tmp_path: Path) -> None:
    """With the CJK font registered, Japanese text draws pixels; without glyphs it would draw nothing."""
    font_dir = register_cjk_fonts()
    if font_dir is None:
        pytest.fail("no font with Japanese glyphs: install Debian's fonts-noto-cjk (make test does)")

    def png(text: str) -> bytes:
        spec = {
            "data": {"values": [{}]},
            "mark": {"type": "text", "fontSize": 40},
            "encoding": {"text": {"value": text}},
            "width": 200,
            "height": 60,
            "config": {"font": FONT_FAMILY, "view": {"stroke": None}},
        }
        return vlc.vegalite_to_png(spec)

    assert png("解約理由") != png("")
    assert png("解約理由") != png("契約更新")


def test_report_cli_writes_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kizuna.cli import app

    warehouse = tmp_path / "small.duckdb"
    _small_warehouse(warehouse, "価格")
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(app, ["report", "--warehouse", str(warehouse), "--as-of", "2026-11-23", "--lang", "en"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "var" / "reports" / "report-2026-11-23-en.html"
    assert str(page) in result.output and page.exists()
    html = page.read_text(encoding="utf-8")
    assert "Existing-customer KPI report" in html and "¥1,130,000" in html  # ending MRR of 2026-10
    assert (tmp_path / "var" / "reports" / "report-2026-11-23-en" / "mrr_bridge.png").exists()
