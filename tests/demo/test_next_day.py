"""The next demo day: a small share of rows changed, late and backdated changes among them, found from the files."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from kizuna.core.warehouse import connect
from kizuna.demo.generate import generate_demo_data
from kizuna.demo.next_day import NextDayError, next_day_demo_data
from tests.dbt.incremental_days import AS_OF, NEXT, RATE, SEED, Days, shared_days, shared_exports

# The exports (1,000 customers, seed 11, the default rate) and their warehouses are shared with
# tests/dbt/test_incremental.py: generated and built once a session.
# Each file's share of changed rows, compared key-wise. The band is wide at 1,000 customers because the backdated
# changes come at least once each, whatever the budget; at 10,000 and more the share sits at the rate.
BAND = (RATE * 0.5, RATE * 2)

KEYS = {
    "customers": ("customer_id",),
    "contacts": ("contact_id",),
    "subscriptions": ("subscription_id",),
    "invoices": ("invoice_id",),
    "usage": ("customer_id", "month", "metric"),
    "deals": ("deal_id",),
    "activities": ("activity_id",),
    "support_tickets": ("ticket_id",),
}
Rows = dict[tuple[str, ...], dict[str, str]]


def read(path: Path, encoding: str = "utf-8") -> Rows:
    with path.open(encoding=encoding, newline="") as f:
        return {tuple(row[k] for k in KEYS[path.stem]): row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return shared_exports(tmp_path_factory)


@pytest.fixture(scope="module")
def tables(days: tuple[Path, Path]) -> dict[str, tuple[Rows, Rows]]:
    return {t: (read(days[0] / f"{t}.csv"), read(days[1] / f"{t}.csv")) for t in KEYS}


@pytest.mark.parametrize("table", list(KEYS), ids=list(KEYS))
def test_each_file_changes_by_about_the_rate(tables: dict[str, tuple[Rows, Rows]], table: str) -> None:
    before, after = tables[table]
    inserted = after.keys() - before.keys()
    deleted = before.keys() - after.keys()
    updated = [k for k in before.keys() & after.keys() if before[k] != after[k]]
    share = (len(inserted) + len(deleted) + len(updated)) / len(before)
    assert BAND[0] <= share <= BAND[1], (table, len(inserted), len(deleted), len(updated))


def test_unchanged_rows_keep_their_bytes_and_order(days: tuple[Path, Path]) -> None:
    before = (days[0] / "usage.csv").read_text(encoding="utf-8").splitlines()
    after = set((days[1] / "usage.csv").read_text(encoding="utf-8").splitlines())
    kept = [line for line in before if line in after]
    assert len(kept) >= len(before) * (1 - BAND[1])
    order = (days[1] / "usage.csv").read_text(encoding="utf-8").splitlines()
    kept_set = set(kept)
    assert [line for line in order if line in kept_set] == kept


def test_a_cancellation_dated_last_month(tables: dict[str, tuple[Rows, Rows]]) -> None:
    before, after = tables["subscriptions"]
    last_month = (NEXT.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    backdated = [
        k
        for k in before.keys() & after.keys()
        if before[k]["end_date"] == "" and after[k]["status"] == "canceled" and after[k]["end_date"][:7] == last_month
    ]
    assert backdated
    # billing voided what it had invoiced after the end
    invoices_before, invoices_after = tables["invoices"]
    ends = {k[0]: after[k]["end_date"] for k in backdated}
    voided = [
        k
        for k, row in invoices_after.items()
        if row["subscription_id"] in ends and row["period_start"] >= ends[row["subscription_id"]]
    ]
    assert voided and all(invoices_after[k]["status"] == "void" != invoices_before[k]["status"] for k in voided)


def test_a_late_invoice_in_a_closed_month(tables: dict[str, tuple[Rows, Rows]]) -> None:
    before, after = tables["invoices"]
    late = [k for k in after.keys() - before.keys() if after[k]["issued_at"][:10] < NEXT.replace(day=1).isoformat()]
    assert late


def test_a_plan_change_effective_mid_month(tables: dict[str, tuple[Rows, Rows]]) -> None:
    before, after = tables["subscriptions"]
    ended = [
        after[k]
        for k in before.keys() & after.keys()
        if before[k]["end_date"] == "" and after[k]["cancel_reason"] == "プラン変更"
    ]
    started = {(r["customer_id"], r["start_date"]): r for k, r in after.items() if k not in before}
    changes = [
        (old, started[(old["customer_id"], old["end_date"])])
        for old in ended
        if (old["customer_id"], old["end_date"]) in started
    ]
    assert changes
    for old, new in changes:
        assert 2 <= int(old["end_date"][8:]) <= 27  # neither the first nor the last of a month
        assert (new["plan"], Decimal(new["mrr"])) != (old["plan"], Decimal(old["mrr"]))


def test_a_customer_merged_into_another(tables: dict[str, tuple[Rows, Rows]]) -> None:
    customers_before, customers_after = tables["customers"]
    gone = {k[0] for k in customers_before.keys() - customers_after.keys()}
    assert gone
    subs_before, subs_after = tables["subscriptions"]
    moved = [k for k, row in subs_before.items() if row["customer_id"] in gone]
    assert moved
    for k in moved:
        assert subs_after[k]["customer_id"] not in gone
        assert (subs_after[k]["customer_id"],) in customers_after
    for table in KEYS:  # nothing refers to the merged record any more
        assert not [r for r in tables[table][1].values() if r["customer_id"] in gone], table


def test_new_customers_contacts_and_the_days_events(tables: dict[str, tuple[Rows, Rows]]) -> None:
    new_customers = {k[0] for k in tables["customers"][1].keys() - tables["customers"][0].keys()}
    assert new_customers
    new_subs = [r for k, r in tables["subscriptions"][1].items() if k not in tables["subscriptions"][0]]
    assert new_customers <= {r["customer_id"] for r in new_subs}
    contacts_before, contacts_after = tables["contacts"]
    assert [k for k in contacts_before.keys() & contacts_after.keys() if contacts_before[k] != contacts_after[k]]
    for table, stamp in (("activities", "occurred_at"), ("deals", "created_at")):
        before, after = tables[table]
        assert [k for k in after.keys() - before.keys() if after[k][stamp] <= f"{NEXT} 23:59:59"], table


def test_the_same_seed_gives_the_same_files(days: tuple[Path, Path], tmp_path: Path) -> None:
    next_day_demo_data(days[0], tmp_path / "again", SEED, change_rate=RATE)
    for path in sorted(days[1].iterdir()):
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name
    next_day_demo_data(days[0], tmp_path / "other", SEED + 1, change_rate=RATE)
    assert (tmp_path / "other" / "subscriptions.csv").read_bytes() != (days[1] / "subscriptions.csv").read_bytes()


def test_cp932_and_excel_stay_as_they_were(tmp_path: Path) -> None:
    generate_demo_data(tmp_path / "day1", 200, SEED, AS_OF, encoding="cp932", customers_as_excel=True)
    day, written = next_day_demo_data(tmp_path / "day1", tmp_path / "day2", SEED, as_of=date(2026, 2, 20))
    assert day == date(2026, 2, 20)
    assert "customers.xlsx" in written and not (tmp_path / "day2" / "customers.csv").exists()
    raw = (tmp_path / "day2" / "subscriptions.csv").read_bytes()
    assert b"\r\n" in raw and "プラン変更" in raw.decode("cp932")
    rows = list(load_workbook(tmp_path / "day2" / "customers.xlsx", read_only=True).worksheets[0].values)
    old = {r[0]: r for r in load_workbook(tmp_path / "day1" / "customers.xlsx", read_only=True).worksheets[0].values}
    assert len(rows) - 1 == written["customers.xlsx"]
    same = [r for r in rows[1:] if old.get(r[0]) == r]
    assert len(same) >= 0.9 * (len(old) - 1)  # cells keep their types (numbers, datetimes) across the day


def test_a_file_unlike_the_demo_is_named(tmp_path: Path) -> None:
    generate_demo_data(tmp_path / "day1", 30, SEED, AS_OF)
    path = tmp_path / "day1" / "deals.csv"
    path.write_text("deal_id,customer\nD1,C000001\n", encoding="utf-8")
    with pytest.raises(NextDayError, match=r"deals\.csv, row 1: header"):
        next_day_demo_data(tmp_path / "day1", tmp_path / "day2", SEED)


def backdated_cancellations(tables: dict[str, tuple[Rows, Rows]]) -> dict[str, Decimal]:
    """Customer → the yen MRR cancelled into January, for customers whose other subscriptions did not change."""
    before, after = tables["subscriptions"]
    changed = {r["customer_id"] for k, r in after.items() if before.get(k) != r}
    changed |= {r["customer_id"] for k, r in before.items() if after.get(k) != r}
    cancelled: dict[str, Decimal] = {}
    for k in before.keys() & after.keys():
        old, new = before[k], after[k]
        if old["end_date"] == "" and new["end_date"].startswith("2026-01") and new["currency"] == "JPY":
            cancelled[new["customer_id"]] = cancelled.get(new["customer_id"], Decimal(0)) + Decimal(new["mrr"])
    others = {c for c in changed if c in cancelled}
    for k, new in after.items():
        previous = before.get(k)
        if (
            new["customer_id"] in others
            and previous is not None
            and previous != new
            and not new["end_date"].startswith("2026-01")
        ):
            cancelled.pop(new["customer_id"], None)
    return cancelled


def test_the_next_day_passes_the_gate_and_moves_a_closed_months_mrr(
    tables: dict[str, tuple[Rows, Rows]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Day 1 then day 2 into one warehouse, each through ingest, the gate and dbt build (every model and test)."""
    january = date(2026, 1, 1)
    cancelled = backdated_cancellations(tables)
    assert cancelled
    built: Days = shared_days(tmp_path_factory)
    ending, by_customer = [], []
    for warehouse in (built.built1, built.built2):
        with connect(warehouse, read_only=True) as con:
            row = con.execute("SELECT ending_mrr FROM marts.mrr_kpis_monthly WHERE month = ?", [january]).fetchone()
            mrr = con.execute(
                "SELECT customer_id, mrr FROM marts.customer_mrr_monthly WHERE month = ? AND customer_id IN ?",
                [january, list(cancelled)],
            ).fetchall()
        assert row is not None
        ending.append(row[0])
        by_customer.append(dict(mrr))
    assert ending[1] != ending[0]  # January was closed on day 1; day 2 changes it
    for customer, lost in cancelled.items():  # and the backdated cancellations are what moved it
        assert by_customer[1].get(customer, Decimal(0)) == by_customer[0][customer] - lost, customer


