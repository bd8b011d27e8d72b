"""The raw gate: Great Expectations suites stop bad loads with file, row and column, and raw stays whole."""

from __future__ import annotations

import json

import pytest

from kizuna.quality.gate import GateFailedError, gate_and_publish
from kizuna.quality.suites import SuiteFileError, load_suite, load_suites
from kizuna.settings import Settings
from kizuna.sources.contract import TABLES_BY_NAME
from kizuna.sources.ingest import stage_sources
from kizuna.warehouse import connect
from tests.conftest import write_csv
from tests.sources.test_ingest import CUSTOMERS_HEADER, SUBSCRIPTIONS_HEADER, good_sources, raw_fingerprint


def test_good_load_passes_and_is_published(settings: Settings) -> None:
    good_sources(settings.source_dir)
    stage_sources(settings)
    verdict = gate_and_publish(settings)
    assert verdict.passed and verdict.results
    with connect(settings.warehouse) as con:
        assert con.execute("SELECT count(*) FROM raw.customers").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM ops.gate_results WHERE NOT success").fetchone() == (0,)
    report = json.loads((settings.var_dir / "reports" / f"gate-{verdict.load_id}.json").read_text())
    assert report["passed"] is True


def test_duplicate_customer_id_stops_with_file_row_column_and_raw_is_unchanged(settings: Settings) -> None:
    good_sources(settings.source_dir)
    stage_sources(settings)
    gate_and_publish(settings)
    before = raw_fingerprint(settings)

    write_csv(settings.source_dir / "customers.csv", CUSTOMERS_HEADER, [
        ["C1", "株式会社テスト", "10", "", ""],
        ["C2", "サンプル商事株式会社", "10", "", ""],
        ["C1", "重複株式会社", "10", "", ""],
    ])
    stage_sources(settings)
    with pytest.raises(GateFailedError) as info:
        gate_and_publish(settings)
    message = str(info.value)
    assert "customers.csv, row 4, column customer_id: duplicate value (found 'C1')" in message
    assert "customers.csv, row 2, column customer_id" in message  # the first occurrence is named too
    assert raw_fingerprint(settings) == before


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (["S3", "C1", "2024-03-01", "2024-02-01", "1000", "", "", "1", "active"],
         "subscriptions.csv, row 4, column end_date, start_date: end_date must be after start_date"),
        (["S3", "C1", "2024-03-01", "", "-5", "", "", "1", "active"],
         "subscriptions.csv, row 4, column mrr: value must be >= 0 (found -5)"),
        (["S3", "C1", "2024-03-01", "", "5", "", "", "1", "cancelled"],
         "subscriptions.csv, row 4, column status: value must be one of active, trialing, paused, past_due, canceled"),
    ],
    ids=["end-before-start", "negative-mrr", "unknown-status"],
)
def test_critical_subscription_rules(settings: Settings, row: list[str], expected: str) -> None:
    good_sources(settings.source_dir)
    write_csv(settings.source_dir / "subscriptions.csv", SUBSCRIPTIONS_HEADER, [
        ["S1", "C1", "2024-01-01", "", "1000", "", "", "12", "active"],
        ["S2", "C2", "2024-02-01", "", "1000", "", "", "12", "active"],
        row,
    ])
    stage_sources(settings)
    with pytest.raises(GateFailedError) as info:
        gate_and_publish(settings)
    assert expected in str(info.value)


def test_every_suite_is_well_formed_and_checks_a_contract_table(settings: Settings) -> None:
    suites = load_suites(settings.expectations_dir, "raw")
    assert {s.table for s in suites} >= {"customers", "subscriptions", "contacts"}
    for suite in suites:
        contract = TABLES_BY_NAME[suite.table]
        for exp in suite.expectations:
            for key in ("column", "column_A", "column_B"):
                if key in exp["kwargs"]:
                    assert exp["kwargs"][key] in contract.column_names, (suite.name, exp)
            if exp["type"] == "expect_column_values_to_be_in_set":
                allowed = contract.column(exp["kwargs"]["column"]).allowed
                assert tuple(exp["kwargs"]["value_set"]) == allowed, f"{suite.name} disagrees with the contract"


def test_suite_without_severity_is_rejected(tmp_path) -> None:
    path = tmp_path / "raw_x.json"
    path.write_text(json.dumps({"name": "raw_x", "meta": {"table": "customers", "schema": "raw"},
                                "expectations": [{"type": "expect_column_values_to_be_unique",
                                                  "kwargs": {"column": "customer_id"}}]}))
    with pytest.raises(SuiteFileError, match=r"expectations\[0\].*needs meta.severity"):
        load_suite(path)
