"""The incremental gate looks for the unchanged rows a contextual column may now fail (a customer gone, a
duplicate) among the few that can (kizuna.quality.changed_rows.gate_scope), and holds what a full check holds."""

from __future__ import annotations

import shutil
from pathlib import Path

from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, connect
from kizuna.quality.changed_rows import SCOPE, changed, forget_changed, gate_scope
from kizuna.quality.gate import gate_and_publish
from kizuna.quality.suites import load_suite
from kizuna.quality.validate import _with_duplicate_flags
from kizuna.sources.ingest import stage_sources
from tests.quality.test_gate import AS_OF, write_sources
from tests.quality.test_gate_changes import outcome
from tests.quality.test_gate_guards import day_one

EXPECTATIONS = Path(__file__).parents[2] / "expectations"


def scope(settings: Settings, suite_name: str, column: str) -> list[object] | None:
    suite = load_suite(EXPECTATIONS / f"{suite_name}.json")
    expectations, derived = _with_duplicate_flags(suite)
    with connect(settings.warehouse) as con:
        if gate_scope(con, suite, expectations, derived) is None:
            return None
        return [r[0] for r in con.execute(f"SELECT {column} FROM {SCOPE} ORDER BY ALL").fetchall()]


def test_unchanged_rows_are_checked_again_where_a_change_may_fail_them(settings: Settings) -> None:
    """Day 2: C3 deleted (its unchanged rows become orphans), C2's owner email broken (C2 quarantined, so its
    unchanged contact and subscription become orphans during the gate), a new invoice and a new usage month for
    C1, whose unchanged rows are not read. Checked incrementally and with --full-refresh: the same outcome."""
    rows = day_one(settings)
    full = settings.model_copy(update={"warehouse": settings.warehouse.with_name("full.duckdb"), "full_refresh": True})
    shutil.copy(settings.warehouse, full.warehouse)
    del rows["customers"][1][2]
    rows["customers"][1][1][4] = "not-an-email"
    rows["invoices"][1].append(["I3", "C1", "2026-11-01 09:00", "88000", "JPY", "paid"])
    rows["usage"][1].append(["C1", "2026-11-01", "active_users", "44"])
    write_sources(settings.source_dir, rows)
    stage_sources(settings)

    assert scope(settings, "raw_invoices", "invoice_id") == ["I2", "I3"]  # I2: C3's; I1 (C1, unchanged) not read
    assert scope(settings, "raw_usage", "month::VARCHAR || ' ' || customer_id") == [
        "2026-10-01 C3",  # C3's
        "2026-11-01 C1",  # new
    ]
    assert scope(settings, "raw_subscriptions_fx_rates", "subscription_id") is None  # has_fx_rate: every row

    incremental = gate_and_publish(settings, AS_OF, accept_drop=True)
    stage_sources(full)
    whole = gate_and_publish(full, AS_OF, accept_drop=True)

    assert outcome(incremental) == outcome(whole)
    assert incremental.quarantined == whole.quarantined
    assert incremental.quarantined == {"customers": 1, "contacts": 2, "subscriptions": 2, "invoices": 1, "usage": 1}
    assert incremental.checked_rows["raw_invoices"] == 2 < whole.checked_rows["raw_invoices"]  # I3 and I2


def test_a_keyless_tables_changed_rows_are_hashed_once_per_gate(settings: Settings) -> None:
    """usage has no key: its rows are named in the change list by their hash, computed once per schema."""
    rows = day_one(settings)
    rows["usage"][1][0][3] = "41"  # C1's September: a row deleted (40) and a row inserted (41)
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with connect(settings.warehouse) as con:

        def temp_tables() -> int:
            row = con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()
            return int(row[0]) if row else 0

        present = changed(con, INCOMING_SCHEMA, "usage", "change <> 'deleted'")
        assert con.execute(f"SELECT value FROM {INCOMING_SCHEMA}.usage WHERE {present}").fetchall() == [(41,)]
        assert con.execute(f"SELECT value FROM raw.usage WHERE {changed(con, 'raw', 'usage')}").fetchall() == [(40,)]
        assert temp_tables() == 2  # one per schema
        gone = changed(con, INCOMING_SCHEMA, "usage", "change = 'deleted'")
        assert con.execute(f"SELECT value FROM {INCOMING_SCHEMA}.usage WHERE {gone}").fetchall() == []
        assert temp_tables() == 2  # read again, not hashed again
        forget_changed(con)
        assert temp_tables() == 0
