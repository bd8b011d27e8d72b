"""The quality gate on DuckDB and on PostgreSQL (issue 24): the same verdict on the same staged load.

Staging runs on DuckDB only for now: each load is staged by kizuna's ingest on a DuckDB file (the first one also
gated and published there), whose schemas are then copied into a warehouse of each engine
(tests.warehouse_engines.copy_schemas), where the gate's checks run. The gate of the DuckDB file itself gives the
verdict every engine must give; the parts that matter are also spelled out, so that a change breaking both alike
still fails.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kizuna.core.connection import Connection, connect
from kizuna.core.settings import Settings
from kizuna.quality.gate import (
    GateFailedError,
    GateNotPassedError,
    assert_latest_gate_passed,
    check_staged,
    gate_and_publish,
    gate_parameters,
    record_verdict,
)
from kizuna.quality.quarantine import QUARANTINE_STAGING
from kizuna.quality.verdict import GateVerdict
from kizuna.sources.ingest import stage_sources
from tests.conftest import settings_under
from tests.quality.test_gate import CONTACTS, CUSTOMERS, INVOICES, SUBSCRIPTIONS, USAGE, write_sources
from tests.warehouse_engines import copy_schemas

AS_OF = dt.date(2026, 11, 23)
SCHEMAS = ["raw_incoming", "raw", "ops", "quarantine", "connector_state"]
Rows = dict[str, tuple[list[str], list[list[str]]]]


def day_one() -> Rows:
    """A first load: an owner address with a display name (normalised), a malformed email and a contact of an
    unknown customer (both quarantined)."""
    return {
        "customers": (
            CUSTOMERS,
            [
                ["C1", "株式会社一号", "120", "2024-01-05 10:00", '"Tanaka Taro" <tanaka@example.co.jp>'],
                ["C2", "二号商事株式会社", "30", "2024-02-01", ""],
                ["C3", "三号株式会社", "8", "2025-06-01", "sato@example.co.jp"],
                ["C4", "四号工業", "55", "2025-09-01", ""],
                ["C5", "五号", "3", "2026-01-10", ""],
            ],
        ),
        "contacts": (
            CONTACTS,
            [
                ["P1", "C1", "ichi@example.co.jp", "true", "true", "ja"],
                ["P2", "C2", "ni@@example", "true", "false", "ja"],
                ["P3", "C9", "san@example.co.jp", "true", "true", "en"],
                ["P4", "C4", "yon@example.co.jp", "true", "true", "en"],
                ["P5", "C5", "go@example.co.jp", "true", "false", "ja"],
            ],
        ),
        "subscriptions": (
            SUBSCRIPTIONS,
            [
                ["S1", "C1", "2024-01-01", "", "80000", "", "", "12", "JPY", "active"],
                ["S2", "C2", "2024-02-01", "2025-02-01", "", "360000", "12", "12", "JPY", "canceled"],
                ["S3", "C3", "2025-06-01", "", "30000", "", "", "1", "", "active"],
                ["S4", "C4", "2025-09-01", "", "500", "", "", "12", "USD", "active"],
            ],
        ),
        "invoices": (
            INVOICES,
            [
                ["I1", "C1", "2026-10-01 09:00", "88000", "JPY", "paid"],
                ["I2", "C3", "2026-10-01 09:00", "33000", "JPY", "open"],
                ["I3", "C4", "2026-10-01 09:00", "550.50", "USD", "paid"],
                ["I4", "C1", "2026-09-01 09:00", "88000", "JPY", "paid"],
                ["I5", "C3", "2026-09-01 09:00", "33000", "JPY", "paid"],
                ["I6", "C4", "2026-09-01 09:00", "550.50", "USD", "paid"],
            ],
        ),
        "usage": (
            USAGE,
            [
                ["C1", "2026-09-01", "active_users", "40"],
                ["C1", "2026-10-01", "active_users", "42"],
                ["C3", "2026-10-01", "active_users", "6"],
                ["C4", "2026-10-01", "active_users", "12"],
            ],
        ),
    }


def day_two() -> Rows:
    """The next load, held: most invoices gone and a new one a thousand times the usual amount. Besides, a customer
    with a negative headcount (quarantined, its contact with it), a contact with an unknown locale; the malformed
    email unchanged (kept out, not reported again), the unknown customer's contact unchanged (checked again), a
    new contact whose customer id differs in case only."""
    rows = day_one()
    rows["customers"][1][4][2] = "-3"
    rows["contacts"][1][3][5] = "fr"
    rows["contacts"][1].append(["P6", "c3", "roku@example.co.jp", "false", "false", "ja"])
    rows["subscriptions"][1][0][4] = "90000"
    header, invoices = rows["invoices"]
    rows["invoices"] = (header, [invoices[0], ["I7", "C1", "2026-11-01 09:00", "90000000", "JPY", "open"]])
    rows["usage"][1].append(["C1", "2026-11-01", "active_users", "45"])
    return rows


@dataclass
class Checked:
    """What the gate did to a staged load on one engine."""

    verdict: GateVerdict
    quarantine: list[tuple[Any, ...]]  # the quarantine staged beside the load, record parsed
    owner_emails: list[tuple[Any, ...]]  # customers' owner_email as the gate left it
    recorded: list[tuple[Any, ...]]  # ops.gate_results of the load


def check_on(target: Path | str, settings: Settings, load_id: str) -> Checked:
    """The gate's checks on the load staged in `target`, in a transaction as gate_and_publish runs them."""
    with connect(target) as con:
        parameters = gate_parameters(con, AS_OF, settings.gate_max_drop)
        parameters["outlier_factor"] = settings.gate_outlier_factor
        con.execute("BEGIN TRANSACTION")
        verdict = check_staged(con, settings, load_id, parameters, outlier_factor=settings.gate_outlier_factor)
        quarantine = quarantined(con, QUARANTINE_STAGING, load_id)
        owners = con.execute("SELECT customer_id, owner_email FROM raw_incoming.customers ORDER BY 1").fetchall()
        con.execute("COMMIT" if verdict.passed else "ROLLBACK")
        record_verdict(con, verdict)
        recorded = con.execute(
            "SELECT suite, table_name, expectation, column_name, severity, success, unexpected_count "
            "FROM ops.gate_results WHERE load_id = ?",
            [load_id],
        ).fetchall()
    return Checked(verdict, quarantine, owners, sorted(recorded, key=repr))


