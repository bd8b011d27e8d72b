"""Gating the change: row-level expectations on the changed rows, the same verdicts as a full load."""

from __future__ import annotations

import shutil

import pytest

from kizuna.core.settings import Settings
from kizuna.core.warehouse import RAW_SCHEMA, connect
from kizuna.quality.gate import GateFailedError, gate_and_publish
from kizuna.quality.outliers import _touched_entities
from kizuna.quality.suites import load_suites
from kizuna.quality.verdict import GateVerdict
from kizuna.sources.ingest import stage_sources
from tests.quality.test_gate import AS_OF, base_rows, write_sources


def outcome(verdict: GateVerdict) -> list[tuple[object, ...]]:
    return sorted(
        (r.suite, r.expectation, r.column, r.severity, r.success, r.unexpected_count, tuple(map(str, r.findings)))
        for r in verdict.results
    )


def test_a_bad_changed_row_is_quarantined_and_an_old_one_not_reported_again(settings: Settings) -> None:
    rows = base_rows()
    rows["contacts"][1][0][2] = "ichi@@example"  # day 1: P1 is bad, quarantined
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    first = gate_and_publish(settings, AS_OF)
    assert first.quarantined == {"contacts": 1}

    rows["contacts"][1][1][2] = "ni@@example"  # day 2: P2 turns bad; P1 is still as it was
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    second = gate_and_publish(settings, AS_OF)

    assert second.quarantined == {"contacts": 1}
    assert second.kept_out == {"contacts": 1, "customers": 0, "subscriptions": 0, "invoices": 0}
    assert second.checked_rows["raw_contacts"] == 1  # P2 alone went through Great Expectations
    email = next(r for r in second.warnings if r.column == "email")
    assert [str(f) for f in email.findings] == [
        "contacts.csv, row 3, column email: is not a well-formed email address (found 'ni@@example')"
    ]
    with connect(settings.warehouse) as con:
        assert con.execute("SELECT contact_id FROM raw.contacts ORDER BY 1").fetchall() == [("P3",)]
        reported = con.execute(
            "SELECT source_row, value FROM quarantine.rows WHERE load_id = ? ORDER BY 1", [second.load_id]
        ).fetchall()
    assert reported == [(3, "'ni@@example'")]


def _day_one_and_a_full_refresh_copy(settings: Settings) -> Settings:
    """Day 1 loaded and published; the settings of a copy of that warehouse that checks day 2 in full."""
    write_sources(settings.source_dir, base_rows())
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)
    full = settings.model_copy(update={"warehouse": settings.warehouse.with_name("full.duckdb"), "full_refresh": True})
    shutil.copy(settings.warehouse, full.warehouse)
    return full


def test_verdicts_equal_a_full_load(settings: Settings) -> None:
    full = _day_one_and_a_full_refresh_copy(settings)

    # Day 2: customer C3 deleted (its unchanged contact, subscription and invoice become orphans), a new
    # subscription with an unknown currency, an invoice paid.
    rows = base_rows()
    del rows["customers"][1][2]
    rows["subscriptions"][1].append(["S4", "C1", "2026-11-01", "", "1000", "", "", "1", "XYZ", "active"])
    rows["invoices"][1][0][5] = "void"
    write_sources(settings.source_dir, rows)

    staged = stage_sources(settings)
    assert staged.unchanged == ["contacts"]
    incremental = gate_and_publish(settings, AS_OF)
    stage_sources(full)
    whole = gate_and_publish(full, AS_OF)

    assert outcome(incremental) == outcome(whole)
    assert incremental.quarantined == whole.quarantined == {"contacts": 1, "subscriptions": 2, "invoices": 1}
    assert incremental.checked_rows["raw_subscriptions"] < whole.checked_rows["raw_subscriptions"]
    with connect(settings.warehouse) as a, connect(full.warehouse) as b:
        for table in ("customers", "contacts", "subscriptions", "invoices"):
            query = f"SELECT * EXCLUDE (_source_file, _source_row) FROM raw.{table} ORDER BY ALL"
            assert a.execute(query).fetchall() == b.execute(query).fetchall(), table


def test_an_orphan_is_published_once_its_customer_arrives(settings: Settings) -> None:
    """Kept out again only what would fail again by itself: an invoice quarantined because its customer was not
    yet exported is published the day the customer arrives, though the invoice's own row never changed."""
    rows = base_rows()
    rows["invoices"][1].append(["I3", "C4", "2026-10-01 09:00", "5500", "JPY", "open"])  # C4 not exported yet
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    assert gate_and_publish(settings, AS_OF).quarantined == {"invoices": 1}

    rows["customers"][1].append(["C4", "四号株式会社", "12", "2026-09-01", ""])  # day 2: the customer arrives
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    second = gate_and_publish(settings, AS_OF)

    assert second.quarantined == {} and second.kept_out.get("invoices", 0) == 0
    with connect(settings.warehouse) as con:
        assert con.execute("SELECT invoice_id FROM raw.invoices ORDER BY 1").fetchall() == [("I1",), ("I2",), ("I3",)]


def test_outliers_of_changed_rows_are_found_as_a_full_load_finds_them(settings: Settings) -> None:
    """Entities that are their table's key (an invoice, a subscription's MRR) are read off the change list, not
    looked for in the staged and published tables; the verdicts stay those of a full load: an updated
    subscription's and a new invoice's outliers are held, an invoice quarantined today (its key in the change
    list, its row in neither table) finds nothing."""
    full = _day_one_and_a_full_refresh_copy(settings)

    rows = base_rows()
    rows["subscriptions"][1][2][4] = "5000000000000"  # S3: ¥5 trillion a month
    rows["invoices"][1].append(["I3", "C1", "2026-11-01 09:00", "9000000000000", "JPY", "open"])
    rows["invoices"][1].append(["I4", "C9", "2026-11-01 09:00", "1000", "JPY", "open"])  # unknown customer
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        suites = {s.table: s for s in load_suites(settings.expectations_dir, RAW_SCHEMA)}
        touched = _touched_entities(con, suites["invoices"], suites["invoices"].outliers[0])
    assert 'raw."invoices"' not in touched and 'raw_incoming."invoices"' not in touched

    with pytest.raises(GateFailedError) as incremental:
        gate_and_publish(settings, AS_OF)
    stage_sources(full)
    with pytest.raises(GateFailedError) as whole:
        gate_and_publish(full, AS_OF)
    assert outcome(incremental.value.verdict) == outcome(whole.value.verdict)
    held = {(r.table, r.column) for r in incremental.value.verdict.critical_failures if r.expectation == "no_outliers"}
    assert held == {("subscriptions", "mrr"), ("invoices", "amount")}
    assert incremental.value.verdict.quarantined == {"invoices": 1}
