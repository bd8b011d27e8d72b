"""The raw gate against a catalogue of bad inputs, each with its documented outcome (docs/quality.md)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.quality.gate import (
    GateFailedError,
    GateNotPassedError,
    assert_latest_gate_passed,
    gate_and_publish,
    gate_parameters,
)
from kizuna.quality.suites import SuiteFileError, load_suite, load_suites
from kizuna.quality.validate import validate_table
from kizuna.sources.ingest import stage_sources
from tests.conftest import settings_under, write_csv
from tests.sources.test_ingest import raw_fingerprint

AS_OF = dt.date(2026, 11, 23)
CUSTOMERS = ["customer_id", "name", "employee_count", "created_at", "owner_email"]
CONTACTS = ["contact_id", "customer_id", "email", "is_primary", "marketing_opt_in", "locale"]
SUBSCRIPTIONS = [
    "subscription_id",
    "customer_id",
    "start_date",
    "end_date",
    "mrr",
    "amount",
    "billing_period_months",
    "contract_term_months",
    "currency",
    "status",
]
INVOICES = ["invoice_id", "customer_id", "issued_at", "amount", "currency", "status"]
USAGE = ["customer_id", "month", "metric", "value"]
USAGE_ROWS = [
    ["C1", "2026-09-01", "active_users", "40"],
    ["C1", "2026-10-01", "active_users", "42"],
    ["C3", "2026-10-01", "active_users", "6"],
]


def base_rows() -> dict[str, tuple[list[str], list[list[str]]]]:
    return {
        "customers": (
            CUSTOMERS,
            [
                ["C1", "株式会社一号", "120", "2024-01-05 10:00", "tanaka@example.co.jp"],
                ["C2", "二号商事株式会社", "30", "2024-02-01", ""],
                ["C3", "三号株式会社", "8", "2025-06-01", ""],
            ],
        ),
        "contacts": (
            CONTACTS,
            [
                ["P1", "C1", "ichi@example.co.jp", "true", "true", "ja"],
                ["P2", "C2", "ni@example.co.jp", "true", "false", "ja"],
                ["P3", "C3", "san@example.co.jp", "true", "true", "en"],
            ],
        ),
        "subscriptions": (
            SUBSCRIPTIONS,
            [
                ["S1", "C1", "2024-01-01", "", "80000", "", "", "12", "JPY", "active"],
                ["S2", "C2", "2024-02-01", "2025-02-01", "", "360000", "12", "12", "JPY", "canceled"],
                ["S3", "C3", "2025-06-01", "", "30000", "", "", "1", "", "active"],
            ],
        ),
        "invoices": (
            INVOICES,
            [
                ["I1", "C1", "2026-10-01 09:00", "88000", "JPY", "paid"],
                ["I2", "C3", "2026-10-01 09:00", "33000", "JPY", "open"],
            ],
        ),
    }


def write_sources(src: Path, rows: dict[str, tuple[list[str], list[list[str]]]]) -> None:
    for path in src.glob("*.csv"):
        path.unlink()
    for table, (header, records) in rows.items():
        write_csv(src / f"{table}.csv", header, records)


@pytest.fixture(scope="module")
def good_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The good load ingested, gated and published once for the module, as load_good starts every test from."""
    settings = settings_under(tmp_path_factory.mktemp("good-load"))  # as the `settings` fixture makes them
    write_sources(settings.source_dir, base_rows())
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)
    return settings.warehouse


def load_good(settings: Settings, good_warehouse: Path | None = None) -> None:
    """The good load's files in the source directory, ingested, gated and published; with good_warehouse, a copy of
    that warehouse (the module's good load) takes the place of the ingest and the gate."""
    write_sources(settings.source_dir, base_rows())
    if good_warehouse is not None:
        shutil.copyfile(good_warehouse, settings.warehouse)
        return
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)


Mutator = Callable[[dict[str, tuple[list[str], list[list[str]]]], Path], None]


def cell(table: str, row: int, column: str, value: str) -> Mutator:
    def mutate(rows: dict, src: Path) -> None:
        header, records = rows[table]
        records[row][header.index(column)] = value

    return mutate


def append(table: str, record: list[str]) -> Mutator:
    return lambda rows, src: rows[table][1].append(record)


