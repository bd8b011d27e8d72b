"""The gate on a realistic day after a good one: a small demo load, then a hand-modified copy of its files."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.demo.generate import generate_demo_data
from kizuna.quality.gate import GateFailedError, gate_and_publish
from kizuna.sources.ingest import stage_sources
from tests.conftest import demo_settings
from tests.sources.test_ingest import raw_fingerprint

AS_OF = dt.date(2026, 11, 23)
TOTAL_MRR = "SELECT sum(coalesce(mrr, amount / nullif(billing_period_months, 0)))::DOUBLE FROM raw.subscriptions"


@pytest.fixture(scope="module")
def last_good_load(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """150 demo customers, ingested and gated once: the warehouse every test starts from (copied)."""
    settings = demo_settings(tmp_path_factory.mktemp("last-good-load"))
    generate_demo_data(settings.source_dir, customers=150, seed=23, as_of=AS_OF)
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)
    return settings


@pytest.fixture
def next_day(last_good_load: Settings, tmp_path: Path) -> Settings:
    """A copy of the last good load's warehouse and source files, for one test to modify."""
    settings = demo_settings(tmp_path)
    shutil.copytree(last_good_load.source_dir, settings.source_dir)
    shutil.copy(last_good_load.warehouse, settings.warehouse)
    return settings


def rewrite(path: Path, column: str, change: Callable[[str, int], str], share: float = 1.0) -> int:
    """Edit one column of the first `share` of a CSV's records, as a spreadsheet user would; return how many
    values changed. `change` gets the value and the record's index."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header, records = list(reader.fieldnames or []), list(reader)
    changed = 0
    for i, record in enumerate(records[: round(len(records) * share)]):
        new = change(record[column], i)
        changed += new != record[column]
        record[column] = new
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(records)
    return changed


def owner_with_display_name(address: str, i: int) -> str:
    # What Outlook or a CRM export writes when a column holds "who" rather than "which address"; this export
    # also fills in an owner for every customer.
    return f'"Taro Sato" <taro.sato.{i}@example.co.jp>' if i % 2 else f"佐藤 太郎 <taro.sato.{i}@example.co.jp>"


def scalar(settings: Settings, sql: str) -> object:
    with connect(settings.warehouse) as con:
        row = con.execute(sql).fetchone()
    return row[0] if row else None


def test_owner_address_with_display_name_is_normalised_not_quarantined(next_day: Settings) -> None:
    customers_before = scalar(next_day, "SELECT count(*) FROM raw.customers")
    mrr_before = scalar(next_day, TOTAL_MRR)
    changed = rewrite(next_day.source_dir / "customers.csv", "owner_email", owner_with_display_name)
    assert changed == customers_before

    stage_sources(next_day)
    verdict = gate_and_publish(next_day, AS_OF)

    assert verdict.quarantined == {}
    assert [(n.table, n.column, n.count) for n in verdict.normalised] == [("customers", "owner_email", changed)]
    assert "customers.csv, row 2, column owner_email: '佐藤 太郎 <taro.sato.0@example.co.jp>' -> " in str(
        verdict.normalised[0]
    )
    owners = scalar(next_day, "SELECT list(owner_email ORDER BY _source_row) FROM raw.customers")
    assert owners == [f"taro.sato.{i}@example.co.jp" for i in range(customers_before)]
    assert scalar(next_day, "SELECT count(*) FROM raw.customers") == customers_before
    assert scalar(next_day, TOTAL_MRR) == mrr_before


def test_quarantine_emptying_most_customers_is_held_with_its_figures(next_day: Settings) -> None:
    """An owner column the gate cannot read would quarantine most customers and all they own: held, not published."""
    before = raw_fingerprint(next_day)
    staged = scalar(next_day, "SELECT count(*) FROM raw.customers")
    # 84% of customers get an owner written as no mail client would: the gate cannot read it as an address.
    moved = rewrite(
        next_day.source_dir / "customers.csv", "owner_email", lambda a, i: "Taro Sato (taro at example)", 0.84
    )
    stage_sources(next_day)

    with pytest.raises(GateFailedError) as info:
        gate_and_publish(next_day, AS_OF)
    message = str(info.value)
    assert (
        f"customers: {staged - moved:,} rows would be published ({staged:,} staged, {moved:,} quarantined: "
        f"{moved:,} is not a well-formed email address) against {staged:,} in the last good load"
    ) in message
    assert "subscriptions: " in message and "total MRR of " in message
    assert "kizuna check --accept-drop" in message
    assert raw_fingerprint(next_day) == before

    # A person confirms: the same staged load is published, and ops.loads says what raw now holds.
    verdict = gate_and_publish(next_day, AS_OF, accept_drop=True)
    assert verdict.published["customers"] == staged - moved
    # The held attempt changed nothing: the accepted one quarantines the same rows, and keeps them.
    assert verdict.quarantined["customers"] == moved
    assert scalar(next_day, "SELECT count(*) FROM quarantine.rows WHERE table_name = 'customers'") == moved
    with connect(next_day.warehouse) as con:
        loads = {
            table: (rows, staged_rows)
            for table, rows, staged_rows in con.execute(
                "SELECT table_name, row_count, staged_rows FROM ops.loads WHERE load_id = ?", [verdict.load_id]
            ).fetchall()
        }
        published = {t: con.execute(f'SELECT count(*) FROM raw."{t}"').fetchone()[0] for t in loads}
    assert loads["customers"] == (staged - moved, staged)
    assert {t: rows for t, (rows, _) in loads.items()} == published


def test_usage_file_appended_to_itself_is_held(next_day: Settings) -> None:
    before = raw_fingerprint(next_day)
    usage = next_day.source_dir / "usage.csv"
    lines = usage.read_text(encoding="utf-8").splitlines(keepends=True)
    usage.write_text("".join(lines + lines[1:]), encoding="utf-8")  # `cat usage.csv >> usage.csv`, minus the header
    records = len(lines) - 1
    stage_sources(next_day)

    with pytest.raises(GateFailedError) as info:
        gate_and_publish(next_day, AS_OF)
    message = str(info.value)
    assert f"usage.csv, row {records + 2}: repeats row 2 exactly" in message
    assert "no_exact_duplicate_rows" not in message  # people read rules, not expectation names
    assert "duplicate key" in message
    failed = {(r.expectation, r.unexpected_count) for r in info.value.verdict.critical_failures}
    assert ("no_exact_duplicate_rows", records) in failed
    assert raw_fingerprint(next_day) == before


def test_the_later_row_is_named_as_the_repeat_in_a_large_file(tmp_path: Path) -> None:
    """On a few thousand rows DuckDB's threads meet a duplicate pair in any order; the finding must not."""
    import duckdb

    from kizuna.core.warehouse import INCOMING_SCHEMA
    from kizuna.quality.plausibility import exact_duplicates

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute(f"CREATE SCHEMA {INCOMING_SCHEMA}")
        con.execute(
            f"CREATE TABLE {INCOMING_SCHEMA}.customers AS SELECT 'C' || lpad(i::VARCHAR, 6, '0') AS customer_id, "
            "'name ' || i AS name, 'customers.csv' AS _source_file, i + 1 AS _source_row FROM range(1, 200001) t(i)"
        )
        # The last row repeats the first, as a file appended to part of itself would.
        con.execute(f"INSERT INTO {INCOMING_SCHEMA}.customers VALUES ('C000001', 'name 1', 'customers.csv', 200002)")
        result = exact_duplicates(con, "customers", "raw_customers")
    finally:
        con.close()
    assert [str(f) for f in result.findings] == ["customers.csv, row 200002: repeats row 2 exactly"]
