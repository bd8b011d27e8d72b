"""The load-wide guards on a day after a good load (duplicates, outliers, orphans): the incremental gate, which
compares only what the load changed, holds exactly what a full check holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, connect
from kizuna.quality.gate import GateFailedError, gate_and_publish, gate_parameters
from kizuna.quality.suites import load_suite
from kizuna.quality.validate import CheckResult, validate_table
from kizuna.quality.verdict import GateVerdict
from kizuna.sources.ingest import stage_sources
from tests.quality.test_gate import AS_OF, USAGE, USAGE_ROWS, base_rows, write_sources
from tests.quality.test_gate_changes import outcome
from tests.sources.test_ingest import raw_fingerprint


def day_one(settings: Settings) -> dict[str, tuple[list[str], list[list[str]]]]:
    rows = {**base_rows(), "usage": (USAGE, [list(r) for r in USAGE_ROWS])}
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    assert gate_and_publish(settings, AS_OF).passed
    return rows


def held(settings: Settings) -> GateVerdict:
    stage_sources(settings)
    with pytest.raises(GateFailedError) as info:
        gate_and_publish(settings, AS_OF)
    return info.value.verdict


def test_a_new_row_equal_to_an_unchanged_one_is_held(settings: Settings) -> None:
    """usage has no key: the copy is a new row and its original is unchanged, yet the pair is found."""
    rows = day_one(settings)
    before = raw_fingerprint(settings)
    rows["usage"][1].append(list(USAGE_ROWS[0]))
    write_sources(settings.source_dir, rows)

    verdict = held(settings)

    repeats = next(r for r in verdict.critical_failures if r.expectation == "no_exact_duplicate_rows")
    assert [str(f) for f in repeats.findings] == ["usage.csv, row 5: repeats row 2 exactly"]
    assert raw_fingerprint(settings) == before


def test_incremental_guards_hold_what_a_full_check_holds(settings: Settings) -> None:
    """Day 2: C3 deleted (its unchanged contact, subscription, invoice and usage become orphans and leave the load),
    a new subscription of ¥5 trillion a month for the unchanged customer C1 (an outlier for the subscription
    and for the customer), and a usage row repeated. Checked incrementally and with --full-refresh: same verdict."""
    rows = day_one(settings)
    full = settings.model_copy(update={"warehouse": settings.warehouse.with_name("full.duckdb"), "full_refresh": True})
    shutil.copy(settings.warehouse, full.warehouse)
    del rows["customers"][1][2]
    rows["subscriptions"][1].append(["S4", "C1", "2026-11-01", "", "5000000000000", "", "", "1", "JPY", "active"])
    rows["usage"][1].append(list(USAGE_ROWS[1]))
    write_sources(settings.source_dir, rows)

    incremental = held(settings)
    whole = held(full)

    assert outcome(incremental) == outcome(whole)
    assert (
        incremental.quarantined == whole.quarantined == {"contacts": 1, "subscriptions": 1, "invoices": 1, "usage": 1}
    )
    failed = {(r.expectation, r.column) for r in incremental.critical_failures}
    assert failed == {
        ("no_outliers", "mrr"),
        ("no_exact_duplicate_rows", None),
        ("expect_compound_columns_to_be_unique", "customer_id, month, metric"),
    }
    outliers = [str(f) for r in incremental.critical_failures if r.expectation == "no_outliers" for f in r.findings]
    assert any("subscription_id S4" in f for f in outliers) and any("customer_id C1" in f for f in outliers)
    assert incremental.checked_rows["raw_subscriptions"] < whole.checked_rows["raw_subscriptions"]


def test_changed_rows_are_validated_in_chunks_of_rows_not_of_the_file(settings: Settings) -> None:
    """Chunks hold the selected rows (here one each), however far apart they lie in the file."""
    rows = day_one(settings)
    rows["contacts"][1][0][2] = "ichi@@example"  # row 2
    rows["contacts"][1][2][2] = "san@@example"  # row 4, the file's last
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    suite = load_suite(settings.expectations_dir / "raw_contacts.json")
    checked: dict[str, int] = {}
    with connect(settings.warehouse) as con:
        params = gate_parameters(con, AS_OF, settings.gate_max_drop)
        one = validate_table(con, INCOMING_SCHEMA, suite, params, chunk_rows=1, incremental=True, checked=checked)
        whole = validate_table(con, INCOMING_SCHEMA, suite, params, incremental=True)

    def bad_emails(results: list[CheckResult]) -> list[tuple[int, str]]:
        return next(r for r in results if r.column == "email").rows

    assert bad_emails(one) == bad_emails(whole) == [(2, "'ichi@@example'"), (4, "'san@@example'")]
    assert checked == {"raw_contacts": 2}


def test_the_percentile_of_unique_entities_is_read_per_row_and_empty_keys_grouped(tmp_path: Path) -> None:
    """invoice_id is unique in raw, so an invoice's sum(amount) is its row's amount; rows without an id still
    count as one entity together, as the grouped form counts them."""
    import duckdb

    from kizuna.quality.outliers import _everyone, _segment_expr
    from kizuna.quality.plausibility import suite_source

    suite = load_suite(Path(__file__).parents[2] / "expectations" / "raw_invoices.json")
    spec = suite.outliers[0]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.customers AS SELECT 'C1' AS customer_id")  # read by has_known_customer
        con.execute(
            "CREATE TABLE raw.invoices AS SELECT * FROM (VALUES ('I1', 'C1', 100.0, 'JPY'), ('I2', 'C1', 200.0, "
            "'JPY'), (NULL, 'C2', 300.0, 'JPY'), (NULL, 'C2', 900.0, 'JPY'), ('I3', 'C2', 5.0, 'USD')) "
            "t(invoice_id, customer_id, amount, currency)"
        )
        segment = _segment_expr("invoices", spec.segment)
        grouped = (
            f'SELECT "invoice_id", {segment} AS _segment, ({spec.value})::DOUBLE AS _value '
            f"FROM {suite_source(suite, 'raw')} GROUP BY ALL"
        )
        query = "SELECT _segment, list(_value ORDER BY _value) FROM ({}) GROUP BY ALL ORDER BY 1"
        per_row = con.execute(query.format(_everyone(suite, spec, '"invoice_id"', segment))).fetchall()
        assert per_row == con.execute(query.format(grouped)).fetchall()
    finally:
        con.close()
    assert per_row == [("JPY", [100.0, 200.0, 1200.0]), ("USD", [5.0])]


def test_outlier_and_total_queries_compute_only_the_derived_columns_they_read(tmp_path: Path) -> None:
    """DuckDB computes a derived column nobody reads: has_known_customer joined all 15M invoices with customers
    in each pass of the outlier check. Without raw.customers such a join fails, so these queries pass only if
    they leave it out; a derived column the value reads (subscriptions' mrr_normalised) stays in."""
    import duckdb

    from kizuna.quality.outliers import _everyone, _segment_expr
    from kizuna.quality.plausibility import suite_source

    expectations = Path(__file__).parents[2] / "expectations"
    invoices, subscriptions = (load_suite(expectations / f"raw_{t}.json") for t in ("invoices", "subscriptions"))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute("CREATE SCHEMA raw")  # no raw.customers: a has_known_customer computed would fail
        con.execute(
            "CREATE TABLE raw.invoices AS SELECT * FROM (VALUES ('I1', 'C1', 100.0, 'JPY'), ('I2', 'C1', 200.0, "
            "'JPY')) t(invoice_id, customer_id, amount, currency)"
        )
        con.execute(
            "CREATE TABLE raw.subscriptions AS SELECT * FROM (VALUES ('S1', 'C1', NULL, 1200.0, 12, 'JPY'), "
            "('S2', 'C1', 50.0, NULL, NULL, 'JPY')) t(subscription_id, customer_id, mrr, amount, "
            "billing_period_months, currency)"
        )
        spec = invoices.outliers[0]
        segment = _segment_expr("invoices", spec.segment)
        everyone = _everyone(invoices, spec, '"invoice_id"', segment)
        assert sorted(con.execute(f"SELECT _value FROM ({everyone})").fetchall()) == [(100.0,), (200.0,)]
        mrr = con.execute(
            f"SELECT sum(mrr_normalised) FROM {suite_source(subscriptions, 'raw', 'sum(mrr_normalised)')}"
        ).fetchone()
        assert mrr == (150.0,)
        assert "has_known_customer" in suite_source(invoices, "raw")  # asked for nothing in particular: all of them
    finally:
        con.close()