def raw_file(name: str, data: bytes) -> Mutator:
    """Replace a whole file after the others are written (encodings, cut files)."""

    def mutate(rows: dict, src: Path) -> None:
        rows.pop(name.split(".")[0], None)
        (src / name).write_bytes(data)

    return mutate


def drop_column(table: str, column: str) -> Mutator:
    def mutate(rows: dict, src: Path) -> None:
        header, records = rows[table]
        i = header.index(column)
        rows[table] = ([h for h in header if h != column], [[v for j, v in enumerate(r) if j != i] for r in records])

    return mutate


def add_column(table: str, column: str) -> Mutator:
    def mutate(rows: dict, src: Path) -> None:
        header, records = rows[table]
        rows[table] = ([*header, column], [[*r, "x"] for r in records])

    return mutate


def drop_file(table: str) -> Mutator:
    return lambda rows, src: rows.pop(table)


def add_table(table: str, header: list[str], records: list[list[str]]) -> Mutator:
    return lambda rows, src: rows.__setitem__(table, (header, [list(r) for r in records]))


def every_row(table: str, column: str, change: Callable[[str], str], limit: int | None = None) -> Mutator:
    """The same edit on many rows, as an export tool or a spreadsheet formula makes it."""

    def mutate(rows: dict, src: Path) -> None:
        header, records = rows[table]
        i = header.index(column)
        for record in records[:limit]:
            record[i] = change(record[i])

    return mutate


def both(*mutators: Mutator) -> Mutator:
    def mutate(rows: dict, src: Path) -> None:
        for m in mutators:
            m(rows, src)

    return mutate


def keep_only(table: str, n: int) -> Mutator:
    def mutate(rows: dict, src: Path) -> None:
        header, records = rows[table]
        rows[table] = (header, records[:n])

    return mutate


