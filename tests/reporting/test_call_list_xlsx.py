"""The reps' call list workbook, from an ops.call_list written by hand in the campaign engine's shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook

from kizuna.reporting.call_list_xlsx import BANDS, band_for, write_call_list

ROWS = [
    # run_id, as_of, owner, customer, name, rank, signals, days, hypothesis, next_action, priority
    (
        "r2",
        "2026-11-23",
        "sato@kizuna.example.jp",
        "C1",
        "株式会社みらい物産",
        "A",
        ["usage_drop"],
        120,
        "利用が4割減",
        "利用状況の確認電話",
        1,
    ),
    (
        "r2",
        "2026-11-23",
        "sato@kizuna.example.jp",
        "C2",
        '=HYPERLINK("http://evil","x")',
        "B",
        ["renewal_upcoming", "no_recent_touch"],
        45,
        "更新前",
        "更新の提案",
        2,
    ),
    (
        "r2",
        "2026-11-23",
        "abe@kizuna.example.jp",
        "C3",
        "北陸情報サービス",
        "A",
        ["near_plan_limit"],
        None,
        "上限間近",
        "上位プランの提案",
        1,
    ),
    ("r2", "2026-11-23", None, "C4", "ユニオンソフト", "C", [], 10, "クロスセル", "資料送付", 3),
    (
        "r2",
        "2026-11-23",
        "abe@kizuna.example.jp",
        "C5",
        "奈良リテール",
        "B",
        ["support_spike"],
        75,
        "問い合わせ増",
        "フォロー",
        2,
    ),
    ("r1", "2026-11-22", "sato@kizuna.example.jp", "C9", "old run", "A", [], 1, "", "", 1),
]


FIELDS = (
    "run_id, as_of, owner_email, customer_id, customer_name, rank, signals, days_since_last_touch, hypothesis, "
    "next_action, priority"
)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    connection.execute("CREATE SCHEMA ops")
    connection.execute(
        """CREATE TABLE ops.call_list (run_id VARCHAR, as_of DATE, owner_email VARCHAR, customer_id VARCHAR,
           customer_name VARCHAR, rank VARCHAR, signals VARCHAR[], days_since_last_touch INTEGER, hypothesis VARCHAR,
           next_action VARCHAR, priority INTEGER, campaign VARCHAR DEFAULT 'daily_call_list')"""
    )
    connection.executemany(f"INSERT INTO ops.call_list ({FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ROWS)
    yield connection
    connection.close()


@pytest.mark.parametrize(
    ("days", "label"),
    [
        (None, "never touched"),
        (0, "under 30 days"),
        (29, "under 30 days"),
        (30, "30-59 days"),
        (60, "60-89 days"),
        (90, "90+ days"),
        (400, "90+ days"),
    ],
    ids=["never", "0", "29", "30", "60", "90", "400"],
)
def test_bands(days: int | None, label: str) -> None:
    assert band_for(days).label_en == label


def test_latest_run_grouped_by_owner_with_colours_and_no_formulas(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path, rows = write_call_list(con, tmp_path / "out" / "call-list.xlsx")
    assert rows == 5  # the latest run only

    sheet = load_workbook(path).active
    assert sheet.title == "コールリスト"
    assert "2026-11-23" in str(sheet["A1"].value) and "r2" in str(sheet["A1"].value)
    header = [c.value for c in sheet[4]]
    assert header[:3] == ["優先度", "顧客ID", "顧客名"]
    assert sheet.freeze_panes == "A5"
    lines = [[c.value for c in row] for row in sheet.iter_rows(min_row=5)]
    # Owners in order, each followed by its rows by priority; the unassigned last.
    firsts = [line[0] for line in lines]
    assert firsts == [
        "abe@kizuna.example.jp（2件）",
        1,
        2,
        "sato@kizuna.example.jp（2件）",
        1,
        2,
        "担当者なし（1件）",
        3,
    ]
    by_customer = {line[1]: (row_number, line) for row_number, line in enumerate(lines, start=5) if line[1]}
    row_c2, line_c2 = by_customer["C2"]
    assert line_c2[2] == "'" + '=HYPERLINK("http://evil","x")'
    assert sheet.cell(row=row_c2, column=3).data_type == "s"
    assert line_c2[5] == "renewal_upcoming, no_recent_touch"
    assert line_c2[6:] == ["更新前", "更新の提案"]

    def colour(customer: str) -> str:
        return str(sheet.cell(row=by_customer[customer][0], column=5).fill.fgColor.rgb)[-6:]

    assert colour("C1") == band_for(120).colour == BANDS[1].colour
    assert colour("C2") == band_for(45).colour
    assert colour("C3") == BANDS[0].colour  # never touched
    assert colour("C4") == band_for(10).colour
    assert len({colour(c) for c in ("C2", "C4", "C5", "C1")}) == 4
    assert sheet.row_dimensions[by_customer["C1"][0]].outlineLevel == 1  # folds under its owner


def test_a_given_run_in_english(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path, rows = write_call_list(con, tmp_path / "old.xlsx", run_id="r1", lang="en")
    sheet = load_workbook(path).active
    assert rows == 1 and sheet.title == "Call list"
    assert [c.value for c in sheet[6]][:3] == [1, "C9", "old run"]


def test_no_rows_is_an_error(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no rows for run 'nope'"):
        write_call_list(con, tmp_path / "x.xlsx", run_id="nope")


def add_second_campaign(con: duckdb.DuckDBPyConnection) -> None:
    """churn_risk_save in the same run (a daily run's campaigns share its id), listing C1 again and C6."""
    con.executemany(
        f"INSERT INTO ops.call_list ({FIELDS}, campaign) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'churn_risk_save')",
        [
            (
                "r2",
                "2026-11-23",
                "sato@kizuna.example.jp",
                "C1",
                "株式会社みらい物産",
                "A",
                [],
                120,
                "解約リスク",
                "改善策の提案",
                1,
            ),
            (
                "r2",
                "2026-11-23",
                "sato@kizuna.example.jp",
                "C6",
                "東海精機",
                "B",
                [],
                30,
                "解約リスク",
                "改善策の提案",
                2,
            ),
        ],
    )


def listed(path: Path) -> list[tuple[object, ...]]:
    return [row for row in load_workbook(path).active.iter_rows(min_row=5, values_only=True) if row[1]]


def test_one_campaigns_workbook_holds_only_its_rows(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    add_second_campaign(con)
    path, rows = write_call_list(con, tmp_path / "daily.xlsx", "r2", campaign="daily_call_list")
    assert rows == 5 and sorted(r[1] for r in listed(path)) == ["C1", "C2", "C3", "C4", "C5"]
    path, rows = write_call_list(con, tmp_path / "churn.xlsx", campaign="churn_risk_save")
    assert rows == 2 and sorted(r[1] for r in listed(path)) == ["C1", "C6"]
    assert "churn_risk_save" in str(load_workbook(path).active["A1"].value)


def test_a_whole_run_lists_each_customer_once_with_its_campaigns(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    add_second_campaign(con)
    path, rows = write_call_list(con, tmp_path / "run.xlsx", "r2", lang="en")
    sheet = load_workbook(path).active
    assert [c.value for c in sheet[4]][-1] == "Campaign"
    by_customer = {row[1]: row for row in listed(path)}
    assert rows == len(by_customer) == 6  # C1 once, though both campaigns list it
    assert by_customer["C1"][-1] == "churn_risk_save\ndaily_call_list"  # equal priority: by name
    assert by_customer["C1"][6] == "解約リスク\n利用が4割減"
    assert by_customer["C6"][-1] == "churn_risk_save"


def test_the_workbook_follows_the_one_file_mode_rule(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """Reps open call lists as they open exports: 0666 less the umask (docs/reporting.md), not 0600."""
    import os
    import stat

    before = os.umask(0o022)
    try:
        path, _ = write_call_list(con, tmp_path / "out" / "call-list.xlsx")
    finally:
        os.umask(before)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not list(path.parent.glob(".*.tmp"))