def test_the_command_writes_the_next_day_at_the_rate_asked(days: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kizuna.cli import app

    args = ["demo-data", "--next-day-of", str(days[0]), "--out", str(tmp_path / "day2"), "--seed", str(SEED)]
    result = CliRunner().invoke(app, [*args, "--change-rate", "0.02", "--as-of", "2026-02-19"])
    assert result.exit_code == 0, result.output
    assert "as of 2026-02-19" in " ".join(result.output.split())  # rich wraps long lines
    before, after = read(days[0] / "invoices.csv"), read(tmp_path / "day2" / "invoices.csv")
    changed = len(after.keys() - before.keys()) + sum(before[k] != after[k] for k in before.keys() & after.keys())
    assert 0.015 <= changed / len(before) <= 0.025  # four times the default rate, as asked

    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        app, ["demo-data", "--next-day-of", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "no customers.csv" in " ".join(result.output.split())  # rich wraps long lines


def hand_made_export(root: Path) -> Path:
    """Six customers written by hand: five on live monthly plans, one with a churned and a live subscription."""
    from kizuna.core.contract import TABLES_BY_NAME
    from tests.conftest import write_csv

    root.mkdir()
    plans = ["Starter", "Standard", "Enterprise", "Starter", "Standard", "Starter"]
    mrr = {"Starter": 30000, "Standard": 80000, "Enterprise": 250000}
    rows: dict[str, list[list[object]]] = {
        "customers": [
            [f"C{i}", f"会社{i}", "製造業", 40, "東京都", "JP", "2025-01-05 10:00:00", "", ""] for i in range(1, 7)
        ],
        "contacts": [
            [f"K{i}", f"C{i}", f"a{i}@example.co.jp", "", "担当者", "true", "true", "ja"] for i in range(1, 7)
        ],
        "subscriptions": [
            [f"S{i}", f"C{i}", "2025-02-01", "", mrr[p], "", 1, "CRM Suite", p, 10, 10, 1, "JPY", "active", ""]
            for i, p in enumerate(plans, start=1)
        ]
        + [
            [
                "S7",
                "C6",
                "2024-01-01",
                "2025-01-31",
                30000,
                "",
                1,
                "CRM Suite",
                "Starter",
                10,
                10,
                1,
                "JPY",
                "canceled",
                "価格",
            ]
        ],
        "invoices": [
            [f"I{i}", f"C{i}", f"S{i}", "2026-03-01 06:00:00", "2026-03-01", "2026-03-31", 30000, 3000, "JPY", "open"]
            for i in range(1, 7)
        ],
        "usage": [[f"C{i}", "2026-02-01", "active_users", 8] for i in range(1, 7)],
        "deals": [
            ["D1", "C1", "new", "closed_won", 360000, "2025-01-05 10:00:00", "2025-01-20 10:00:00", "true", "inbound"]
        ],
        "activities": [["A1", "C2", "call", "2026-03-09 15:00:00", "x@kizuna.example", "conversation"]],
        "support_tickets": [["T1", "C3", "2026-03-02 11:00:00", "操作方法"]],
    }
    for name, table_rows in rows.items():
        header = TABLES_BY_NAME[name].column_names
        padded = [row + [""] * (len(header) - len(row)) for row in table_rows]  # trailing optional columns blank
        write_csv(root / f"{name}.csv", header, padded)
    return root


def test_a_hand_made_export_gets_every_backdated_change(tmp_path: Path) -> None:
    day, _ = next_day_demo_data(hand_made_export(tmp_path / "day1"), tmp_path / "day2", SEED)
    assert day == date(2026, 3, 10)  # the day after the latest event, the activity of the 9th
    before = read(tmp_path / "day1" / "subscriptions.csv")
    after = read(tmp_path / "day2" / "subscriptions.csv")
    assert [k for k, r in after.items() if r["end_date"].startswith("2026-02") and r["cancel_reason"] != "プラン変更"]
    ended = [r for r in after.values() if r["end_date"] == "2026-02-15" and r["cancel_reason"] == "プラン変更"]
    assert len(ended) == 1
    upgrade = {"Starter": "Standard", "Standard": "Enterprise", "Enterprise": "Standard"}[ended[0]["plan"]]
    started = [r for k, r in after.items() if k not in before and r["start_date"] == "2026-02-15"]
    assert [(r["customer_id"], r["plan"]) for r in started] == [(ended[0]["customer_id"], upgrade)]
    invoices = read(tmp_path / "day2" / "invoices.csv")
    assert [r for r in invoices.values() if r["issued_at"].startswith("2026-02") and r["period_start"] == "2026-02-01"]
    customers = {k[0] for k in read(tmp_path / "day2" / "customers.csv")}
    assert len({f"C{i}" for i in range(1, 7)} - customers) == 1  # one merged away
    for name in KEYS:
        assert {r["customer_id"] for r in read(tmp_path / "day2" / f"{name}.csv").values()} <= customers, name


def test_new_ids_continue_after_the_largest_number_not_the_last_in_text_order() -> None:
    """At 1,000,000 customers the last id outgrows the width (C999999, then C1000000); text order put C999999 last,
    so the next day's first new customer was a second C1000000 and the gate refused the whole day."""
    import duckdb
    import numpy as np

    from kizuna.demo.overnight import Day

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE customers AS SELECT * FROM (VALUES ('C999998'), ('C1000000'), ('C999999')) t(customer_id)"
    )
    day = Day(con, np.random.default_rng(0), date(2026, 11, 24), 0.005)
    assert day.new_ids("customers", 2) == ["C1000001", "C1000002"]
    con.execute("CREATE TABLE invoices AS SELECT * FROM (VALUES ('INV-0009'), ('INV-0010')) t(invoice_id)")
    assert day.new_ids("invoices", 1) == ["INV-0011"]
