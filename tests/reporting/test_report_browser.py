"""The KPI report as a reader sees it, in headless Chromium: no month in progress, no empty chart, page-wide charts.

Screenshots are kept under the test's tmp dir and, when KIZUNA_TEST_ARTIFACTS is set, copied there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kizuna.core.settings import Settings
from kizuna.reporting.report import ReportResult, build_report
from tests.reporting.demo_warehouse import AS_OF
from tests.reporting.test_report_months import AS_OF as DECEMBER_5
from tests.reporting.test_report_months import chart_rows, write_warehouse
from tests.studio.test_studio_browser import browser, screenshot  # noqa: F401 (the session's Chromium fixture)

VIEWPORT = {"width": 1600, "height": 1000}


def _layout(page: Any) -> list[dict[str, Any]]:
    """Per figure: its section, how many charts share the section, and its width against the section's."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('.charts')].flatMap(box => {
                   const figures = [...box.querySelectorAll('figure')];
                   return figures.map(f => ({
                       section: box.closest('section').id,
                       chart: f.dataset.chart,
                       shared: figures.length,
                       share: f.querySelector('img').getBoundingClientRect().width
                              / box.getBoundingClientRect().width,
                       loaded: f.querySelector('img').complete && f.querySelector('img').naturalWidth > 0,
                   }));
               })"""
        )
    )


def _assert_uses_the_page(layout: list[dict[str, Any]]) -> None:
    assert layout
    for figure in layout:
        assert figure["loaded"], figure
        # Alone, a chart spans its section; otherwise two share a row (never a fixed 600 px island).
        assert figure["share"] >= (0.95 if figure["shared"] == 1 else 0.45), figure


def test_demo_report_has_no_partial_month_and_no_empty_chart(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    demo_warehouse_path: Path,
) -> None:
    """The demo's marts run through 2026-11 (as of 2026-11-23): the page reports 2026-10 and draws no November."""
    result: ReportResult = build_report(Settings(warehouse=demo_warehouse_path, var_dir=tmp_path / "var"), AS_OF, "ja")
    drawn = chart_rows(result)
    assert len(drawn) >= 12
    for name, rows in drawn.items():
        assert rows, f"{name} is an empty chart"
        assert all(str(r["month"])[:7] <= "2026-10" for r in rows if "month" in r), name

    page = browser.new_page(viewport=VIEWPORT)
    page.goto(result.path.as_uri())
    assert "2026-11 は進行中です" in page.locator("#in-progress").inner_text()
    assert "報告月: 2026-10" in page.locator("header").inner_text()
    _assert_uses_the_page(_layout(page))
    screenshot(page, tmp_path / "report-demo-ja.png")
    page.close()


def test_a_report_without_measurable_campaigns_says_so_instead_of_drawing_axes(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    write_warehouse(tmp_path / "warehouse.duckdb")
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", var_dir=tmp_path / "var")
    result = build_report(settings, DECEMBER_5, "en")
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(result.path.as_uri())
    campaigns = page.locator("section#campaigns")
    assert campaigns.locator("figure").count() == 0
    assert "no MRR change to show yet" in campaigns.inner_text()
    assert "2026-12 is in progress" in page.locator("#in-progress").inner_text()
    _assert_uses_the_page(_layout(page))
    screenshot(page, tmp_path / "report-december-en.png")
    page.close()
