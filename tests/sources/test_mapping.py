"""Exports as people have them: header mappings, width folding, Japanese booleans and `kizuna sources check`."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from kizuna.core.errors import SourceContractError, SourceError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, connect
from kizuna.sources.ingest import stage_sources
from kizuna.sources.mapping import load_mapping
from tests.conftest import write_csv

EXPORTS = Path(__file__).parent / "exports"


def staged(settings: Settings, sql: str) -> list[tuple]:
    with connect(settings.warehouse) as con:
        return con.execute(sql.replace("incoming.", f"{INCOMING_SCHEMA}.")).fetchall()


def test_full_width_digits_dates_and_spaces_are_folded_before_parsing(settings: Settings) -> None:
    src = settings.source_dir
    write_csv(
        src / "customers.csv", ["customer_id", "name", "employee_count"], [["Ｃ００１", "全角商事", "　１，２００　"]]
    )
    write_csv(
        src / "subscriptions.csv",
        ["subscription_id", "customer_id", "start_date", "mrr", "contract_term_months"],
        [
            ["Ｓ１", "Ｃ００１", "２０２４－０２－０１", "１００００", "１２"],
            ["S2", " C001 ", "2024/03/01 09:30", "¥5,000", "1"],
        ],
    )
    stage_sources(settings)
    assert staged(settings, "SELECT customer_id, employee_count FROM incoming.customers") == [("C001", 1200)]
    rows = staged(
        settings, "SELECT subscription_id, customer_id, start_date, mrr FROM incoming.subscriptions ORDER BY 1"
    )
    assert rows == [
        ("S1", "C001", dt.date(2024, 2, 1), Decimal("10000.00")),
        ("S2", "C001", dt.date(2024, 3, 1), Decimal("5000.00")),
    ]


@pytest.mark.parametrize(
    ("written", "expected"),
    [("はい", True), ("いいえ", False), ("○", True), ("×", False), ("ＹＥＳ", True), ("0", False)],
    ids=["hai", "iie", "maru", "batsu", "full-width-yes", "zero"],
)
def test_booleans_as_japanese_forms_write_them(settings: Settings, written: str, expected: bool) -> None:
    src = settings.source_dir
    write_csv(src / "customers.csv", ["customer_id", "name"], [["C1", "テスト"]])
    write_csv(
        src / "subscriptions.csv",
        ["subscription_id", "customer_id", "start_date", "mrr"],
        [["S1", "C1", "2024-01-01", "1"]],
    )
    write_csv(
        src / "contacts.csv",
        ["contact_id", "customer_id", "email", "marketing_opt_in"],
        [["P1", "C1", "a@example.jp", written]],
    )
    stage_sources(settings)
    assert staged(settings, "SELECT marketing_opt_in FROM incoming.contacts") == [(expected,)]


def mapping_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "sources.yaml").write_text(f"files:\n  mapping: {path}\n", encoding="utf-8")
    return path


def test_a_mapping_reads_headers_values_constants_and_keeps_rows(tmp_path: Path, settings: Settings) -> None:
    mapping_file(
        tmp_path,
        """
customers:
  file: "顧客*.csv"
  columns: {customer_id: 取引先ID, name: 取引先名}
subscriptions:
  file: "契約*.csv"
  keep: {区分: [契約]}
  columns:
    {subscription_id: 契約ID, customer_id: 取引先ID, start_date: 開始日, mrr: 月額, status: ステータス, currency: {constant: JPY}}
  values:
    status: {有効: active, 解約: canceled, "*": null}
""",
    )
    src = settings.source_dir
    write_csv(
        src / "顧客一覧.csv", ["取引先ID", "取引先名"], [["C1", "株式会社A"], ["C2", "株式会社B"]], encoding="cp932"
    )
    write_csv(
        src / "契約一覧.csv",
        ["契約ID", "取引先ID", "開始日", "月額", "ステータス", "区分"],
        [
            ["K1", "C1", "2024/01/01", "10,000円", "有効", "契約"],
            ["Q1", "C2", "2024/01/01", "99,999", "有効", "見積"],  # a quote, not a contract: filtered out
            ["K2", "C2", "2024/02/01", "5000", "解約", "契約"],
            ["K3", "C2", "2024/03/01", "7000", "不明", "契約"],
        ],
    )
    result = stage_sources(settings.model_copy(update={"sources_config": tmp_path / "sources.yaml"}))
    assert {s.table: s.file for s in result.staged} == {"customers": "顧客一覧.csv", "subscriptions": "契約一覧.csv"}
    rows = staged(
        settings, "SELECT subscription_id, customer_id, mrr, status, _source_row FROM incoming.subscriptions ORDER BY 1"
    )
    # Rows keep their spreadsheet numbers after the filter, so a finding still points at the right line.
    assert rows == [
        ("K1", "C1", Decimal("10000.00"), "active", 2),
        ("K2", "C2", Decimal("5000.00"), "canceled", 4),
        ("K3", "C2", Decimal("7000.00"), None, 5),
    ]


def test_findings_of_a_mapped_file_name_the_exports_header(tmp_path: Path, settings: Settings) -> None:
    path = mapping_file(
        tmp_path,
        """
