"""Incremental marts equal a full refresh: day 1 built, day 2 (with backdated changes) built both ways, compared."""

from __future__ import annotations

import csv
import os
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from kizuna.core import ops
from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, RAW_SCHEMA, connect, raw_table_ddl
from kizuna.transform import builds, dbt_runner, rebuild_plan
from kizuna.transform.rebuild_months import READ_TABLES
from tests.dbt.incremental_days import CUSTOMERS, NEXT, Days, differences, shared_days

Rows = dict[str, dict[str, str]]

# The subscription columns whose change moves a subscription's MRR in every month it runs; any other change (its end,
# its cancel reason, active to canceled) moves only the months from the earlier of its old and new end.
WHOLE_SPAN = ("customer_id", "start_date", "mrr", "amount", "billing_period_months", "currency", "quantity")
STATUSES_THAT_COUNT = {"trialing", "paused"}  # counted at 0
# A past_due subscription ends at its oldest open invoice after the last paid one (plus grace days): a change to
# its status or invoices moves the months from that invoice's UTC day (the export's are Tokyo time), old and new.
TOKYO = timedelta(hours=9)


def unpaid_since(invoices: Rows) -> dict[str, date]:
    last_paid: dict[str, str] = {}
    for row in invoices.values():
        if row["status"] == "paid" and row["subscription_id"]:
            last_paid[row["subscription_id"]] = max(last_paid.get(row["subscription_id"], ""), row["issued_at"])
    since: dict[str, date] = {}
    for row in invoices.values():
        key = row["subscription_id"]
        if row["status"] == "open" and key and row["issued_at"] > last_paid.get(key, ""):
            day = (datetime.fromisoformat(row["issued_at"]) - TOKYO).date()
            since[key] = min(since.get(key, day), day)
    return since


def read(path: Path, key: str) -> Rows:
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {row[key]: row for row in csv.DictReader(f)}


def month(day: str) -> date:
    return date(int(day[0:4]), int(day[5:7]), 1)


def months_changed(day1: Path, day2: Path) -> list[tuple[str | None, date]]:
    """(customer, month) for every month a change between two exports touches in the tables the incremental models
    read (billing), old values included (a subscription's old and new customer both; None for an fx rate, which
    moves every customer); worked out from the files alone, independently of the models."""
    subs1, subs2 = (
        read(day1 / "subscriptions.csv", "subscription_id"),
        read(day2 / "subscriptions.csv", "subscription_id"),
    )
    inv1, inv2 = read(day1 / "invoices.csv", "invoice_id"), read(day2 / "invoices.csv", "invoice_id")
    since1, since2 = unpaid_since(inv1), unpaid_since(inv2)
    touched: list[tuple[str | None, date]] = []
    for key in subs1.keys() | subs2.keys():
        old, new = subs1.get(key), subs2.get(key)
        if old == new:
            continue
        rows = [r for r in (old, new) if r is not None]
        months: list[date]
        if (
            old is None
            or new is None
            or any(old.get(c) != new.get(c) for c in WHOLE_SPAN)
            or {old["status"], new["status"]} & STATUSES_THAT_COUNT
        ):
            months = [month(r["start_date"]) for r in rows]
        elif "past_due" in {old["status"], new["status"]}:
            months = [month(r["end_date"]) for r in rows if r["end_date"]]
            months += [d.replace(day=1) for d in (since1.get(key), since2.get(key)) if d is not None]
        else:
            months = [month(r["end_date"]) for r in rows if r["end_date"]] or [month(NEXT.isoformat())]
        touched += [(r["customer_id"], m) for r in rows for m in months]
    for key in inv1.keys() | inv2.keys():
        old, new = inv1.get(key), inv2.get(key)
        if old == new:
            continue
        # an invoice only dates a past_due subscription's end: from its oldest unpaid invoice, old and new
        for row in (r for r in (old, new) if r is not None):
            for subs in (subs1, subs2):
                sub = subs.get(row["subscription_id"])
                if sub is not None and sub["status"] == "past_due":
                    sid = sub["subscription_id"]
                    months = [d.replace(day=1) for d in (since1.get(sid), since2.get(sid)) if d is not None]
                    months += [month(sub["end_date"])] if sub["end_date"] else []
                    touched += [(sub["customer_id"], m) for m in months]
    for old, new in ((read(day1 / "fx_rates.csv", "month"), read(day2 / "fx_rates.csv", "month")),):
        touched += [(None, month(k)) for k in old.keys() | new.keys() if old.get(k) != new.get(k)]
    return touched


