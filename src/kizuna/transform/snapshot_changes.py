"""The customers whose scoring-snapshot inputs a load changes outside the billing months (docs/incremental.md).

The scoring snapshots (dbt_project/models/intermediate/scoring/) read, besides the MRR movements and the subscription
spine (the billing rule of kizuna.transform.rebuild_months), the customer row (employee_count, and whether the
customer exists), activities, support tickets, deals, and a subscription's product, plan and contract term. A change
to one of these, old and new values both, is recorded here per customer with the earliest month it touches: a
snapshot whose feature month is at or after that month is rebuilt for that customer.
"""

from __future__ import annotations

from datetime import date

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.warehouse import (
    INCOMING_SCHEMA,
    LOAD_CHANGES_STAGING,
    RAW_SCHEMA,
    column_exists,
    compared_with_raw,
    table_exists,
)

# Every snapshot of a customer: its customer row is read as it is today in all of them.
EVERY_SNAPSHOT = date(1900, 1, 1)

# Per table: the columns the snapshot models read (compared old against new) and the SQL of the earliest day a row
# touches. Days are UTC days: the business day (what the models count by) is never earlier.
READ_COLUMNS: dict[str, tuple[tuple[str, ...], str]] = {
    "customers": (("customer_id", "employee_count"), f"date '{EVERY_SNAPSHOT.isoformat()}'"),
    "activities": (("activity_id", "customer_id", "type", "occurred_at", "outcome"), "cast(occurred_at as date)"),
    "support_tickets": (("ticket_id", "customer_id", "created_at"), "cast(created_at as date)"),
    "deals": (
        ("deal_id", "customer_id", "type", "created_at", "closed_at"),
        "cast(least(created_at, coalesce(closed_at, created_at)) as date)",
    ),
    "subscriptions": (
        ("subscription_id", "customer_id", "start_date", "product", "plan", "contract_term_months"),
        "cast(start_date as date)",
    ),
}


def changed_days(con: Connection, before: str, after: str) -> str:
    """SQL (customer_id, day): per row a change from schema `before` to `after` adds or removes in the columns the
    snapshot models read, its customer and earliest day (a changed row counts twice: old and new). A table
    missing from `after` counts as empty (it is published empty); one missing from `before` is skipped (a first
    load rebuilds everything anyway). Where ingest staged the keys the table changes (LOAD_CHANGES_STAGING) and
    the gate did not rewrite it since, only those keys' rows are compared; else the whole table."""
    parts = []
    for table, (columns, day) in READ_COLUMNS.items():
        if not table_exists(con, before, table):
            continue
        cols = ", ".join(f'"{c}"' for c in columns)
        if not table_exists(con, after, table):
            old, new = f'(select {cols} from {before}."{table}")', f'(select {cols} from {before}."{table}" limit 0)'
        elif after == INCOMING_SCHEMA and _keys_staged(con, table):
            key = TABLES_BY_NAME[table].key
            keys = f"(select key from {LOAD_CHANGES_STAGING} where table_name = '{table}')"
            old = f'(select {cols} from {before}."{table}" where cast("{key}" as varchar) in {keys})'
            new = f'(select {cols} from {after}."{table}" where cast("{key}" as varchar) in {keys})'
        else:
            old, new = f'(select {cols} from {before}."{table}")', f'(select {cols} from {after}."{table}")'
        parts.append(
            f"select cast(customer_id as varchar) as customer_id, {day} as day from "
            f"(({old} except all {new}) union all ({new} except all {old})) as changed_rows"
        )
    return " union all ".join(parts) or "select cast(null as varchar) as customer_id, cast(null as date) as day"


def _keys_staged(con: Connection, table: str) -> bool:
    """Whether the staged change keys of `table` still describe it: ingest compared it with raw (not a full
    refresh) and the gate has not rewritten it (quarantined rows, normalised values) since."""
    if not TABLES_BY_NAME[table].key or not compared_with_raw(con, table):
        return False
    if not all(column_exists(con, INCOMING_SCHEMA, "_load", c) for c in ("rewritten", "full_refresh", "row_count")):
        return False
    row = con.execute(
        f"SELECT row_count, coalesce(rewritten, false) OR coalesce(full_refresh, false) FROM {INCOMING_SCHEMA}._load "
        "WHERE table_name = ?",
        [table],
    ).fetchone()
    if row is None or row[1]:
        return False
    (now,) = con.execute(f'SELECT count(*) FROM {INCOMING_SCHEMA}."{table}"').fetchone() or (None,)
    return bool(now == row[0])


def record_snapshot_customers(con: Connection, load_id: str | None, as_of: date) -> None:
    """ops.load_snapshot_customers of the staged load: a NULL-customer row (recorded), and each customer whose
    changes reach before the as-of month (the scoring snapshot, on the as-of day, is rebuilt whole every day)."""
    if load_id is None or not table_exists(con, RAW_SCHEMA, "customers"):
        return
    ops.ensure(con, ops.LOAD_SNAPSHOT_CUSTOMERS)
    con.execute(f"DELETE FROM {ops.LOAD_SNAPSHOT_CUSTOMERS} WHERE load_id = ?", [load_id])  # a gate run again
    con.execute(f"INSERT INTO {ops.LOAD_SNAPSHOT_CUSTOMERS} VALUES (?, NULL, ?)", [load_id, as_of.replace(day=1)])
    con.execute(
        f"""INSERT INTO {ops.LOAD_SNAPSHOT_CUSTOMERS}
            SELECT $load_id, customer_id, min(cast(date_trunc('month', day) as date))
            FROM ({changed_days(con, RAW_SCHEMA, INCOMING_SCHEMA)}) AS changed
            WHERE customer_id IS NOT NULL AND day IS NOT NULL
            GROUP BY customer_id
            HAVING min(day) < $as_of_month""",
        {"load_id": load_id, "as_of_month": as_of.replace(day=1)},
    )
