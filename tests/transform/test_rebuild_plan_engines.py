"""The months a build rebuilds come out the same on DuckDB and on PostgreSQL (issue 24): from the billing tables a
load changes (a backdated change included) and from the loads and customers recorded since the last good build."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.warehouse import INCOMING_SCHEMA, RAW_SCHEMA
from kizuna.transform.rebuild_months import READ_TABLES, earliest_month_changed
from kizuna.transform.rebuild_plan import MONTH_COLUMN, RebuildPlan, fingerprint, plan, record_staged_month

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
AS_OF = date(2026, 11, 23)
LOAD_ID = "20261123T050000-staged"

SUBSCRIPTIONS = {  # subscription_id: (customer_id, start_date, end_date, mrr, status)
    "S1": ("C1", date(2025, 3, 10), None, 100, "active"),
    "S2": ("C2", date(2024, 1, 1), date(2026, 12, 31), 50, "active"),
    "S3": ("C3", date(2025, 6, 1), None, 80, "past_due"),
    "S4": ("C4", date(2026, 1, 1), None, 70, "active"),
}
INVOICES = [  # (invoice_id, subscription_id, issued_at, status)
    ("I1", "S3", datetime(2026, 5, 3, 9), "paid"),
    ("I2", "S3", datetime(2026, 6, 3, 9), "open"),
]
FX_RATES = [(date(2026, 1, 1), "USD", 150.0), (date(2026, 2, 1), "USD", 151.0)]


def _create(con: Connection, schema: str, table: str) -> None:
    kinds = {"DOUBLE": "DOUBLE PRECISION"}
    columns = ", ".join(f'"{c.name}" {kinds.get(c.type.value, c.type.value)}' for c in TABLES_BY_NAME[table].columns)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f'CREATE TABLE {schema}."{table}" ({columns})')


def _load_billing(con: Connection, schema: str, subscriptions: dict, invoices: list, fx_rates: list) -> None:
    for table in READ_TABLES:
        _create(con, schema, table)
    con.executemany(
        f"INSERT INTO {schema}.subscriptions (subscription_id, customer_id, start_date, end_date, mrr, amount, "
        "billing_period_months, quantity, currency, status) VALUES (?, ?, ?, ?, ?, ?, 1, 1, 'JPY', ?)",
        [(s, c, start, end, mrr, mrr, status) for s, (c, start, end, mrr, status) in subscriptions.items()],
    )
    con.executemany(
        f"INSERT INTO {schema}.invoices (invoice_id, customer_id, subscription_id, issued_at, amount, currency, status) "
        "VALUES (?, ?, ?, ?, 100, 'JPY', ?)",
        [(i, subscriptions[s][0], s, at, status) for i, s, at, status in invoices],
    )
    con.executemany(
        f"INSERT INTO {schema}.fx_rates (month, currency, rate, reporting_currency) VALUES (?, ?, ?, 'JPY')", fx_rates
    )


def test_a_staged_loads_months_are_recorded_the_same_on_both_engines(engine_con: Connection) -> None:
    """A load that changes S1's MRR from its start in March 2025 (backdated), ends S2 earlier, adds an open invoice
    to the past-due S3 and revises February's USD rate: the earliest month is March 2025, every customer is rebuilt
    from the fx rate's month, and C1 from its own."""
    con = engine_con
    _load_billing(con, RAW_SCHEMA, SUBSCRIPTIONS, INVOICES, FX_RATES)
    staged = dict(SUBSCRIPTIONS)
    staged["S1"] = ("C1", date(2025, 3, 10), None, 120, "active")
    staged["S2"] = ("C2", date(2024, 1, 1), date(2026, 9, 30), 50, "canceled")
    _load_billing(
        con,
        INCOMING_SCHEMA,
        staged,
        [*INVOICES, ("I3", "S3", datetime(2026, 7, 3, 9), "open")],
        [FX_RATES[0], (date(2026, 2, 1), "USD", 152.0)],
    )
    # C2's headcount changes: its scoring snapshots are rebuilt, every one (the customer row is read as of today).
    for schema, headcounts in ((RAW_SCHEMA, (10, 10, 10)), (INCOMING_SCHEMA, (10, 12, 10))):
        _create(con, schema, "customers")
        con.executemany(
            f"INSERT INTO {schema}.customers (customer_id, name, employee_count) VALUES (?, 'x', ?)",
            [(f"C{i}", n) for i, n in enumerate(headcounts, start=1)],
        )
    con.execute(f"CREATE TABLE {INCOMING_SCHEMA}._load (load_id VARCHAR, table_name VARCHAR)")
    con.executemany(f"INSERT INTO {INCOMING_SCHEMA}._load VALUES (?, ?)", [(LOAD_ID, t) for t in READ_TABLES])

    assert earliest_month_changed(con, RAW_SCHEMA, RAW_SCHEMA, AS_OF) == date(2026, 11, 1)  # nothing changed
    assert earliest_month_changed(con, RAW_SCHEMA, INCOMING_SCHEMA, AS_OF) == date(2025, 3, 1)
    assert record_staged_month(con, AS_OF) == date(2025, 3, 1)
    recorded = con.execute(f"SELECT DISTINCT {MONTH_COLUMN} FROM {INCOMING_SCHEMA}._load").fetchall()
    assert recorded == [(date(2025, 3, 1),)]
    months = con.execute(
        f"SELECT load_id, customer_id, month FROM {ops.LOAD_CUSTOMER_MONTHS} ORDER BY customer_id NULLS FIRST"
    ).fetchall()
    assert months == [(LOAD_ID, None, date(2026, 2, 1)), (LOAD_ID, "C1", date(2025, 3, 1))]
    snapshots = con.execute(
        f"SELECT load_id, customer_id, month FROM {ops.LOAD_SNAPSHOT_CUSTOMERS} ORDER BY customer_id NULLS FIRST"
    ).fetchall()
    assert snapshots == [(LOAD_ID, None, date(2026, 11, 1)), (LOAD_ID, "C2", date(1900, 1, 1))]