HEADER = ",".join(SUBSCRIPTIONS).encode()
# (id, mutator, outcome, expected text or {table: quarantined rows})
CASES = [
    (
        "duplicate-key",
        append("customers", ["C1", "重複株式会社", "1", "", ""]),
        "stop",
        "customers.csv, row 5, column customer_id: duplicate value (found 'C1')",
    ),
    (
        "orphan-contact",
        append("contacts", ["P9", "C99", "kyu@example.co.jp", "true", "true", "ja"]),
        "quarantine",
        {"contacts": 1},
    ),
    (
        "negative-amount",
        cell("subscriptions", 0, "mrr", "-80000"),
        "stop",
        "subscriptions.csv, row 2, column mrr: value must be >= 0 (found -80000)",
    ),
    (
        "end-before-start",
        cell("subscriptions", 1, "end_date", "2023-01-01"),
        "stop",
        "subscriptions.csv, row 3, column end_date, start_date: end_date must be after start_date",
    ),
    ("far-future-date", cell("invoices", 1, "issued_at", "2099-01-01"), "quarantine", {"invoices": 1}),
    ("before-1990", cell("subscriptions", 1, "start_date", "1985-02-01"), "quarantine", {"subscriptions": 1}),
    ("unknown-currency", cell("subscriptions", 2, "currency", "XYZ"), "quarantine", {"subscriptions": 1}),
    ("malformed-email", cell("contacts", 0, "email", "ichi@@example"), "quarantine", {"contacts": 1}),
    (
        "empty-required-value",
        cell("contacts", 1, "email", ""),
        "ingest",
        "contacts.csv, row 3, column email: required value is empty",
    ),
    (
        "wrong-encoding",
        raw_file("contacts.csv", "contact_id,customer_id,email\nP1,C1,a@b.jp\n".encode("utf-16")),
        "ingest",
        "contacts.csv: is neither UTF-8 nor CP932",
    ),
    (
        "truncated-file",
        raw_file("subscriptions.csv", HEADER + b"\nS1,C1,2024-01-01,,80000,,,12,JPY,active\nS3,C3,2025-0"),
        "ingest",
        "subscriptions.csv, row 3: has 3 fields where the header has 10",
    ),
    (
        "unclosed-quote",
        raw_file("subscriptions.csv", HEADER + b'\nS1,C1,2024-01-01,,80000,,,12,JPY,"active\n'),
        "ingest",
        "subscriptions.csv, row 2: is not valid CSV",
    ),
    ("header-only-required", keep_only("customers", 0), "ingest", "customers.csv, row 2: has a header but no records"),
    ("extra-column", add_column("customers", "favourite_colour"), "pass", {}),
    (
        "missing-column",
        drop_column("subscriptions", "start_date"),
        "ingest",
        "subscriptions.csv, row 1, column start_date: required column is missing",
    ),
    ("missing-required-file", drop_file("subscriptions"), "ingest", "subscriptions.csv: required file is missing"),
    (
        "missing-optional-file",
        drop_file("invoices"),
        "stop",
        "invoices: 0 rows would be published (nothing staged) against 2 in the last good load (-100%)",
    ),
    (
        "no-price",
        cell("subscriptions", 0, "mrr", ""),
        "stop",
        "subscriptions.csv, row 2, column mrr: needs mrr, or amount with billing_period_months",
    ),
    (
        "unknown-status",
        cell("subscriptions", 0, "status", "cancelled"),
        "stop",
        "subscriptions.csv, row 2, column status: value must be one of active, trialing, paused, past_due, canceled",
    ),
    (
        "orphan-cascade",
        cell("customers", 2, "created_at", "1899-12-31"),
        "quarantine",
        {"customers": 1, "contacts": 1, "subscriptions": 1, "invoices": 1},
    ),
    # Issue 23, the gate publishes what it quarantined: the drop checks look at what would be published.
    (
        "owner-display-name",
        cell("customers", 0, "owner_email", '"Taro Sato" <tanaka@example.co.jp>'),
        "pass",
        {},
    ),
    (
        "ids-lower-cased",
        every_row("subscriptions", "customer_id", str.lower),
        "stop",
        "subscriptions: 0 rows would be published (3 staged, 3 quarantined: 3 references an existing customer; 3 of "
        "them name a customer only if case and spaces are ignored (e.g. 'c1' for 'C1'): ids are compared exactly) "
        "against 3 in the last good load (-100%)",
    ),
    (
        "most-customers-quarantined",
        every_row("customers", "owner_email", lambda _: "tanaka at example.co.jp", limit=2),
        "stop",
        "customers: 1 row would be published (3 staged, 2 quarantined: 2 is not a well-formed email address) "
        "against 3 in the last good load (-67%)",
    ),
    (
        "optional-file-emptied",
        keep_only("invoices", 0),
        "stop",
        "invoices: 0 rows would be published (0 staged) against 2 in the last good load (-100%)",
    ),
    # Issue 23, implausible loads: duplicates, keys the contract implies, and outliers against the last good load.
    (
        "usage-appended-to-itself",
        add_table("usage", USAGE, USAGE_ROWS + USAGE_ROWS),
        "stop",
        "usage.csv, row 5: repeats row 2 exactly",
    ),
    (
        "usage-duplicate-key",
        add_table("usage", USAGE, [*USAGE_ROWS, ["C1", "2026-10-01", "active_users", "43"]]),
        "stop",
        "usage.csv, row 5, column customer_id, month, metric: duplicate key (found 'C1', 2026-10-01, 'active_users')",
    ),
    (
        "absurd-subscription-mrr",
        cell("subscriptions", 2, "mrr", "5000000000000"),
        "stop",
        "subscriptions.csv, row 4, column mrr: subscription MRR of 5,000,000,000,000 JPY (subscription_id S3) is more "
        "than 100x both its value in the last good load (30,000 JPY) and the 99th percentile there (79,000 JPY)",
    ),
]


