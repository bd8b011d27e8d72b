"""Ingest: files are parsed to the contract's types, bad input is named precisely, raw is untouched."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, connect, publish_incoming
from kizuna.sources.ingest import stage_sources
from tests.conftest import write_csv

CUSTOMERS_HEADER = ["customer_id", "name", "employee_count", "created_at", "owner_email"]
SUBSCRIPTIONS_HEADER = [
    "subscription_id",
    "customer_id",
    "start_date",
    "end_date",
    "mrr",
    "amount",
    "billing_period_months",
    "contract_term_months",
    "status",
]


def good_sources(src: Path, encoding: str = "utf-8") -> None:
    write_csv(
        src / "customers.csv",
        CUSTOMERS_HEADER,
        [
            ["C1", "株式会社テスト", "1,200", "2024/01/05 10:00", "tanaka@example.co.jp"],
            ["C2", "サンプル商事株式会社", "30", "2024-02-01", ""],
        ],
        encoding=encoding,
    )
    write_csv(
        src / "subscriptions.csv",
        SUBSCRIPTIONS_HEADER,
        [
            ["S1", "C1", "2024-01-01", "", "￥80,000", "", "", "12", "active"],
            ["S2", "C2", "2024/02/01", "2024-05-01", "", "120000", "12", "12", "canceled"],
        ],
        encoding=encoding,
    )


def raw_fingerprint(settings: Settings) -> dict[str, str]:
    """A checksum of every raw table's full contents, to prove a failed load changed nothing."""
    with connect(settings.warehouse) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw' ORDER BY 1"
            ).fetchall()
        ]
        return {
            t: con.execute(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg(CAST(r AS VARCHAR), '|' "
                f"ORDER BY CAST(r AS VARCHAR))), '') FROM raw.\"{t}\" r"
            ).fetchone()[0]
            for t in tables
        }


def load(settings: Settings) -> dict[str, int]:
    result = stage_sources(settings)
    with connect(settings.warehouse) as con:
        return publish_incoming(con, result.load_id)


def test_good_files_are_typed_and_keep_their_row_numbers(settings: Settings) -> None:
    good_sources(settings.source_dir)
    counts = load(settings)
    assert counts["customers"] == 2 and counts["subscriptions"] == 2 and counts["usage"] == 0
    with connect(settings.warehouse) as con:
        c1 = con.execute(
            "SELECT employee_count, created_at, _source_file, _source_row FROM raw.customers WHERE customer_id = 'C1'"
        ).fetchone()
        s = con.execute(
            "SELECT subscription_id, start_date, end_date, mrr, amount, currency FROM raw.subscriptions ORDER BY 1"
        ).fetchall()
    # 10:00 in Tokyo is 01:00 UTC; "1,200" and "￥80,000" as Japanese Excel formats them.
    assert c1 == (1200, dt.datetime(2024, 1, 5, 1, 0), "customers.csv", 2)
    # No currency column: raw keeps the blank; staging applies the contract's default (JPY) once.
    assert s[0] == ("S1", dt.date(2024, 1, 1), None, Decimal("80000.00"), None, None)
    assert s[1] == ("S2", dt.date(2024, 2, 1), dt.date(2024, 5, 1), None, Decimal("120000.00"), None)


def test_cp932_files_from_excel_are_converted(settings: Settings) -> None:
    good_sources(settings.source_dir, encoding="cp932")
    result = stage_sources(settings)
    assert {s.table: s.encoding for s in result.staged} == {"customers": "cp932", "subscriptions": "cp932"}
    with connect(settings.warehouse) as con:
        names = [r[0] for r in con.execute(f"SELECT name FROM {INCOMING_SCHEMA}.customers ORDER BY 1").fetchall()]
    assert names == ["サンプル商事株式会社", "株式会社テスト"]


def test_customers_xlsx_is_read_instead_of_csv(settings: Settings) -> None:
    good_sources(settings.source_dir)
    (settings.source_dir / "customers.csv").unlink()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(CUSTOMERS_HEADER)
    ws.append(["C1", "株式会社テスト", 1200, dt.datetime(2024, 1, 5, 10, 0), "tanaka@example.co.jp"])
    ws.append(["C2", "サンプル商事株式会社", 30, dt.datetime(2024, 2, 1), None])
    wb.save(settings.source_dir / "customers.xlsx")
    counts = load(settings)
    assert counts["customers"] == 2
    with connect(settings.warehouse) as con:
        row = con.execute(
            "SELECT employee_count, created_at, _source_file FROM raw.customers WHERE customer_id = 'C1'"
        ).fetchone()
    assert row == (1200, dt.datetime(2024, 1, 5, 1, 0), "customers.xlsx")


def test_missing_optional_files_are_reported_as_skipped(settings: Settings) -> None:
    good_sources(settings.source_dir)
    result = stage_sources(settings)
    assert set(result.skipped) == {
        "contacts",
        "invoices",
        "usage",
        "deals",
        "activities",
        "support_tickets",
        "fx_rates",
    }


BAD_INPUTS = [
    pytest.param(
        lambda src: write_csv(
            src / "subscriptions.csv",
            [h for h in SUBSCRIPTIONS_HEADER if h != "start_date"],
            [["S9", "C1", "", "1000", "", "", "1", "active"]],
        ),
        "subscriptions.csv, row 1, column start_date: required column is missing",
        id="missing-required-column",
    ),
    pytest.param(
        lambda src: write_csv(
            src / "subscriptions.csv",
            SUBSCRIPTIONS_HEADER,
            [
                ["S1", "C1", "2024-01-01", "", "1000", "", "", "1", "active"],
                ["S2", "C1", "2024-13-45", "", "1000", "", "", "1", "active"],
            ],
        ),
        "subscriptions.csv, row 3, column start_date: is not a date (YYYY-MM-DD or YYYY/MM/DD) (found '2024-13-45')",
        id="start-date-not-a-date",
    ),
    pytest.param(
        lambda src: write_csv(
            src / "customers.csv",
            CUSTOMERS_HEADER,
            [
                ["C1", "株式会社テスト", "10", "", ""],
                ["", "名無し株式会社", "10", "", ""],
            ],
        ),
        "customers.csv, row 3, column customer_id: required value is empty",
        id="required-value-empty",
    ),
]


@pytest.mark.parametrize(("break_it", "message"), BAD_INPUTS)
def test_bad_input_names_file_row_column_and_leaves_raw_unchanged(settings: Settings, break_it, message) -> None:
    good_sources(settings.source_dir)
    load(settings)
    before = raw_fingerprint(settings)
    assert before["customers"].startswith("2:")

    break_it(settings.source_dir)
    with pytest.raises(SourceContractError) as info:
        stage_sources(settings)
    assert message in str(info.value)
    assert raw_fingerprint(settings) == before


def test_undecodable_file_names_the_line(settings: Settings) -> None:
    good_sources(settings.source_dir)
    path = settings.source_dir / "customers.csv"
    path.write_bytes(path.read_bytes() + b"C3,\xff\xfe\xfd broken,1,,\n")
    with pytest.raises(SourceContractError, match=r"customers.csv: is neither UTF-8 nor CP932.*line 4"):
        stage_sources(settings)


def test_findings_of_several_files_keep_the_contracts_table_order(settings: Settings) -> None:
    """Files are read several at once, largest first; their findings still come in the contract's table order."""
    good_sources(settings.source_dir)
    write_csv(settings.source_dir / "customers.csv", CUSTOMERS_HEADER, [["", "名無し株式会社", "10", "", ""]])
    bad_date = ["S1", "C1", "2024-13-45", "", "1000", "", "", "1", "active"]
    # The larger file (read first) is subscriptions.csv; customers come first in the contract.
    write_csv(settings.source_dir / "subscriptions.csv", SUBSCRIPTIONS_HEADER, [bad_date] * 50)
    with pytest.raises(SourceContractError) as info:
        stage_sources(settings)
    message = str(info.value)
    customers = message.index("customers.csv, row 2, column customer_id: required value is empty")
    subscriptions = message.index("subscriptions.csv, row 2, column start_date: is not a date")
    assert customers < subscriptions


def test_ingest_counts_a_one_row_file_as_one_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """What `kizuna ingest` prints per file, as a newcomer trying one hand-written row reads it."""
    from typer.testing import CliRunner

    from kizuna.cli import app

    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    source = tmp_path / "export"
    source.mkdir()
    write_csv(source / "customers.csv", CUSTOMERS_HEADER, [["C1", "株式会社テスト", "12", "", ""]])
    write_csv(
        source / "subscriptions.csv",
        SUBSCRIPTIONS_HEADER,
        [["S1", "C1", "2024-01-01", "", "1000", "", "", "1", "active"]] * 2,
    )
    result = CliRunner().invoke(app, ["ingest", "--source-dir", str(source)])
    printed = result.output + capfd.readouterr().out  # the session writes to the terminal's own stream
    assert result.exit_code == 0, printed
    assert "customers.csv: 1 row (utf-8" in printed
    assert "subscriptions.csv: 2 rows (utf-8" in printed