customers:
  file: accounts.csv
  columns: {customer_id: Account ID, name: Account Name}
subscriptions:
  file: opportunities.csv
  columns: {subscription_id: Opportunity ID, customer_id: Account ID, start_date: Close Date, mrr: Amount}
""",
    )
    src = settings.source_dir
    write_csv(src / "accounts.csv", ["Account ID", "Account Name"], [["A1", "Acme"]])
    write_csv(src / "opportunities.csv", ["Opportunity ID", "Account ID", "Amount"], [["O1", "A1", "12x"]])
    with pytest.raises(SourceContractError) as caught:
        stage_sources(settings.model_copy(update={"sources_config": tmp_path / "sources.yaml"}))
    assert "opportunities.csv, row 1, column Close Date (start_date): required column is missing" in str(caught.value)
    assert path.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("customers:\n  file: a.csv\n  columns: {customer_idd: ID}\n", "customers.columns.customer_idd"),
        ("customerz:\n  file: a.csv\n", "customerz: is not a contract table"),
        ("customers:\n  file: a.csv\n  colums: {}\n", "customers.colums: unknown key"),
        ("customers:\n  columns: {name: Name}\n", "customers.file"),
        ("customers:\n  file: a.csv\n  columns:\n    name: A\n    name: B\n", "key 'name' appears twice"),
    ],
    ids=["unknown-column", "unknown-table", "misspelt-key", "no-file", "key-twice"],
)
def test_a_broken_mapping_names_its_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        load_mapping(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def kizuna(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kizuna.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sources_check_reports_a_japanese_export_without_touching_the_warehouse(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    done = kizuna(
        "sources", "check", str(EXPORTS / "kintone-ja"), "--mapping", "kintone-ja",
        cwd=tmp_path, env={"KIZUNA_WAREHOUSE": str(warehouse)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "(mapping: kintone-ja.yaml)" in out
    assert "customers <- 顧客一覧_20261120.csv: 3 rows, encoding cp932" in out
    assert "customer_id <- 取引先ID" in out and "status <- ステータス" in out
    assert "ignored columns: 備考" in out
    assert (
        "no column plan_limit (until then: no limit (no near-plan-limit signal)); it would add: the near_plan_limit"
        in out
    )
    assert "usage: no file (optional, skipped); it would add: the usage_drop" in out
    assert "\x1b[" not in out  # piped: no escape codes
    assert not warehouse.exists()


def test_sources_check_names_file_row_and_column_of_the_first_problems(tmp_path: Path) -> None:
    src = tmp_path / "export"
    src.mkdir()
    write_csv(src / "customers.csv", ["customer_id", "name"], [["C1", "A"]])
    write_csv(src / "subscriptions.csv", ["subscription_id", "customer_id", "start_date"], [["S1", "C1", "2024-13-01"]])
    done = kizuna("sources", "check", str(src), cwd=tmp_path)
    assert done.returncode == 1
    assert "subscriptions.csv, row 2, column start_date: is not a date" in done.stdout
    assert "the header has neither `mrr` nor `amount` with `billing_period_months`" in done.stdout


def test_sources_check_refuses_an_unknown_mapping_in_one_line(tmp_path: Path) -> None:
    done = kizuna("sources", "check", str(EXPORTS / "hubspot-export"), "--mapping", "hubspt-export", cwd=tmp_path)
    assert done.returncode == 1
    assert "no shipped mapping named 'hubspt-export'" in done.stderr
    assert "did you mean hubspot-export?" in done.stderr
    assert "Traceback" not in done.stderr
