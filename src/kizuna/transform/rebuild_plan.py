"""Which months a dbt build rebuilds: from the loads published since the last good build (docs/incremental.md)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.warehouse import (
    INCOMING_SCHEMA,
    LOAD_CHANGES_STAGING,
    OPS_SCHEMA,
    RAW_SCHEMA,
    change_list_covers,
    column_exists,
    table_exists,
)
from kizuna.transform.rebuild_months import READ_TABLES, earliest_month, month_of, touched_days
from kizuna.transform.snapshot_changes import record_snapshot_customers

# The staged load's column (then ops.loads') with the earliest month it changes; NULL when unknown.
MONTH_COLUMN = "rebuild_from_month"
# Above this share of the customers rebuilt from their own month, a build rebuilds whole months instead: the
# per-customer delete and spine stop paying, and one plan is simpler to reason about.
MAX_CUSTOMER_SHARE = 0.05
_SUBSCRIPTIONS_CHANGED = "_subscriptions_changed"

_INCREMENTAL = re.compile(r"materialized\s*=\s*['\"]incremental['\"]")
_REF = re.compile(r"ref\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)")
_VAR = re.compile(r"var\(\s*['\"]([A-Za-z0-9_]+)['\"]")


@dataclass(frozen=True)
class RebuildPlan:
    """What one build rebuilds: from `month` on (None: every month), from nothing when `full_refresh`."""

    month: date | None
    fingerprint: str
    reason: str = ""
    full_refresh: bool = False
    # Set when the models rebuilt by customer (int_mrr_movements_classified) rebuild every customer only from
    # `customers_from`, and `customers` customers (ops.rebuild_customers) from their own month, back to `month`.
    customers_from: date | None = None
    customers: int = 0
    # Set when the scoring snapshots rebuild by customer: every customer's training snapshots whose feature month
    # (outcome months included) is at or after `snapshots_from`, and the `snapshot_customers` customers
    # (ops.rebuild_snapshot_customers) from their own month; the scoring snapshot whole. None: every snapshot.
    snapshots_from: date | None = None
    snapshot_customers: int = 0
    # Set: the first month whose rows this build may write to the month-keyed incremental tables (with the
    # customers of ops.rebuild_customers from their own month); every row kept before it was written, and tested,
    # by a good build. The data tests declared only_rebuilt_months read from it (docs/incremental.md). None: all.
    tested_from: date | None = None

    def describe(self) -> str:
        """One line for the run log and the summary: "rebuilt from 2025-03" or "all months: <reason>"."""
        if self.month is not None and self.customers_from is not None:
            return (
                f"rebuilt from {self.customers_from:%Y-%m}, {self.customers:,} customer"
                f"{'s' if self.customers != 1 else ''} from their own month back to {self.month:%Y-%m}"
                + (f" ({self.reason})" if self.reason else "")
            )
        if self.month is not None:
            return f"rebuilt from {self.month:%Y-%m}" + (f" ({self.reason})" if self.reason else "")
        return f"all months{' from nothing' if self.full_refresh else ''}: {self.reason}"

    def describe_snapshots(self) -> str:
        """One line on the scoring snapshots: "every snapshot" or which ones by customer."""
        if self.snapshots_from is None:
            return "every snapshot"
        return (
            f"the scoring snapshot, every customer's reading {self.snapshots_from:%Y-%m} or later, and "
            f"{self.snapshot_customers:,} customer{'s' if self.snapshot_customers != 1 else ''}' from their own month"
        )


def record_staged_month(con: Connection, as_of: date) -> date | None:
    """Before a staged load is published: the earliest month it changes against raw, kept on raw_incoming._load
    (publish_incoming copies it into ops.loads), and the customers whose changes reach before the last closed
    month, with their months, in ops.load_customer_months. None, recorded as NULL (every month), on a first load."""
    month = None
    if all(table_exists(con, RAW_SCHEMA, table) for table in READ_TABLES):
        only = _subscriptions_changed(con)
        con.execute("DROP TABLE IF EXISTS _months_touched")
        con.execute(
            f"CREATE TEMP TABLE _months_touched AS SELECT customer_id, {month_of('day')} AS month "
            f"FROM ({touched_days(con, RAW_SCHEMA, INCOMING_SCHEMA, only)}) AS touched WHERE day IS NOT NULL"
        )
        con.execute(f"DROP TABLE IF EXISTS {_SUBSCRIPTIONS_CHANGED}")
        (found,) = con.execute("SELECT min(month) FROM _months_touched").fetchone() or (None,)
        month = earliest_month(found, as_of)
        _record_customer_months(con, as_of)
        (load_id,) = con.execute(f"SELECT min(load_id) FROM {INCOMING_SCHEMA}._load").fetchone() or (None,)
        record_snapshot_customers(con, load_id, as_of)
    con.execute(f"ALTER TABLE {INCOMING_SCHEMA}._load ADD COLUMN IF NOT EXISTS {MONTH_COLUMN} DATE")
    con.execute(f"UPDATE {INCOMING_SCHEMA}._load SET {MONTH_COLUMN} = ?", [month])
    return month


def _subscriptions_changed(con: Connection) -> str | None:
    """A temp table of every subscription whose rows or invoices' rows the staged load may change against raw,
    from the load's staged change list (kizuna.sources.changes) and the rows the gate moved out since
    (quarantined, their key unchanged); None, to compare whole tables, when that list does not cover both
    tables: an older staged load, a table not staged or published as is, or values the gate rewrote."""
    tables = ("subscriptions", "invoices")
    if not all(change_list_covers(con, table) for table in tables):
        return None
    changes = LOAD_CHANGES_STAGING.partition(".")[2]
    keys: dict[str, list[str]] = {t: [] for t in tables}  # SQL of the keys each table's rows may differ by
    for table in tables:
        if table_exists(con, INCOMING_SCHEMA, changes):
            keys[table].append(f"SELECT key FROM {LOAD_CHANGES_STAGING} WHERE table_name = '{table}'")
        if table_exists(con, INCOMING_SCHEMA, "_quarantine"):
            keys[table].append(
                f"SELECT json_extract_string(record, '$.{TABLES_BY_NAME[table].key}') AS key "
                f"FROM {INCOMING_SCHEMA}._quarantine WHERE table_name = '{table}'"
            )
    invoice_keys = " UNION ".join(keys["invoices"]) or "SELECT NULL::VARCHAR WHERE false"
    # An invoice dates its subscription (old and new): one without a key never matches, so it always counts.
    of_invoices = " UNION ".join(
        f"SELECT subscription_id FROM {schema}.invoices "
        f"WHERE invoice_id IS NULL OR invoice_id::VARCHAR IN ({invoice_keys})"
        for schema in (RAW_SCHEMA, INCOMING_SCHEMA)
    )
    con.execute(f"DROP TABLE IF EXISTS {_SUBSCRIPTIONS_CHANGED}")
    con.execute(
        f"CREATE TEMP TABLE {_SUBSCRIPTIONS_CHANGED} AS SELECT DISTINCT subscription_id FROM ("
        + " UNION ALL ".join(
            [
                *(f"SELECT key AS subscription_id FROM ({k}) AS listed" for k in keys["subscriptions"]),
                f"SELECT subscription_id::VARCHAR AS subscription_id FROM ({of_invoices}) AS invoiced",
            ]
        )
        + ") AS changed WHERE subscription_id IS NOT NULL"
    )
    return _SUBSCRIPTIONS_CHANGED


def _record_customer_months(con: Connection, as_of: date) -> None:
    """ops.load_customer_months of the staged load (from _months_touched): from which month every customer is
    rebuilt (the last closed month, or an fx rate's earlier month) and the customers whose changes reach before."""
    ops.ensure(con, ops.LOAD_CUSTOMER_MONTHS)
    (load_id,) = con.execute(f"SELECT min(load_id) FROM {INCOMING_SCHEMA}._load").fetchone() or (None,)
    last_closed = _month_before(as_of)
    con.execute(f"DELETE FROM {ops.LOAD_CUSTOMER_MONTHS} WHERE load_id = ?", [load_id])  # a gate run again
    con.execute(
        f"""INSERT INTO {ops.LOAD_CUSTOMER_MONTHS}
            SELECT $load_id, NULL, least($last_closed, (SELECT min(month) FROM _months_touched
                                                       WHERE customer_id IS NULL))""",
        {"load_id": load_id, "last_closed": last_closed},
    )
    con.execute(
        f"""INSERT INTO {ops.LOAD_CUSTOMER_MONTHS}
            SELECT $load_id, customer_id, min(month) FROM _months_touched WHERE customer_id IS NOT NULL
            GROUP BY customer_id
            HAVING min(month) < (SELECT month FROM {ops.LOAD_CUSTOMER_MONTHS}
                                 WHERE load_id = $load_id AND customer_id IS NULL)""",
        {"load_id": load_id},
    )
    con.execute("DROP TABLE _months_touched")


def _month_before(day: date) -> date:
    return date(day.year - 1, 12, 1) if day.month == 1 else date(day.year, day.month - 1, 1)


def fingerprint(project_dir: Path) -> str:
    """A hash of what the incremental models compute with: their SQL and that of every model and seed they read
    (through ref, transitively), every macro, and the values of the dbt vars these use; and of how their kept rows
    were tested (the generic tests, the data tests declared only_rebuilt_months). A build whose fingerprint
    differs from the last good build's rebuilds the incremental tables from nothing, and tests every row."""
    models = {p.stem: p for p in sorted((project_dir / "models").rglob("*.sql"))}
    seeds = {p.stem: p for p in sorted((project_dir / "seeds").glob("*.csv"))}
    todo = [name for name, path in models.items() if _INCREMENTAL.search(path.read_text(encoding="utf-8"))]
    files: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        path = models.get(name) or seeds.get(name)
        if path is None or name in files:
            continue
        files[name] = path
        if path.suffix == ".sql":
            todo += _REF.findall(path.read_text(encoding="utf-8"))
    macros = sorted((project_dir / "macros").rglob("*.sql"))
    seed_config = sorted((project_dir / "seeds").glob("*.yml"))
    generic_tests = sorted((project_dir / "tests" / "generic").glob("*.sql"))
    paths = sorted({*files.values(), *macros, *seed_config, *generic_tests})
    digest = hashlib.sha256()
    used_vars: set[str] = set()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        used_vars.update(_VAR.findall(text))
        digest.update(f"{path.relative_to(project_dir)}\0{text}\0".encode())
    project = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8")) or {}
    values = {name: (project.get("vars") or {}).get(name) for name in sorted(used_vars)}
    digest.update(json.dumps(values, sort_keys=True, default=str).encode())
    digest.update(json.dumps(_tests_of_rebuilt_months(project_dir), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _tests_of_rebuilt_months(project_dir: Path) -> list[list[object]]:
    """The data tests declared only_rebuilt_months, with their model: a new one must read every row once (the rows
    kept were never tested by it), so it counts as a change like the SQL (the other YAML, descriptions, does not)."""
    found: list[list[object]] = []
    for path in sorted((project_dir / "models").rglob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for node in doc.get("models") or []:
            declared = [*(node.get("data_tests") or []), *(node.get("tests") or [])]
            for column in node.get("columns") or []:
                declared += [*(column.get("data_tests") or []), *(column.get("tests") or [])]
            found += [[node.get("name"), test] for test in declared if "only_rebuilt_months" in json.dumps(test)]
    return found


def plan(con: Connection, project_dir: Path, as_of: date, *, full_refresh: bool = False) -> RebuildPlan:
    """The months the next build rebuilds: from the earliest month of every load published since the last good
    whole build; every month when that is not known, and from nothing when asked or when the fingerprint changed."""
    current = fingerprint(project_dir)
    if full_refresh:
        return RebuildPlan(None, current, "--full-refresh", full_refresh=True)
    last = _last_good_build(con)
    if last is None:
        return RebuildPlan(None, current, "no successful build recorded on this warehouse")
    started_at, previous, last_as_of = last
    if previous != current:
        why = (
            "the last good build recorded no fingerprint"
            if previous is None
            else f"the incremental models' SQL or vars changed since the last good build ({previous} → {current})"
        )
        return RebuildPlan(None, current, why, full_refresh=True)
    if not table_exists(con, OPS_SCHEMA, "loads") or not column_exists(con, OPS_SCHEMA, "loads", MONTH_COLUMN):
        month = as_of.replace(day=1)
        tested_from = _tested_from(con, started_at, last_as_of, month)
        return RebuildPlan(month, current, "no load since the last good build", tested_from=tested_from)
    loads = con.execute(
        f"""SELECT load_id, min({MONTH_COLUMN}), bool_or({MONTH_COLUMN} IS NULL) FROM {ops.LOADS}
            WHERE published_at >= ? GROUP BY load_id ORDER BY load_id""",
        [started_at],
    ).fetchall()
    unknown = [str(load_id) for load_id, _, is_unknown in loads if is_unknown]
    if unknown:
        return RebuildPlan(
            None, current, f"load {unknown[0]} has no month recorded (a first load, or one an older kizuna published)"
        )
    month = min([as_of.replace(day=1), *(m for _, m, _ in loads)])
    reason = f"{len(loads)} load{'s' if len(loads) != 1 else ''} since the last good build" if loads else ""
    load_ids = [str(load_id) for load_id, _, _ in loads]
    customers_from, customers = _plan_customers(con, load_ids, month, as_of)
    snapshots_from = customers_from or month
    snapshot_customers = _plan_snapshot_customers(con, load_ids, snapshots_from)
    return RebuildPlan(
        month,
        current,
        reason or "no load since the last good build",
        customers_from=customers_from,
        customers=customers,
        snapshots_from=snapshots_from if snapshot_customers is not None else None,
        snapshot_customers=snapshot_customers or 0,
        tested_from=_tested_from(con, started_at, last_as_of, customers_from or month),
    )


def _plan_customers(con: Connection, load_ids: list[str], month: date, as_of: date) -> tuple[date | None, int]:
    """(every customer from, how many customers from their own month), with those customers written to
    ops.rebuild_customers; (None, 0) for whole months from `month`: no change before the last closed month, a load
    without its customers recorded, or more than MAX_CUSTOMER_SHARE of the customers."""
    ops.ensure(con, ops.REBUILD_CUSTOMERS)
    con.execute(f"DELETE FROM {ops.REBUILD_CUSTOMERS}")
    if not load_ids or month >= _month_before(as_of) or not table_exists(con, OPS_SCHEMA, "load_customer_months"):
        return None, 0
    # Every load's NULL-customer row: the month it rebuilds every customer from (no row: not recorded).
    row = con.execute(
        f"""SELECT count(DISTINCT load_id), min(month) FROM {ops.LOAD_CUSTOMER_MONTHS}
            WHERE customer_id IS NULL AND load_id = ANY($loads)""",
        {"loads": load_ids},
    ).fetchone()
    if row is None or row[0] < len(set(load_ids)) or row[1] is None:
        return None, 0
    every_from = min(row[1], _month_before(as_of))
    con.execute(
        f"""INSERT INTO {ops.REBUILD_CUSTOMERS}
            SELECT customer_id, min(month) FROM {ops.LOAD_CUSTOMER_MONTHS}
            WHERE customer_id IS NOT NULL AND load_id = ANY($loads)
            GROUP BY customer_id HAVING min(month) < $every_from""",
        {"loads": load_ids, "every_from": every_from},
    )
    (count,) = con.execute(f"SELECT count(*) FROM {ops.REBUILD_CUSTOMERS}").fetchone() or (0,)
    total = _customer_count(con)
    if count == 0 or every_from <= month or total == 0 or count > MAX_CUSTOMER_SHARE * total:
        con.execute(f"DELETE FROM {ops.REBUILD_CUSTOMERS}")
        return None, 0
    return every_from, int(count)


def _plan_snapshot_customers(con: Connection, load_ids: list[str], every_from: date) -> int | None:
    """How many customers the scoring snapshots rebuild from their own month, written to
    ops.rebuild_snapshot_customers: those the movements rebuild by customer (ops.rebuild_customers) and those whose
    other snapshot inputs changed (ops.load_snapshot_customers), before `every_from`. None (every snapshot): a load
    without its snapshot customers recorded, or more than MAX_CUSTOMER_SHARE of the customers."""
    ops.ensure(con, ops.REBUILD_SNAPSHOT_CUSTOMERS, ops.LOAD_SNAPSHOT_CUSTOMERS, ops.REBUILD_CUSTOMERS)
    con.execute(f"DELETE FROM {ops.REBUILD_SNAPSHOT_CUSTOMERS}")
    (recorded,) = con.execute(
        f"""SELECT count(DISTINCT load_id) FROM {ops.LOAD_SNAPSHOT_CUSTOMERS}
            WHERE customer_id IS NULL AND load_id = ANY($loads)""",
        {"loads": load_ids},
    ).fetchone() or (0,)
    if recorded < len(set(load_ids)):
        return None
    con.execute(
        f"""INSERT INTO {ops.REBUILD_SNAPSHOT_CUSTOMERS}
            SELECT customer_id, min(month) FROM (
                SELECT customer_id, month FROM {ops.REBUILD_CUSTOMERS}
                UNION ALL
                SELECT customer_id, month FROM {ops.LOAD_SNAPSHOT_CUSTOMERS}
                WHERE customer_id IS NOT NULL AND load_id = ANY($loads)
            ) AS touched GROUP BY customer_id HAVING min(month) < $every_from""",
        {"loads": load_ids, "every_from": every_from},
    )
    (count,) = con.execute(f"SELECT count(*) FROM {ops.REBUILD_SNAPSHOT_CUSTOMERS}").fetchone() or (0,)
    if count > MAX_CUSTOMER_SHARE * _customer_count(con):
        con.execute(f"DELETE FROM {ops.REBUILD_SNAPSHOT_CUSTOMERS}")
        return None
    return int(count)


def _customer_count(con: Connection) -> int:
    if not table_exists(con, RAW_SCHEMA, "customers"):
        return 0
    (count,) = con.execute(f"SELECT count(*) FROM {RAW_SCHEMA}.customers").fetchone() or (0,)
    return int(count)


def _tested_from(con: Connection, started_at: object, last_as_of: date | None, first: date) -> date | None:
    """The first month whose rows this build may write to the month-keyed incremental tables, or None (every row).

    They delete from the earlier of `first` (their first month to rebuild, every customer's) and the last month they
    hold: the as-of month of the last good build, or of a build since (failed, killed or a --select: its rows
    were not all tested either, and it wrote them from its own first month). A build since that rebuilt every
    month (a full refresh, a month unknown) leaves nothing known to be tested: None."""
    rows = con.execute(
        f"SELECT as_of, rebuild_from_month FROM {ops.DBT_BUILDS} WHERE started_at > ?", [started_at]
    ).fetchall()
    if last_as_of is None or any(month is None for _, month in rows):
        return None
    months = [first, last_as_of.replace(day=1)]
    months += [m for as_of, month in rows for m in (as_of.replace(day=1), month.replace(day=1))]
    return min(months)


def _last_good_build(con: Connection) -> tuple[object, str | None, date | None] | None:
    """(started_at, fingerprint, as_of) of the latest passed build of every model (not a --select), or None."""
    if not table_exists(con, OPS_SCHEMA, "dbt_builds"):
        return None
    ops.ensure(con, ops.DBT_BUILDS)  # the fingerprint column on a table an older kizuna created
    row = con.execute(
        f"""SELECT started_at, fingerprint, as_of FROM {ops.DBT_BUILDS}
            WHERE status = 'passed' AND selector IS NULL ORDER BY started_at DESC LIMIT 1"""
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None
