"""The scoring snapshots rebuilt by customer (docs/incremental.md, "The scoring snapshots"): the gate records the
customers whose snapshot inputs change, the plan lists them, and a day 2 with such changes equals a full refresh."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest

from kizuna.core import ops
from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, RAW_SCHEMA, connect, raw_table_ddl
from kizuna.transform import builds, dbt_runner, rebuild_plan
from kizuna.transform.snapshot_changes import EVERY_SNAPSHOT
from tests.dbt.incremental_days import MODELS_ONLY, NEXT, differences, run_day, shared_days

TABLES = ("customers", "activities", "support_tickets", "deals", "subscriptions", "invoices", "fx_rates")


def test_the_gate_records_the_customers_whose_snapshot_inputs_change(tmp_path: Path) -> None:
    """Made by hand: a customer row's employee_count (every snapshot), a backdated activity, a deleted ticket, a
    deal closed, a subscription's product (from its start) are recorded with their months; a change the
    snapshots do not read (a name, a deal's stage) or dated in the as-of month (the scoring snapshot, rebuilt
    whole) is not."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        for schema in (RAW_SCHEMA, INCOMING_SCHEMA):
            con.execute(f"CREATE SCHEMA {schema}")
            for name in TABLES:
                con.execute(raw_table_ddl(TABLES_BY_NAME[name], schema))
        con.execute(f"CREATE TABLE {INCOMING_SCHEMA}._load (load_id VARCHAR, table_name VARCHAR)")
        con.execute(f"INSERT INTO {INCOMING_SCHEMA}._load VALUES ('L2', 'customers')")
        for schema in (RAW_SCHEMA, INCOMING_SCHEMA):
            new = schema == INCOMING_SCHEMA
            con.executemany(
                f"INSERT INTO {schema}.customers (customer_id, name, employee_count) VALUES (?, ?, ?)",
                [("C1", "One", 20 if new else 10), ("C2", "Two (renamed)" if new else "Two", 5)],
            )
            activities = [("A1", "C4", "call", "2026-02-10 09:00:00")]  # in the as-of month: not listed
            if new:
                activities.append(("A2", "C3", "call", "2025-07-10 09:00:00"))  # backdated into July
            con.executemany(
                f"INSERT INTO {schema}.activities (activity_id, customer_id, type, occurred_at) VALUES (?, ?, ?, ?)",
                activities,
            )
            if not new:  # deleted on day 2
                con.execute(
                    f"INSERT INTO {schema}.support_tickets (ticket_id, customer_id, created_at) "
                    "VALUES ('T1', 'C5', '2025-11-03 10:00:00')"
                )
            con.executemany(
                f"INSERT INTO {schema}.deals (deal_id, customer_id, type, stage, created_at, closed_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    ("D1", "C6", "upsell", "won" if new else "open", "2025-03-01", "2026-02-16" if new else None),
                    ("D2", "C7", "upsell", "proposal" if new else "open", "2024-01-01", None),  # stage only
                ],
            )
            con.execute(
                f"INSERT INTO {schema}.subscriptions (subscription_id, customer_id, start_date, mrr, currency, "
                "status, product) VALUES ('S1', 'C8', '2024-04-15', 10, 'JPY', 'active', ?)",
                ["Suite B" if new else "Suite A"],
            )
        rebuild_plan.record_staged_month(con, NEXT)
        recorded = con.execute(
            f"SELECT customer_id, month FROM {ops.LOAD_SNAPSHOT_CUSTOMERS} WHERE load_id = 'L2' ORDER BY ALL"
        ).fetchall()
        assert recorded == [
            ("C1", EVERY_SNAPSHOT),
            ("C3", date(2025, 7, 1)),
            ("C5", date(2025, 11, 1)),
            ("C6", date(2025, 3, 1)),
            ("C8", date(2024, 4, 1)),
            (None, date(2026, 2, 1)),  # the load is recorded
        ]
        # the product change is not in the billing months (its MRR did not move): only the snapshots list C8
        billing = con.execute(f"SELECT customer_id FROM {ops.LOAD_CUSTOMER_MONTHS} WHERE customer_id IS NOT NULL")
        assert billing.fetchall() == []

        # Ingest staged the keys each table changes: only those rows are compared (C1's row is left out of the
        # list on purpose, to show it), unless the gate rewrote the table since (quarantine): then all of it.
        con.execute(
            f"ALTER TABLE {INCOMING_SCHEMA}._load ADD COLUMN row_count BIGINT; "
            f"ALTER TABLE {INCOMING_SCHEMA}._load ADD COLUMN rewritten BOOLEAN; "
            f"ALTER TABLE {INCOMING_SCHEMA}._load ADD COLUMN full_refresh BOOLEAN; "
            f"ALTER TABLE {INCOMING_SCHEMA}._load ADD COLUMN status VARCHAR; "
            f"ALTER TABLE {INCOMING_SCHEMA}._load ADD COLUMN inserted_rows BIGINT; "
            f"DELETE FROM {INCOMING_SCHEMA}._load; "
            f"CREATE TABLE {INCOMING_SCHEMA}._load_changes (load_id VARCHAR, table_name VARCHAR, key VARCHAR, "
            "change VARCHAR, before_row VARCHAR)"
        )
        for table in TABLES:
            (count,) = con.execute(f"SELECT count(*) FROM {INCOMING_SCHEMA}.{table}").fetchone() or (0,)
            con.execute(
                f"INSERT INTO {INCOMING_SCHEMA}._load (load_id, table_name, row_count, rewritten, full_refresh, "
                "status, inserted_rows) VALUES ('L2', ?, ?, false, false, 'staged', 0)",  # compared with raw
                [table, count],
            )
        con.executemany(
            f"INSERT INTO {INCOMING_SCHEMA}._load_changes VALUES ('L2', ?, ?, 'updated', NULL)",
            [
                ("customers", "C2"),
                ("activities", "A2"),
                ("support_tickets", "T1"),
                ("deals", "D1"),
                ("deals", "D2"),
                ("subscriptions", "S1"),
            ],
        )

        def customers_recorded() -> list[str | None]:
            rebuild_plan.record_staged_month(con, NEXT)
            return [
                r[0]
                for r in con.execute(
                    f"SELECT customer_id FROM {ops.LOAD_SNAPSHOT_CUSTOMERS} WHERE load_id = 'L2' ORDER BY ALL"
                ).fetchall()
            ]

        assert customers_recorded() == ["C3", "C5", "C6", "C8", None]
        con.execute(f"UPDATE {INCOMING_SCHEMA}._load SET rewritten = true WHERE table_name = 'customers'")
        assert customers_recorded() == ["C1", "C3", "C5", "C6", "C8", None]
    finally:
        con.close()