_ISO_T = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)$")


def quarantined(con: Connection, table: str, load_id: str) -> list[tuple[Any, ...]]:
    """A quarantine's rows of a load, its record parsed; a timestamp in it written as DuckDB writes it (with a
    space: PostgreSQL's JSON writes ISO 8601's 'T', docs/scaling.md)."""
    rows = con.execute(
        f"SELECT table_name, source_file, source_row, column_name, rule, value, severity, record FROM {table} "
        "WHERE load_id = ? ORDER BY table_name, source_row, rule",
        [load_id],
    ).fetchall()

    def plain(value: object) -> object:
        return _ISO_T.sub(r"\1 \2", value) if isinstance(value, str) else value

    return [(*row[:7], {k: plain(v) for k, v in json.loads(row[7]).items()}) for row in rows]


def outcome(verdict: GateVerdict) -> dict[str, Any]:
    """Everything a verdict says: per result its suite, table, expectation, column, severity, success, count,
    findings and offending rows, in the order the gate gave them."""
    return {
        "passed": verdict.passed,
        "results": [
            (
                *(r.suite, r.table, r.expectation, r.column, r.severity, r.success, r.unexpected_count),
                *(tuple(str(f) for f in r.findings), tuple(r.rows), r.advice),
            )
            for r in verdict.results
        ],
        "quarantined": verdict.quarantined,
        "kept_out": verdict.kept_out,
        "normalised": [str(n) for n in verdict.normalised],
        "skipped": verdict.skipped_suites,
        "checked_rows": verdict.checked_rows,
    }


def keyless_in_full(expected: dict[str, Any], target: Path | str, usage_rows: int) -> dict[str, Any]:
    """The outcome an engine must give: on PostgreSQL the keyless usage table is checked in full, as on a first
    load (its change list names rows by DuckDB's hash: kizuna.quality.changed_rows.is_incremental); the verdict
    is the same, only the rows checked and the keep-out pass differ."""
    if isinstance(target, Path):
        return expected
    kept_out = {k: v for k, v in expected["kept_out"].items() if k != "usage"}
    return {**expected, "kept_out": kept_out, "checked_rows": {**expected["checked_rows"], "raw_usage": usage_rows}}


def failures(verdict: GateVerdict) -> list[tuple[Any, ...]]:
    return [
        (r.severity, r.table, r.expectation, r.column, r.unexpected_count) for r in verdict.results if not r.success
    ]