def _record_builds_and_loads(con: Connection) -> None:
    """A good build on the 20th, a failed one since (from August), and three loads: one before the good build
    (no month: ignored), one since with a backdated change of C1 from March 2025, and one from October."""
    ops.ensure(con, ops.DBT_BUILDS, ops.LOADS, ops.LOAD_CUSTOMER_MONTHS, ops.LOAD_SNAPSHOT_CUSTOMERS)
    con.executemany(
        f"INSERT INTO {ops.DBT_BUILDS} (build_id, as_of, selector, started_at, finished_at, status, fingerprint, "
        f"rebuild_from_month) VALUES (?, ?, NULL, ?, ?, ?, ?, ?)",
        [
            (
                "good",
                date(2026, 11, 20),
                datetime(2026, 11, 20, 5),
                datetime(2026, 11, 20, 6),
                "passed",
                fingerprint(PROJECT_DIR),
                date(2026, 10, 1),
            ),
            (
                "failed",
                date(2026, 11, 21),
                datetime(2026, 11, 21, 5),
                datetime(2026, 11, 21, 6),
                "failed",
                fingerprint(PROJECT_DIR),
                date(2026, 8, 1),
            ),
        ],
    )
    con.execute(f"ALTER TABLE {ops.LOADS} ADD COLUMN {MONTH_COLUMN} DATE")
    con.executemany(
        f"INSERT INTO {ops.LOADS} (load_id, published_at, table_name, {MONTH_COLUMN}) VALUES (?, ?, ?, ?)",
        [
            ("L0", datetime(2026, 11, 19, 5), "subscriptions", None),
            ("L2", datetime(2026, 11, 21, 4), "subscriptions", date(2026, 11, 1)),
            ("L2", datetime(2026, 11, 21, 4), "invoices", date(2025, 3, 1)),
            ("L3", datetime(2026, 11, 22, 4), "subscriptions", date(2026, 10, 1)),
        ],
    )
    con.executemany(
        f"INSERT INTO {ops.LOAD_CUSTOMER_MONTHS} VALUES (?, ?, ?)",
        [
            ("L2", None, date(2026, 10, 1)),
            ("L2", "C1", date(2025, 3, 1)),
            ("L3", None, date(2026, 9, 1)),
            ("L3", "C5", date(2026, 9, 1)),  # not before every customer's month: rebuilt with them
        ],
    )
    con.executemany(
        f"INSERT INTO {ops.LOAD_SNAPSHOT_CUSTOMERS} VALUES (?, ?, ?)",
        [
            ("L2", None, date(2026, 11, 1)),
            ("L3", None, date(2026, 11, 1)),
            ("L3", "C2", date(2026, 4, 1)),
            ("L3", "C6", date(2026, 10, 1)),
        ],
    )
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    con.execute(f"CREATE TABLE {RAW_SCHEMA}.customers (customer_id VARCHAR)")
    con.executemany(f"INSERT INTO {RAW_SCHEMA}.customers VALUES (?)", [(f"C{i}",) for i in range(1, 41)])


def test_the_plan_from_loads_since_the_last_good_build_is_the_same_on_both_engines(engine_con: Connection) -> None:
    """Months from C1's backdated March 2025, every customer from September (L3's fx month), C1 by customer; the
    snapshots of C1 and C2 by customer; rows tested from the failed build's August."""
    con = engine_con
    _record_builds_and_loads(con)
    assert plan(con, PROJECT_DIR, AS_OF) == RebuildPlan(
        month=date(2025, 3, 1),
        fingerprint=fingerprint(PROJECT_DIR),
        reason="2 loads since the last good build",
        customers_from=date(2026, 9, 1),
        customers=1,
        snapshots_from=date(2026, 9, 1),
        snapshot_customers=2,
        tested_from=date(2026, 8, 1),
    )
    assert con.execute(f"SELECT * FROM {ops.REBUILD_CUSTOMERS}").fetchall() == [("C1", date(2025, 3, 1))]
    snapshots = con.execute(f"SELECT * FROM {ops.REBUILD_SNAPSHOT_CUSTOMERS} ORDER BY customer_id").fetchall()
    assert snapshots == [("C1", date(2025, 3, 1)), ("C2", date(2026, 4, 1))]


def test_a_table_left_out_of_the_staged_load_counts_as_empty_on_both_engines(engine_con: Connection) -> None:
    """No fx_rates file staged (it is published empty): February's revised rate and January's are both gone, so every
    customer is rebuilt from January 2026; no subscription changed."""
    con = engine_con
    _load_billing(con, RAW_SCHEMA, SUBSCRIPTIONS, INVOICES, FX_RATES)
    _load_billing(con, INCOMING_SCHEMA, SUBSCRIPTIONS, INVOICES, FX_RATES)
    con.execute(f"DROP TABLE {INCOMING_SCHEMA}.fx_rates")
    assert earliest_month_changed(con, RAW_SCHEMA, INCOMING_SCHEMA, AS_OF) == date(2026, 1, 1)