def test_which_snapshot_customers_a_build_rebuilds(tmp_path: Path) -> None:
    """Made by hand: the snapshot customers of the loads since the last good build with those the movements
    rebuild by customer, each from its earliest month; every snapshot when a load did not record them or more
    than 5% of the customers would be listed."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:

        def plan() -> rebuild_plan.RebuildPlan:
            return rebuild_plan.plan(con, Settings().dbt_project_dir, NEXT)

        def load(load_id: str, billing: dict[str | None, date], snapshots: dict[str | None, date] | None) -> None:
            ops.upgrade_loads(con)
            con.execute(
                f"INSERT INTO {ops.LOADS} (load_id, published_at, table_name, rebuild_from_month) "
                "VALUES (?, timezone('UTC', now()), 'subscriptions', ?)",
                [load_id, min(billing.values())],
            )
            ops.ensure(con, ops.LOAD_CUSTOMER_MONTHS, ops.LOAD_SNAPSHOT_CUSTOMERS)
            for customer, since in billing.items():
                con.execute(f"INSERT INTO {ops.LOAD_CUSTOMER_MONTHS} VALUES (?, ?, ?)", [load_id, customer, since])
            for customer, since in (snapshots or {}).items():
                con.execute(f"INSERT INTO {ops.LOAD_SNAPSHOT_CUSTOMERS} VALUES (?, ?, ?)", [load_id, customer, since])

        def listed() -> list[tuple[str, date]]:
            return con.execute(f"SELECT * FROM {ops.REBUILD_SNAPSHOT_CUSTOMERS} ORDER BY ALL").fetchall()

        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.customers AS SELECT 'C' || range AS customer_id FROM range(100)")
        builds.finish(con, builds.start(con, NEXT, fingerprint=plan().fingerprint), passed=True)
        january, february = date(2026, 1, 1), date(2026, 2, 1)
        load("L1", {None: january, "C1": date(2024, 5, 1)}, {None: february, "C2": EVERY_SNAPSHOT})
        load("L2", {None: january}, {None: february, "C2": date(2025, 3, 1), "C3": date(2025, 9, 1)})
        first = plan()
        assert (first.customers_from, first.snapshots_from, first.snapshot_customers) == (january, january, 3)
        assert listed() == [("C1", date(2024, 5, 1)), ("C2", EVERY_SNAPSHOT), ("C3", date(2025, 9, 1))]
        assert "3 customers' from their own month" in first.describe_snapshots()
        load("L3", {None: date(2025, 10, 1)}, {None: february})  # an fx rate: every customer from 2025-10
        october = date(2025, 10, 1)
        assert (plan().customers_from, plan().snapshots_from, plan().snapshot_customers) == (october, october, 3)
        builds.finish(con, builds.start(con, NEXT, fingerprint=plan().fingerprint), passed=True)
        load("L4", {None: january}, {None: february, **{f"C{n}": date(2025, 5, 1) for n in range(10, 16)}})
        assert (plan().snapshots_from, plan().snapshot_customers) == (None, 0)  # 6 of 100: every snapshot
        assert plan().describe_snapshots() == "every snapshot" and listed() == []
        builds.finish(con, builds.start(con, NEXT, fingerprint=plan().fingerprint), passed=True)
        load("L5", {None: january}, None)  # published by a kizuna that did not record its snapshot customers
        assert plan().snapshots_from is None
        builds.finish(con, builds.start(con, NEXT, fingerprint=plan().fingerprint), passed=True)
        assert (plan().snapshots_from, plan().snapshot_customers) == (february, 0)  # no load: the scoring one
    finally:
        con.close()


def _rewrite(path: Path, change: Callable[[list[dict[str, str]]], list[dict[str, str]]]) -> None:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
        fields = list(rows[0].keys())
    rows = change(rows)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


FEATURES = "intermediate.int_customer_features_monthly"
SNAPSHOT = date(2025, 9, 1)  # a training snapshot with its outcome (as of 2026-02-18)


@pytest.fixture(scope="module")
def edited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str], object]:
    """Day 2 of the shared days with changes only the snapshots read, built incrementally from day 1, and a full
    refresh of it: (incremental warehouse, full refresh, the customer edited per change, the build result)."""
    days = shared_days(tmp_path_factory)
    root = tmp_path_factory.mktemp("snapshot-edits")
    day2 = root / "day2"
    shutil.copytree(days.day2, day2)
    with duckdb.connect(str(days.built1), read_only=True) as con:
        ids = [
            r[0]
            for r in con.execute(
                f"SELECT customer_id FROM {FEATURES} WHERE snapshot_on = ? ORDER BY customer_id LIMIT 4", [SNAPSHOT]
            ).fetchall()
        ]
        found = con.execute(
            "SELECT customer_id, subscription_id FROM intermediate.int_subscriptions_end_dated "
            "WHERE start_date < '2025-01-01' AND customer_id > ? ORDER BY customer_id LIMIT 1",
            [ids[-1]],
        ).fetchone()
        # a customer with usage in the snapshot's feature month, after the others: its usage is edited there
        usage_found = con.execute(
            f"SELECT customer_id FROM {FEATURES} WHERE snapshot_on = ? AND usage_value IS NOT NULL "
            "AND customer_id > ? ORDER BY customer_id LIMIT 1",
            [SNAPSHOT, max(ids[-1], found[0] if found else "")],
        ).fetchone()
    assert found is not None and usage_found is not None
    product_customer, subscription = found
    edits = {
        "employee_count": ids[0],
        "activity": ids[1],
        "ticket": ids[2],
        "product": product_customer,
        "usage": usage_found[0],
    }

    def customers(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        for row in rows:
            if row["customer_id"] == edits["employee_count"]:
                row["employee_count"] = str(int(row["employee_count"] or 0) + 5000)
        return rows

    def activities(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        new = {**rows[0], "activity_id": "A99999999", "customer_id": edits["activity"], "type": "call"}
        return [*rows, {**new, "occurred_at": "2025-08-20 10:00:00", "outcome": "conversation"}]

    def tickets(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        new = {**rows[0], "ticket_id": "T9999999", "customer_id": edits["ticket"], "created_at": "2025-07-15 10:00:00"}
        return [*rows, new]

    def subscriptions(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        for row in rows:
            if row["subscription_id"] == subscription:
                row["product"] = row["product"] + " Plus"
        return rows

    def usage(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        feature_month = "2025-08-01"  # SNAPSHOT's
        for row in rows:
            if (
                row["customer_id"] == edits["usage"]
                and row["month"] == feature_month
                and row["metric"] == "active_users"
            ):
                row["value"] = str(int(float(row["value"])) + 1000)
        return rows

    for name, change in (
        ("customers", customers),
        ("activities", activities),
        ("support_tickets", tickets),
        ("subscriptions", subscriptions),
        ("usage", usage),
    ):
        _rewrite(day2 / f"{name}.csv", change)
    built, full = root / "built2.duckdb", root / "full2.duckdb"
    shutil.copy(days.built1, built)
    result = run_day(days.settings(day2, built), NEXT)
    shutil.copy(built, full)
    dbt_runner.build(days.settings(day2, full, full_refresh=True), NEXT, select=MODELS_ONLY)
    return built, full, edits, result


def test_snapshot_changes_reach_the_training_snapshots_and_equal_a_full_refresh(
    edited: tuple[Path, Path, dict[str, str], object], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A customer's employee_count, an activity and a ticket backdated months, a subscription's product renamed:
    each changes that customer's training snapshots; the incremental build lists them and equals a full refresh
    on every relation (a wrong change rule keeps their old rows), while rewriting a small share of the rows.
    A usage month edited months back is not listed (the gate records no usage month): the joined features find
    it by comparing, and rebuild that customer's rows."""
    built, full, edits, _ = edited
    days = shared_days(tmp_path_factory)
    with connect(built, read_only=True) as con:
        listed = dict(con.execute(f"SELECT * FROM {ops.REBUILD_SNAPSHOT_CUSTOMERS}").fetchall())
        con.execute(f"ATTACH '{days.built1}' AS day1 (READ_ONLY)")
        changed = {
            r[0]
            for r in con.execute(
                f"""SELECT customer_id FROM (
                        SELECT * FROM {FEATURES} WHERE snapshot_on = $s
                        EXCEPT SELECT * FROM day1.{FEATURES} WHERE snapshot_on = $s)""",
                {"s": SNAPSHOT},
            ).fetchall()
        }
        shares: dict[str, float] = {}
        for model in ("trended", "subscriptions_summarised", "engagement_summarised", "joined"):
            table = f"intermediate.int_customer_snapshots_{model}"
            (last,) = con.execute(f"SELECT max(rowid) FROM day1.{table}").fetchone() or (0,)
            share = con.execute(f"SELECT avg(CASE WHEN rowid > ? THEN 1 ELSE 0 END) FROM {table}", [last])
            shares[model] = float(share.fetchone()[0])  # type: ignore[index]
    assert listed[edits["employee_count"]] == EVERY_SNAPSHOT
    assert listed[edits["activity"]] == date(2025, 8, 1) and listed[edits["ticket"]] == date(2025, 7, 1)
    assert edits["product"] in listed
    # each edit moved its customer's features in a training snapshot with outcomes (mrr_percentile aside, the
    # other customers of the snapshot keep theirs: nothing else changed in September 2025)
    assert {edits["employee_count"], edits["activity"], edits["ticket"], edits["usage"]} <= changed
    assert edits["usage"] not in listed
    assert differences(built, full) == {}
    assert all(share < 0.5 for share in shares.values()), shares  # 2 or 3 of 13 snapshots, and the listed customers