@pytest.mark.parametrize(("mutate", "outcome", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_catalogue(
    settings: Settings, good_warehouse: Path, mutate: Mutator, outcome: str, expected: object
) -> None:
    load_good(settings, good_warehouse)
    before = raw_fingerprint(settings)
    for path in settings.source_dir.glob("*.csv"):
        path.unlink()
    rows = base_rows()
    mutate(rows, settings.source_dir)  # may write a file byte by byte and drop it from rows
    for table, (header, records) in rows.items():
        write_csv(settings.source_dir / f"{table}.csv", header, records)

    if outcome == "ingest":
        with pytest.raises(SourceContractError) as info:
            stage_sources(settings)
        assert str(expected) in str(info.value)
        assert raw_fingerprint(settings) == before
        return
    stage_sources(settings)
    if outcome == "stop":
        with pytest.raises(GateFailedError) as gate_info:
            gate_and_publish(settings, AS_OF)
        assert str(expected) in str(gate_info.value)
        assert raw_fingerprint(settings) == before
        with connect(settings.warehouse) as con, pytest.raises(GateNotPassedError):
            assert_latest_gate_passed(con)
        return
    verdict = gate_and_publish(settings, AS_OF)
    assert verdict.quarantined == expected
    with connect(settings.warehouse) as con:
        assert_latest_gate_passed(con)
        quarantined = (
            dict(con.execute("SELECT table_name, count(*) FROM quarantine.rows GROUP BY 1").fetchall())
            if expected
            else {}
        )
    assert quarantined == expected


def test_quarantine_keeps_file_row_column_rule_value(settings: Settings, good_warehouse: Path) -> None:
    load_good(settings, good_warehouse)
    rows = base_rows()
    cell("contacts", 0, "email", "ichi@@example")(rows, settings.source_dir)
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)
    with connect(settings.warehouse) as con:
        row = con.execute(
            "SELECT table_name, source_file, source_row, column_name, rule, value, "
            "json_extract_string(record, '$.contact_id') FROM quarantine.rows"
        ).fetchone()
        published = [r[0] for r in con.execute("SELECT contact_id FROM raw.contacts ORDER BY 1").fetchall()]
    assert row == (
        "contacts",
        "contacts.csv",
        2,
        "email",
        "is not a well-formed email address",
        "'ichi@@example'",
        "P1",
    )
    assert published == ["P2", "P3"]


def test_mrr_drop_is_held_until_accepted(settings: Settings, good_warehouse: Path) -> None:
    load_good(settings, good_warehouse)
    before = raw_fingerprint(settings)
    rows = base_rows()
    cell("subscriptions", 0, "mrr", "8000")(rows, settings.source_dir)  # 80,000 -> 8,000 yen
    cell("subscriptions", 2, "mrr", "3000")(rows, settings.source_dir)
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with pytest.raises(GateFailedError, match="total dropped suspiciously against the last good load"):
        gate_and_publish(settings, AS_OF)
    assert raw_fingerprint(settings) == before
    # A person confirms the drop is real: same staged load, published.
    verdict = gate_and_publish(settings, AS_OF, accept_drop=True)
    assert verdict.passed
    with connect(settings.warehouse) as con:
        assert con.execute("SELECT sum(mrr) FROM raw.subscriptions").fetchone()[0] == 11000


def test_report_lists_every_failed_expectation_with_examples(settings: Settings, good_warehouse: Path) -> None:
    load_good(settings, good_warehouse)
    rows = base_rows()
    append("customers", ["C1", "重複株式会社", "1", "", ""])(rows, settings.source_dir)
    cell("contacts", 0, "email", "ichi@@example")(rows, settings.source_dir)
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with pytest.raises(GateFailedError) as info:
        gate_and_publish(settings, AS_OF)
    html_path = Path(info.value.verdict.report or "")
    html = html_path.read_text(encoding="utf-8")
    assert "FAILED" in html and "duplicate value" in html and "customers.csv, row 5, column customer_id" in html
    assert "is not a well-formed email address" in html
    doc = json.loads(html_path.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["passed"] is False
    assert {r["suite"] for r in doc["results"] if not r["success"]} == {"raw_customers", "raw_contacts"}


def test_every_suite_is_well_formed_and_checks_a_contract_table(settings: Settings) -> None:
    suites = load_suites(settings.expectations_dir, "raw")
    assert {s.table for s in suites} == set(TABLES_BY_NAME)
    for suite in suites:
        contract = TABLES_BY_NAME[suite.table]
        known = set(contract.column_names) | set(suite.derived_columns)
        for exp in suite.expectations:
            for key in ("column", "column_A", "column_B"):
                if key in exp["kwargs"]:
                    assert exp["kwargs"][key] in known, (suite.name, exp)
            assert set(exp["kwargs"].get("column_list", [])) <= known, (suite.name, exp)
        assert set(suite.normalise) <= set(contract.column_names), suite.name
        for spec in suite.outliers:
            assert {*spec.key, spec.column, spec.segment or spec.column} <= known, (suite.name, spec)
        for exp in suite.expectations:
            if exp["type"] == "expect_column_values_to_be_in_set" and exp["kwargs"]["column"] in contract.column_names:
                allowed = contract.column(exp["kwargs"]["column"]).allowed
                if allowed:
                    assert tuple(exp["kwargs"]["value_set"]) == allowed, f"{suite.name} disagrees with the contract"


def test_suite_without_severity_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "raw_x.json"
    path.write_text(
        json.dumps(
            {
                "name": "raw_x",
                "meta": {"table": "customers", "schema": "raw"},
                "expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "customer_id"}}],
            }
        )
    )
    with pytest.raises(SuiteFileError, match=r"expectations\[0\].*needs meta.severity"):
        load_suite(path)


def test_chunked_validation_sees_duplicates_and_failures_across_chunks(settings: Settings) -> None:
    """Small chunks (2 rows) must give the same verdict as one frame: duplicates span chunk borders."""
    rows = base_rows()
    append("customers", ["C1", "重複株式会社", "1", "", ""])(rows, settings.source_dir)  # row 5 repeats row 2
    cell("contacts", 2, "email", "san@@example")(rows, settings.source_dir)  # row 4: in the second chunk
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        params = gate_parameters(con, AS_OF, 0.5)
        for suite in load_suites(settings.expectations_dir, "raw"):
            if suite.table not in ("customers", "contacts"):
                continue
            whole = validate_table(con, "raw_incoming", suite, params)
            chunked = validate_table(con, "raw_incoming", suite, params, chunk_rows=2)
            summary = [(r.expectation, r.success, r.unexpected_count, sorted(r.rows)) for r in whole]
            assert summary == [(r.expectation, r.success, r.unexpected_count, sorted(r.rows)) for r in chunked]
            failed = {(r.expectation, tuple(row for row, _ in r.rows)) for r in chunked if not r.success}
            if suite.table == "customers":
                assert failed == {("expect_column_values_to_be_unique", (2, 5))}
            else:
                assert failed == {("expect_column_values_to_match_regex", (4,))}


def test_outlier_is_held_until_accepted(settings: Settings, good_warehouse: Path) -> None:
    load_good(settings, good_warehouse)
    before = raw_fingerprint(settings)
    rows = base_rows()
    cell("subscriptions", 2, "mrr", "5000000000000")(rows, settings.source_dir)  # ¥5 trillion a month
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with pytest.raises(GateFailedError) as info:
        gate_and_publish(settings, AS_OF)
    assert "what to do: if the values are real, publish them with `kizuna check --accept-outliers`" in str(info.value)
    html = Path(info.value.verdict.report or "").read_text(encoding="utf-8")
    assert "kizuna check --accept-outliers" in html and "subscription_id S3" in html
    assert raw_fingerprint(settings) == before
    # --accept-drop is not a way round an outlier; --accept-outliers is.
    with pytest.raises(GateFailedError):
        gate_and_publish(settings, AS_OF, accept_drop=True)
    verdict = gate_and_publish(settings, AS_OF, accept_outliers=True)
    assert verdict.passed
    with connect(settings.warehouse) as con:
        assert con.execute("SELECT mrr FROM raw.subscriptions WHERE subscription_id = 'S3'").fetchone()[0] == 5e12


def test_ops_loads_records_published_rows_after_quarantine(settings: Settings) -> None:
    rows = base_rows()
    cell("contacts", 0, "email", "ichi@@example")(rows, settings.source_dir)  # quarantined
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    verdict = gate_and_publish(settings, AS_OF)
    with connect(settings.warehouse) as con:
        loads = {
            r[0]: (r[1], r[2])
            for r in con.execute("SELECT table_name, row_count, staged_rows FROM ops.loads").fetchall()
        }
    assert loads == {"customers": (3, 3), "contacts": (2, 3), "subscriptions": (3, 3), "invoices": (2, 2)}
    assert verdict.published["contacts"] == 2