def test_the_gate_gives_the_same_verdict_on_each_engine(engine_target: Path | str, tmp_path: Path) -> None:
    (tmp_path / "staging").mkdir()
    settings = settings_under(tmp_path / "staging")  # the DuckDB file kizuna stages on

    # Day 1: a first load, passed with two contacts quarantined and an address normalised.
    write_sources(settings.source_dir, day_one())
    first_load = stage_sources(settings).load_id
    copy_schemas(settings.warehouse, engine_target, SCHEMAS)
    expected = gate_and_publish(settings, AS_OF)
    first = check_on(engine_target, settings, first_load)

    assert outcome(first.verdict) == outcome(expected)
    assert first.verdict.passed and first.verdict.quarantined == {"contacts": 2}
    assert failures(first.verdict) == [
        ("warning", "contacts", "expect_column_values_to_be_in_set", "customer_id", 1),
        ("warning", "contacts", "expect_column_values_to_match_regex", "email", 1),
    ]
    assert [str(n) for n in first.verdict.normalised] == [
        "customers.owner_email: 1 value rewritten (address with a display name: kept the address), e.g. "
        "customers.csv, row 2, column owner_email: '\"Tanaka Taro\" <tanaka@example.co.jp>' -> 'tanaka@example.co.jp'"
    ]
    assert first.owner_emails == [
        ("C1", "tanaka@example.co.jp"),
        ("C2", None),
        ("C3", "sato@example.co.jp"),
        ("C4", None),
        ("C5", None),
    ]
    with connect(settings.warehouse, read_only=True) as con:
        assert first.quarantine == quarantined(con, "quarantine.rows", first_load)
    assert [row[:7] for row in first.quarantine] == [
        ("contacts", "contacts.csv", 3, "email", "is not a well-formed email address", "'ni@@example'", "warning"),
        ("contacts", "contacts.csv", 4, "customer_id", "references an existing customer", "'C9'", "warning"),
    ]
    assert first.quarantine[1][7] == {
        "contact_id": "P3",
        "customer_id": "C9",
        "email": "san@example.co.jp",
        "name": None,
        "role": None,
        "is_primary": True,
        "marketing_opt_in": True,
        "locale": "en",
        "_source_file": "contacts.csv",
        "_source_row": 4,
    }
    assert first.recorded == sorted([r[:7] for r in outcome(expected)["results"]], key=repr)  # every result kept
    with connect(engine_target) as con:
        assert_latest_gate_passed(con)

    # Day 2: compared with day 1 as published, held for the vanished invoices and the huge one.
    write_sources(settings.source_dir, day_two())
    second_load = stage_sources(settings).load_id
    copy_schemas(settings.warehouse, engine_target, SCHEMAS)
    with pytest.raises(GateFailedError) as held:
        gate_and_publish(settings, AS_OF)
    second = check_on(engine_target, settings, second_load)

    assert outcome(held.value.verdict)["checked_rows"]["raw_usage"] == 1  # on DuckDB, the new month's row alone
    assert outcome(second.verdict) == keyless_in_full(outcome(held.value.verdict), engine_target, usage_rows=5)
    assert not second.verdict.passed
    assert failures(second.verdict) == [
        ("warning", "customers", "expect_column_values_to_be_between", "employee_count", 1),
        ("warning", "contacts", "expect_column_values_to_be_in_set", "customer_id", 3),
        ("warning", "contacts", "expect_column_values_to_be_in_set", "locale", 1),
        ("critical", "contacts", "row_count_not_dropped", None, 0),
        ("critical", "invoices", "row_count_not_dropped", None, 0),
        ("critical", "invoices", "no_outliers", "amount", 1),
    ]
    assert second.verdict.quarantined == {"customers": 1, "contacts": 4}
    assert second.verdict.kept_out["contacts"] == 1  # the malformed email, unchanged: not reported again
    drops = [r for r in second.verdict.results if r.expectation == "row_count_not_dropped" and not r.success]
    assert [str(f) for r in drops for f in r.findings] == [
        "contacts: 1 row would be published (5 staged, 4 quarantined: 3 references an existing customer; 1 value "
        "must be one of ja, en; 1 of them name a customer only if case and spaces are ignored (e.g. 'c3' for 'C3'): "
        "ids are compared exactly) against 3 in the last good load (-67%); at most 50% may vanish "
        "(KIZUNA_GATE_MAX_DROP)",
        "invoices: 2 rows would be published (2 staged) against 6 in the last good load (-67%); at most 50% may "
        "vanish (KIZUNA_GATE_MAX_DROP)",
    ]
    outlier = next(r for r in second.verdict.results if r.expectation == "no_outliers" and not r.success)
    assert [str(f) for f in outlier.findings] == [
        "invoices.csv, row 3, column amount: invoice amount of 90,000,000 JPY (invoice_id I7) is more than 100x both "
        "its value in the last good load (none (new)) and the 99th percentile there (88,000 JPY)"
    ]
    assert [row[:4] for row in second.quarantine] == [
        ("contacts", "contacts.csv", 4, "customer_id"),
        ("contacts", "contacts.csv", 5, "locale"),
        ("contacts", "contacts.csv", 6, "customer_id"),
        ("contacts", "contacts.csv", 7, "customer_id"),
        ("customers", "customers.csv", 6, "employee_count"),
    ]
    assert second.quarantine[4][7]["created_at"] == "2026-01-09 15:00:00"  # midnight in Tokyo, in UTC
    assert second.recorded == sorted([r[:7] for r in outcome(held.value.verdict)["results"]], key=repr)
    with connect(engine_target) as con, pytest.raises(GateNotPassedError, match=second_load):
        assert_latest_gate_passed(con)  # nothing is sent until a load passes
