"""The demo data honours the source contract, is deterministic, and has the shapes campaigns rely on."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from kizuna.core.contract import TABLES as CONTRACT_TABLES
from kizuna.core.contract import ColumnType, Table
from kizuna.demo.generate import generate_demo_data

AS_OF = date(2026, 2, 15)
CUSTOMERS = 300
SEED = 7

Rows = list[dict[str, str]]

# The demo writes every contract file but fx_rates: its USD rates come from dbt's fx_rates seed.
TABLES = tuple(t for t in CONTRACT_TABLES if t.name != "fx_rates")


def read(path: Path, encoding: str = "utf-8") -> tuple[list[str], Rows]:
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo")
    generate_demo_data(path, CUSTOMERS, SEED, AS_OF)
    return path


@pytest.fixture(scope="module")
def data(out: Path) -> dict[str, Rows]:
    return {t.name: read(out / f"{t.name}.csv")[1] for t in TABLES}


def test_returns_rows_per_file(tmp_path: Path) -> None:
    written = generate_demo_data(tmp_path, 50, SEED, AS_OF)
    assert list(written) == [f"{t.name}.csv" for t in TABLES]
    for name, rows in written.items():
        assert rows == len(read(tmp_path / name)[1]) > 0, name


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_header_is_the_contract(out: Path, table: Table) -> None:
    header, _ = read(out / f"{table.name}.csv")
    assert header == table.column_names


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_values_parse_as_their_contract_types(data: dict[str, Rows], table: Table) -> None:
    parse = {
        ColumnType.TEXT: str,
        ColumnType.INTEGER: int,
        ColumnType.MONEY: Decimal,
        ColumnType.NUMBER: float,
        ColumnType.DATE: date.fromisoformat,
        ColumnType.TIMESTAMP: lambda v: datetime.strptime(v, "%Y-%m-%d %H:%M:%S"),
        ColumnType.BOOLEAN: {"true": True, "false": False}.__getitem__,
    }
    for row in data[table.name]:
        for column in table.columns:
            value = row[column.name]
            if value == "":
                assert not column.required, (table.name, column.name, row)
                continue
            parse[column.type](value)
            if column.allowed:
                assert value in column.allowed, (table.name, column.name, value)


@pytest.mark.parametrize("table", [t for t in TABLES if t.key], ids=[t.name for t in TABLES if t.key])
def test_keys_are_unique(data: dict[str, Rows], table: Table) -> None:
    keys = [row[str(table.key)] for row in data[table.name]]
    assert len(keys) == len(set(keys))


def test_every_customer_reference_exists(data: dict[str, Rows]) -> None:
    customers = {row["customer_id"] for row in data["customers"]}
    assert len(customers) == CUSTOMERS
    for table in TABLES:
        assert {row["customer_id"] for row in data[table.name]} <= customers, table.name
    subscriptions = {row["subscription_id"]: row["customer_id"] for row in data["subscriptions"]}
    for invoice in data["invoices"]:
        assert subscriptions[invoice["subscription_id"]] == invoice["customer_id"]


def test_every_customer_has_exactly_one_primary_contact(data: dict[str, Rows]) -> None:
    primaries = Counter(row["customer_id"] for row in data["contacts"] if row["is_primary"] == "true")
    assert set(primaries.values()) == {1}
    assert len(primaries) == CUSTOMERS


def test_contacts_use_reserved_domains_only(data: dict[str, Rows]) -> None:
    domains = {row["email"].rsplit("@", 1)[1] for row in data["contacts"]}
    assert domains <= {"example.co.jp", "example.com"}


def test_subscriptions_end_after_they_start_and_not_in_the_future(data: dict[str, Rows]) -> None:
    for row in data["subscriptions"]:
        start = date.fromisoformat(row["start_date"])
        assert start <= AS_OF
        if row["end_date"]:
            assert date.fromisoformat(row["end_date"]) > start, row


def test_both_billing_styles_occur(data: dict[str, Rows]) -> None:
    styles = Counter(
        "mrr" if row["mrr"] and not row["amount"] else f"amount/{row['billing_period_months']}"
        for row in data["subscriptions"]
    )
    assert set(styles) == {"mrr", "amount/12"}


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return d.replace(year=d.year + m // 12, month=m % 12 + 1)  # demo start days are 1..28


def test_some_annual_contracts_renew_within_60_days(data: dict[str, Rows]) -> None:
    renewals = []
    for row in data["subscriptions"]:
        if row["status"] == "canceled" or row["contract_term_months"] != "12":
            continue
        when = date.fromisoformat(row["start_date"])
        while when <= AS_OF:
            when = _add_months(when, 12)
        if row["end_date"]:
            assert date.fromisoformat(row["end_date"]) == when, row  # a stated end is the term's end
        if when <= AS_OF + timedelta(days=60):
            renewals.append(row["subscription_id"])
    assert len(renewals) >= 5


def test_statuses_and_events_have_the_expected_variety(data: dict[str, Rows]) -> None:
    statuses = Counter(row["status"] for row in data["subscriptions"])
    assert {"active", "canceled"} <= set(statuses)
    assert any(row["cancel_reason"] == "競合へ移行" or row["cancel_reason"] == "価格" for row in data["subscriptions"])
    assert {row["type"] for row in data["deals"]} >= {"new", "upsell", "cross_sell", "renewal"}
    assert {row["metric"] for row in data["usage"]} == {"active_users", "api_calls"}


def test_same_inputs_give_identical_bytes_and_another_seed_differs(tmp_path: Path, out: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    generate_demo_data(again, CUSTOMERS, SEED, AS_OF)
    generate_demo_data(other, CUSTOMERS, SEED + 1, AS_OF)
    for table in TABLES:
        name = f"{table.name}.csv"
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    assert (other / "customers.csv").read_bytes() != (out / "customers.csv").read_bytes()
    assert (other / "subscriptions.csv").read_bytes() != (out / "subscriptions.csv").read_bytes()


def test_cp932_is_what_japanese_excel_writes(tmp_path: Path, data: dict[str, Rows]) -> None:
    generate_demo_data(tmp_path, CUSTOMERS, SEED, AS_OF, encoding="cp932")
    raw = (tmp_path / "customers.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert raw.count(b"\r\n") == CUSTOMERS + 1
    _, customers = read(tmp_path / "customers.csv", encoding="cp932")
    assert [r["name"] for r in customers] == [r["name"] for r in data["customers"]]
    _, contacts = read(tmp_path / "contacts.csv", encoding="cp932")
    assert [r["name"] for r in contacts] == [r["name"] for r in data["contacts"]]
    assert any("株式会社" in r["name"] for r in customers)


def test_customers_as_excel(tmp_path: Path, data: dict[str, Rows]) -> None:
    written = generate_demo_data(tmp_path, CUSTOMERS, SEED, AS_OF, customers_as_excel=True)
    assert "customers.xlsx" in written and not (tmp_path / "customers.csv").exists()
    sheet = load_workbook(tmp_path / "customers.xlsx", read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == TABLES[0].column_names
    assert len(rows) == CUSTOMERS + 1
    assert [r[0] for r in rows[1:]] == [r["customer_id"] for r in data["customers"]]
    assert [r[1] for r in rows[1:]] == [r["name"] for r in data["customers"]]