def earliest_month_changed(day1: Path, day2: Path) -> date:
    """The earliest month a change between two exports touches (months_changed)."""
    return min(m for _, m in months_changed(day1, day2))


def customers_rebuilt(day1: Path, day2: Path, every_customer_from: date) -> dict[str, date]:
    """The customers whose changes reach before `every_customer_from`, each from its own earliest month."""
    found: dict[str, date] = {}
    for customer, touched in months_changed(day1, day2):
        if customer is not None and touched < every_customer_from:
            found[customer] = min(found.get(customer, touched), touched)
    return found


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Days:
    return shared_days(tmp_path_factory)


def settings(root: Path, warehouse: Path, *, full_refresh: bool = False) -> Settings:
    return Settings(warehouse=warehouse, var_dir=root / "var", full_refresh=full_refresh)


def test_the_earliest_month_changed_is_worked_out_from_the_files(tmp_path: Path) -> None:
    """Made by hand: what each kind of change dates, old values included."""
    header = ["subscription_id", "customer_id", "start_date", "end_date", "mrr", "currency", "quantity", "status"]
    day1, day2 = tmp_path / "1", tmp_path / "2"
    for path, rows in (
        (
            day1,
            [
                ["S1", "C1", "2024-03-10", "", "100", "JPY", "1", "active"],
                ["S2", "C2", "2023-01-01", "", "5", "JPY", "1", "active"],
            ],
        ),
        (
            day2,
            [
                ["S1", "C1", "2024-03-10", "2025-07-15", "100", "JPY", "1", "canceled"],
                ["S2", "C2", "2023-01-01", "", "5", "JPY", "1", "active"],
            ],
        ),
    ):
        path.mkdir()
        with (path / "subscriptions.csv").open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    assert earliest_month_changed(day1, day2) == date(2025, 7, 1)  # a cancellation: from its end
    with (day2 / "subscriptions.csv").open("a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow(["S3", "C3", "2025-02-01", "", "9", "JPY", "1", "active"])
    assert earliest_month_changed(day1, day2) == date(2025, 2, 1)  # a new subscription: from its start
    text = (day2 / "subscriptions.csv").read_text(encoding="utf-8").replace("S2,C2,", "S2,C1,")
    (day2 / "subscriptions.csv").write_text(text, encoding="utf-8")
    assert earliest_month_changed(day1, day2) == date(2023, 1, 1)  # merged into another customer: all its months


def test_the_daily_run_rebuilds_from_the_loads_month_and_equals_a_full_refresh(days: Days) -> None:
    """Day 2 through ingest, the gate and dbt build as the daily run does: the gate records the month the load
    changes, the build rebuilds from it (no month passed by the test), and every mart equals a full refresh."""
    rebuild_from = earliest_month_changed(days.day1, days.day2)
    assert date(2022, 6, 1) < rebuild_from < date(2026, 1, 1)  # backdated, and closed months before it to keep
    every_customer_from, rebuilt_customers = customers_plan(days)
    with connect(days.built2, read_only=True) as con:
        months = con.execute(
            f"SELECT DISTINCT published_at::DATE < ?, rebuild_from_month FROM {ops.LOADS} ORDER BY 1", [NEXT]
        ).fetchall()
        built = con.execute(
            f"SELECT as_of, status, rebuild_from_month, rebuilt FROM {ops.DBT_BUILDS} ORDER BY started_at"
        ).fetchall()
    # kizuna's SQL, on the load as staged, finds the month this test works out from the files alone
    assert rebuild_from in {month for _, month in months}
    assert [m for _, m in months if m != rebuild_from] == [None]  # day 1, a first load: unknown
    assert days.rebuilt == (
        f"rebuilt from {every_customer_from:%Y-%m}, {len(rebuilt_customers)} customers from their own month back to "
        f"{rebuild_from:%Y-%m} (1 load since the last good build)"
    )
    assert [row[:3] for row in built] == [(date(2026, 2, 17), "passed", None), (NEXT, "passed", rebuild_from)]
    assert built[0][3] == "all months: no successful build recorded on this warehouse"

    assert differences(days.built2, days.full2) == {}


def customers_plan(days: Days) -> tuple[date, dict[str, date]]:
    """From the files alone: the month from which day 2 rebuilds every customer (the last closed month, or an fx
    rate's) and the customers it rebuilds from their own month before it."""
    changed = months_changed(days.day1, days.day2)
    every_customer_from = min([date(2026, 1, 1), *(m for customer, m in changed if customer is None)])
    return every_customer_from, customers_rebuilt(days.day1, days.day2, every_customer_from)


def test_a_merge_rebuilds_its_customers_months_not_everyones(days: Days) -> None:
    """Day 2 holds a merge, a past_due change dated months back and a cancellation backdated into the last closed
    month: the gate records the customers whose changes reach before it with their months, and the build rewrites
    those customers' rows from their month and every customer's only from the last closed month (not every month
    from the merge's, as whole months would). test_the_gate_records_the_customers_a_load_changes: made by hand."""
    every_customer_from, rebuilt_customers = customers_plan(days)
    subs1 = read(days.day1 / "subscriptions.csv", "subscription_id")
    subs2 = read(days.day2 / "subscriptions.csv", "subscription_id")
    both = [(subs1[k], subs2[k]) for k in subs1.keys() & subs2.keys()]
    moved = [(old, new) for old, new in both if old["customer_id"] != new["customer_id"]]
    merged = {c for old, new in moved for c in (old["customer_id"], new["customer_id"])}
    # a merge reaching before the last closed month lists its two customers; one dated later is in the months every
    # customer rebuilds (at 10,000 customers the generator moves a subscription started this January)
    merged_back = {
        c
        for old, new in moved
        if month(new["start_date"]) < every_customer_from
        for c in (old["customer_id"], new["customer_id"])
    }
    cancelled = {
        new["customer_id"]: month(new["end_date"])
        for old, new in both
        if new["end_date"] and new["end_date"] != old["end_date"] and new["status"] == "canceled"
    }
    assert merged and merged_back <= rebuilt_customers.keys()  # the absorbed customer and the absorbing one
    assert merged_back or CUSTOMERS != 1_000, "the default day 2 merges customers in a month before the last closed"
    # backdated cancellations: into a closed month; one before the last closed month is rebuilt from its own month
    assert min(cancelled.values()) < NEXT.replace(day=1)
    assert {c for c, m in cancelled.items() if m < every_customer_from} <= rebuilt_customers.keys()
    assert 0 < len(rebuilt_customers) < max(20, CUSTOMERS // 100)  # per customer (under 1%), not whole months

    con = duckdb.connect(str(days.built2), read_only=True)
    try:
        recorded = con.execute(
            f"SELECT customer_id, month FROM {ops.LOAD_CUSTOMER_MONTHS} WHERE customer_id IS NOT NULL"
        ).fetchall()
        assert dict(recorded) == rebuilt_customers and len(recorded) == len(rebuilt_customers)
        con.execute(f"ATTACH '{days.built1}' AS day1 (READ_ONLY)")
        movements = "intermediate.int_mrr_movements_classified"
        # A row the build wrote has a row id after day 1's last (kept rows keep theirs): which rows were rewritten.
        (last_day1_row,) = con.execute(f"SELECT max(rowid) FROM day1.{movements}").fetchone() or (None,)
        rewritten = con.execute(
            f"SELECT customer_id, month FROM {movements} WHERE rowid > ? ORDER BY ALL", [last_day1_row]
        ).fetchall()
        expected = con.execute(
            f"""SELECT customer_id, month FROM {movements} AS m
                WHERE month >= ? OR month >= (SELECT r.month FROM {ops.REBUILD_CUSTOMERS} AS r
                                               WHERE r.customer_id = m.customer_id)
                ORDER BY ALL""",
            [every_customer_from],
        ).fetchall()
        (whole_months,) = con.execute(
            f"SELECT count(*) FROM {movements} WHERE month >= ?", [min(rebuilt_customers.values())]
        ).fetchone() or (0,)
    finally:
        con.close()
    assert rewritten == expected
    # fewer rows than whole months from the earliest listed month: 1,498 of 8,330 on the default data; 14,906 of
    # 21,934 at 10,000 customers, whose earliest listed month is the one before the last closed month
    assert len(rewritten) < whole_months
    assert len(rewritten) * 3 < whole_months or CUSTOMERS != 1_000


def test_the_uniqueness_of_the_months_kept_is_not_tested_again(days: Days, tmp_path: Path) -> None:
    """customer_mrr_monthly's uniqueness test reads only the rows the day's build may have written (the month kizuna
    passes and the customers rebuilt from their own month): a duplicate planted there fails, one planted in a month
    kept passes (it was tested when written: here it is put there by hand), and every row is read again with
    --full-refresh or without the month."""
    every_customer_from, rebuilt_customers = customers_plan(days)
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(days.built2, warehouse)
    movements = "intermediate.int_mrr_movements_classified"
    with connect(warehouse, read_only=True) as con:
        listed, listed_from = next(
            (c, m)
            for c, m in sorted(rebuilt_customers.items())
            if con.execute(
                f"SELECT count(*) FROM {movements} WHERE customer_id = ? AND month >= ? AND month < ?",
                [c, m, every_customer_from],
            ).fetchone()
            != (0,)
        )
        (unlisted,) = con.execute(
            f"""SELECT customer_id FROM {movements} WHERE NOT list_contains(?, customer_id)
                GROUP BY customer_id HAVING min(month) < ? AND max(month) >= ? ORDER BY 1 LIMIT 1""",
            [list(rebuilt_customers), min(rebuilt_customers.values()), every_customer_from],
        ).fetchone() or (None,)
    planted = {
        "kept": (unlisted, f"month < '{min(rebuilt_customers.values())}'"),
        "listed": (listed, f"month >= '{listed_from}' AND month < '{every_customer_from}'"),
        "recent": (unlisted, f"month >= '{every_customer_from}'"),
    }

    def plant(where: str) -> None:
        """Day 2's warehouse with one row of `where` twice."""
        shutil.copy(days.built2, warehouse)
        customer, months = planted[where]
        with connect(warehouse) as con:
            con.execute(
                f"""INSERT INTO {movements} SELECT * FROM {movements} WHERE customer_id = ? AND {months}
                    ORDER BY month LIMIT 1""",
                [customer],
            )
            assert con.execute(
                f"SELECT count(*) FROM (SELECT customer_id, month FROM {movements} GROUP BY ALL HAVING count(*) > 1)"
            ).fetchone() == (1,)

    def failed(*, tested_from: date | None, by_customer: bool = True, full_refresh: bool = False) -> bool:
        try:
            dbt_runner.build(
                settings(tmp_path, warehouse, full_refresh=full_refresh),
                NEXT,
                select="customer_mrr_monthly,test_name:unique_combination_of_columns",
                tested_from=tested_from,
                rebuild_all_customers_from=every_customer_from if by_customer else None,
            )
        except dbt_runner.DbtBuildError as exc:
            assert exc.result is not None
            assert [n.name.split(".")[2] for n in exc.result.failed] == [
                "unique_combination_of_columns_customer_mrr_monthly_customer_id__month__True"
            ]
            return True
        return False

    assert not failed(tested_from=every_customer_from)
    plant("kept")
    assert not failed(tested_from=every_customer_from)
    assert failed(tested_from=None)  # no month passed: every row
    assert failed(tested_from=every_customer_from, full_refresh=True)
    plant("listed")
    assert failed(tested_from=every_customer_from)
    assert not failed(tested_from=every_customer_from, by_customer=False)  # whole months: the listed are not read
    plant("recent")
    assert failed(tested_from=every_customer_from)


def test_the_month_and_full_refresh_reach_dbt(tmp_path: Path) -> None:
    """What `kizuna build [--full-refresh]` and the daily run hand dbt (dbt itself stood in: no project is built)."""
    seen: list[tuple[list[str], str | None]] = []

    def invoke(args: list[str]) -> str | None:
        seen.append((args, os.environ.get(dbt_runner.REBUILD_FROM_MONTH_ENV)))
        return None

    os.environ[dbt_runner.REBUILD_FROM_MONTH_ENV] = "2020-01"  # a stale value in the process must not leak in
    try:
        dbt_runner.build(settings(tmp_path, tmp_path / "w.duckdb"), NEXT, invoke=invoke)
        full = settings(tmp_path, tmp_path / "w.duckdb", full_refresh=True)
        dbt_runner.build(full, NEXT, invoke=invoke, rebuild_from_month=date(2025, 7, 19))
        assert os.environ[dbt_runner.REBUILD_FROM_MONTH_ENV] == "2020-01"  # restored after each command
    finally:
        del os.environ[dbt_runner.REBUILD_FROM_MONTH_ENV]
    (plain, plain_month), (refresh, refresh_month) = seen
    assert "--full-refresh" not in plain and plain_month == ""  # no month: every month is rebuilt
    assert "--full-refresh" in refresh and refresh_month == "2025-07-01"


def test_which_months_a_build_rebuilds(tmp_path: Path) -> None:
    """Made by hand: the months come from the loads since the last good build; every month when one is unknown,
    from nothing when asked or when the incremental models' SQL or vars changed."""
    project = tmp_path / "dbt_project"
    shutil.copytree(
        Settings().dbt_project_dir, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:

        def plan(*, full_refresh: bool = False) -> rebuild_plan.RebuildPlan:
            return rebuild_plan.plan(con, project, NEXT, full_refresh=full_refresh)

        def load(load_id: str, month: date | None) -> None:
            ops.upgrade_loads(con)
            con.execute(
                f"INSERT INTO {ops.LOADS} (load_id, published_at, table_name, rebuild_from_month) "
                "VALUES (?, timezone('UTC', now()), 'subscriptions', ?)",
                [load_id, month],
            )

        first = plan()
        assert (first.month, first.full_refresh, first.tested_from) == (None, False, None)
        assert first.describe() == "all months: no successful build recorded on this warehouse"
        builds.finish(con, builds.start(con, NEXT, fingerprint=first.fingerprint), passed=True)
        assert plan().describe() == "rebuilt from 2026-02 (no load since the last good build)"
        assert plan().tested_from == date(2026, 2, 1)  # the data tests declared only_rebuilt_months read from it
        load("L1", date(2025, 3, 1))
        load("L2", date(2024, 11, 1))
        assert plan().describe() == "rebuilt from 2024-11 (2 loads since the last good build)"
        assert plan().tested_from == date(2024, 11, 1)
        builds.finish(con, builds.start(con, NEXT, "customers", fingerprint="other"), passed=True)  # a --select
        assert plan().month == date(2024, 11, 1)
        assert plan().tested_from is None  # that build rebuilt every month it selected: nothing is known tested
        builds.finish(con, builds.start(con, NEXT, fingerprint=first.fingerprint), passed=False)  # failed: counts not
        load("L3", None)
        assert (
            plan().describe()
            == "all months: load L3 has no month recorded (a first load, or one an older kizuna published)"
        )
        assert plan(full_refresh=True).describe() == "all months from nothing: --full-refresh"
        builds.finish(con, builds.start(con, NEXT, fingerprint=first.fingerprint), passed=True)
        assert plan().month == date(2026, 2, 1)
        assert plan().tested_from == date(2026, 2, 1)
        # a build failed since wrote its months untested: from its own first month, or its as-of month if earlier
        failed = builds.start(
            con, date(2025, 12, 3), fingerprint=first.fingerprint, rebuild_from_month=date(2026, 1, 1)
        )
        builds.finish(con, failed, passed=False)
        assert (plan().month, plan().tested_from) == (date(2026, 2, 1), date(2025, 12, 1))
        builds.finish(con, builds.start(con, NEXT, fingerprint=first.fingerprint), passed=True)

        kpis = project / "models" / "marts" / "revenue" / "mrr_kpis_monthly.sql"
        kpis.write_text(kpis.read_text(encoding="utf-8") + "\n-- edited\n", encoding="utf-8")
        edited = plan()
        assert (edited.month, edited.full_refresh) == (None, True)
        assert "the incremental models' SQL or vars changed since the last good build" in edited.describe()
        kpis.write_text(kpis.read_text(encoding="utf-8").removesuffix("\n-- edited\n"), encoding="utf-8")
        assert plan().fingerprint == first.fingerprint
        yml = project / "dbt_project.yml"
        text = yml.read_text(encoding="utf-8")
        yml.write_text(text.replace("past_due_churn_days: 30", "past_due_churn_days: 45"), encoding="utf-8")
        assert plan().full_refresh  # a var the incremental models read
        # (usage_drop_ratio no longer: int_customer_snapshots_joined reads the usage months, which use it)
        yml.write_text(text.replace("rank_a_mrr_share: 0.7", "rank_a_mrr_share: 0.6"), encoding="utf-8")
        assert plan().fingerprint == first.fingerprint  # a var they do not read
        customers = next((project / "models").rglob("customers.sql"))
        customers.write_text(customers.read_text(encoding="utf-8") + "\n-- edited\n", encoding="utf-8")
        assert plan().fingerprint == first.fingerprint  # a model downstream of them, rebuilt whole anyway
        marts = project / "models" / "marts" / "revenue" / "_revenue__models.yml"
        text = marts.read_text(encoding="utf-8")
        marts.write_text(text.replace("First day of the month.", "The month's first day."), encoding="utf-8")
        assert plan().fingerprint == first.fingerprint  # a description
        marts.write_text(text.replace("            only_rebuilt_months: true\n", ""), encoding="utf-8")
        assert plan().full_refresh  # a test of the kept months no more (or a new one: it must read every row once)
    finally:
        con.close()


def test_the_gate_records_the_customers_a_load_changes(tmp_path: Path) -> None:
    """Made by hand: a merge and a cancellation backdated before the last closed month are recorded by customer
    with their months; a cancellation into the last closed month and an fx rate move every customer's months."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        for schema in (RAW_SCHEMA, INCOMING_SCHEMA):
            con.execute(f"CREATE SCHEMA {schema}")
            for name in READ_TABLES:
                con.execute(raw_table_ddl(TABLES_BY_NAME[name], schema))
        con.execute(f"CREATE TABLE {INCOMING_SCHEMA}._load (load_id VARCHAR, table_name VARCHAR)")
        con.execute(f"INSERT INTO {INCOMING_SCHEMA}._load VALUES ('L2', 'subscriptions')")
        columns = "(subscription_id, customer_id, start_date, end_date, mrr, currency, status)"
        day1 = [
            ("S1", "C1", "2023-05-10", None, 100, "JPY", "active"),  # merged into C9 on day 2
            ("S2", "C2", "2024-01-01", None, 50, "JPY", "active"),  # cancelled back to 2025-06
            ("S3", "C3", "2025-03-01", None, 70, "JPY", "active"),  # unchanged
            ("S4", "C4", "2025-08-01", None, 20, "JPY", "active"),  # cancelled back to January (last closed month)
        ]
        day2 = [
            ("S1", "C9", "2023-05-10", None, 100, "JPY", "active"),
            ("S2", "C2", "2024-01-01", "2025-06-20", 50, "JPY", "canceled"),
            day1[2],
            ("S4", "C4", "2025-08-01", "2026-01-20", 20, "JPY", "canceled"),
        ]
        for schema, rows in ((RAW_SCHEMA, day1), (INCOMING_SCHEMA, day2)):
            con.executemany(f"INSERT INTO {schema}.subscriptions {columns} VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute(f"INSERT INTO {schema}.fx_rates (month, currency, rate) VALUES ('2025-09-01', 'USD', 150)")

        def recorded() -> list[tuple[str | None, date]]:
            return con.execute(
                f"SELECT customer_id, month FROM {ops.LOAD_CUSTOMER_MONTHS} WHERE load_id = 'L2' ORDER BY ALL"
            ).fetchall()

        assert rebuild_plan.record_staged_month(con, NEXT) == date(2023, 5, 1)
        january, june = date(2026, 1, 1), date(2025, 6, 1)
        assert recorded() == [("C1", date(2023, 5, 1)), ("C2", june), ("C9", date(2023, 5, 1)), (None, january)]
        con.execute(f"UPDATE {INCOMING_SCHEMA}.fx_rates SET rate = 151")  # an fx rate of 2025-09: every customer
        assert rebuild_plan.record_staged_month(con, NEXT) == date(2023, 5, 1)  # the gate run again: replaced
        assert recorded() == [
            ("C1", date(2023, 5, 1)),
            ("C2", june),
            ("C9", date(2023, 5, 1)),
            (None, date(2025, 9, 1)),
        ]
    finally:
        con.close()


def test_which_customers_a_build_rebuilds(tmp_path: Path) -> None:
    """Made by hand: the customers recorded with the loads since the last good build, each from its earliest
    month; whole months when a load has none recorded or more than 5% of the customers would be rebuilt."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:

        def plan() -> rebuild_plan.RebuildPlan:
            return rebuild_plan.plan(con, Settings().dbt_project_dir, NEXT)

        def load(load_id: str, month: date, customers: dict[str | None, date] | None) -> None:
            ops.upgrade_loads(con)
            con.execute(
                f"INSERT INTO {ops.LOADS} (load_id, published_at, table_name, rebuild_from_month) "
                "VALUES (?, timezone('UTC', now()), 'subscriptions', ?)",
                [load_id, month],
            )
            ops.ensure(con, ops.LOAD_CUSTOMER_MONTHS)
            for customer, since in (customers or {}).items():
                con.execute(f"INSERT INTO {ops.LOAD_CUSTOMER_MONTHS} VALUES (?, ?, ?)", [load_id, customer, since])

        def rebuilt() -> list[tuple[str, date]]:
            return con.execute(f"SELECT * FROM {ops.REBUILD_CUSTOMERS} ORDER BY ALL").fetchall()

        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.customers AS SELECT 'C' || range AS customer_id FROM range(100)")
        builds.finish(con, builds.start(con, NEXT, fingerprint=plan().fingerprint), passed=True)
        january = date(2026, 1, 1)
        load("L1", date(2023, 5, 1), {None: january, "C1": date(2023, 5, 1), "C9": date(2023, 5, 1)})
        load("L2", date(2025, 6, 1), {None: january, "C2": date(2025, 6, 1), "C1": date(2024, 2, 1)})
        first = plan()
        assert (first.month, first.customers_from, first.customers) == (date(2023, 5, 1), january, 3)
        assert first.describe() == (
            "rebuilt from 2026-01, 3 customers from their own month back to 2023-05 (2 loads since the last good build)"
        )
        assert rebuilt() == [("C1", date(2023, 5, 1)), ("C2", date(2025, 6, 1)), ("C9", date(2023, 5, 1))]
        load("L3", date(2025, 9, 1), {None: date(2025, 9, 1), "C3": date(2025, 8, 1)})  # an fx rate of 2025-09
        assert (plan().customers_from, plan().customers) == (date(2025, 9, 1), 4)
        load("L4", date(2025, 2, 1), {None: january, **{f"C{n}": date(2025, 2, 1) for n in range(10, 12)}})
        assert (plan().month, plan().customers_from, plan().customers) == (date(2023, 5, 1), None, 0)  # 6 of 100
        assert plan().describe() == "rebuilt from 2023-05 (4 loads since the last good build)"
        assert rebuilt() == []
        builds.finish(con, builds.start(con, NEXT, fingerprint=plan().fingerprint), passed=True)
        load("L5", date(2024, 1, 1), None)  # published by a kizuna that did not record its customers
        assert (plan().month, plan().customers_from) == (date(2024, 1, 1), None)
        builds.finish(con, builds.start(con, NEXT, fingerprint=plan().fingerprint), passed=True)
        load("L6", date(2026, 1, 1), {None: january})  # nothing before the last closed month
        assert (plan().month, plan().customers_from) == (january, None)
    finally:
        con.close()
