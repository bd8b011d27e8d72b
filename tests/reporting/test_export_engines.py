"""A mart exported from a PostgreSQL warehouse is the same file as from DuckDB (issue 24): CSV byte for byte,
Parquet with the same column types and values, XLSX with the same cells."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
from openpyxl import load_workbook

from kizuna.core.connection import connect
from kizuna.reporting.export import FORMATS, export_mart
from tests.postgres_server import PostgresServer

COLUMNS = (
    "customer_id VARCHAR, name VARCHAR, mrr DECIMAL(18,2), churn_risk DOUBLE PRECISION, seats BIGINT, "
    "months INTEGER, first_paid_month DATE, scored_at TIMESTAMP, is_active BOOLEAN"
)
ROWS = [  # not in the grain's order; text a spreadsheet would run, quotes, commas, line breaks, NULLs
    (
        "C10",
        '=HYPERLINK("http://evil.example/","x")',
        Decimal("1200.50"),
        0.1,
        3,
        12,
        date(2025, 3, 1),
        datetime(2026, 11, 23, 6, 0, 0, 123456),
        True,
    ),
    ("C2", 'ACME "quoted", Ltd.', Decimal("-0.01"), 1e-05, None, None, None, None, None),
    (
        "C1",
        "株式会社みらい物産\nline two",
        Decimal("100"),
        100.0,
        2**40,
        -3,
        date(2026, 1, 31),
        datetime(2026, 1, 1),
        False,
    ),
    ("C3", "", None, None, 0, 0, date(2024, 2, 29), datetime(2024, 2, 29, 23, 59, 59), True),
    ("C0", None, Decimal("0.00"), 0.6666666666666666, -7, 1, date(2026, 11, 1), datetime(2026, 11, 1, 0, 0, 1), False),
    ("C4", "\t=1+1", None, None, None, None, None, None, None),
    ("C5", "\r=1+1", None, None, None, None, None, None, None),
    ("C6", "@SUM(A1:A9)", None, None, None, None, None, None, None),
    ("C7", "-2+3", None, None, None, None, None, None, None),
]


def _exported(target: Path | str, out: Path) -> dict[str, Path]:
    with connect(target) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute(f"CREATE TABLE marts.accounts ({COLUMNS})")
        con.executemany(f"INSERT INTO marts.accounts VALUES ({', '.join('?' * 9)})", ROWS)
    files = {}
    for fmt in FORMATS:
        path, rows = export_mart(target, "accounts", fmt, out / f"accounts.{fmt}", grain=["customer_id"])
        assert rows == len(ROWS)
        files[fmt] = path
    return files


def test_exports_from_postgres_are_the_files_duckdb_writes(postgres_server: PostgresServer, tmp_path: Path) -> None:
    postgres_server.create_database("export_engines")
    on_duckdb = _exported(tmp_path / "warehouse.duckdb", tmp_path / "duckdb")
    on_postgres = _exported(postgres_server.url("export_engines"), tmp_path / "postgres")

    csv = on_duckdb["csv"].read_bytes()
    assert csv.startswith(b"\xef\xbb\xbfcustomer_id,name,")  # what the comparison is of: formulas neutralised
    assert all(f"'{text}".encode() in csv for text in ("=HYPERLINK", "\t=1+1", "\r=1+1", "@SUM", "-2+3"))
    assert on_postgres["csv"].read_bytes() == csv

    def parquet(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with duckdb.connect() as con:
            types = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
            return types, con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()

    types, rows = parquet(on_duckdb["parquet"])
    assert [r[0] for r in rows] == ["C0", "C1", "C10", "C2", "C3", "C4", "C5", "C6", "C7"]  # by the grain
    assert {t[0]: t[1] for t in types}["mrr"] == "DECIMAL(18,2)"
    assert parquet(on_postgres["parquet"]) == (types, rows)

    def cells(path: Path) -> list[list[object]]:
        return [list(row) for row in load_workbook(path, read_only=True).active.iter_rows(values_only=True)]

    assert cells(on_postgres["xlsx"]) == cells(on_duckdb["xlsx"])


def test_a_server_export_keeps_the_grains_order_across_batches(postgres_server: PostgresServer, tmp_path: Path) -> None:
    """More rows than one batch read from the server: the scratch DuckDB writes them in the grain's order."""
    postgres_server.create_database("export_order")
    files = {}
    for name, target in (("duckdb", tmp_path / "warehouse.duckdb"), ("postgres", postgres_server.url("export_order"))):
        with connect(target) as con:
            con.execute("CREATE SCHEMA marts")
            con.execute(
                "CREATE TABLE marts.many AS SELECT 'C' || CAST(i * 7919 % 25000 AS VARCHAR) AS customer_id, "
                "CAST(i AS DOUBLE PRECISION) / 3 AS value FROM generate_series(1, 25000) AS t(i)"
            )
        files[name], _ = export_mart(target, "many", "csv", tmp_path / name / "many.csv", grain=["customer_id"])
    lines = files["duckdb"].read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 25001 and lines[1:] == sorted(lines[1:])
    assert files["postgres"].read_bytes() == files["duckdb"].read_bytes()
