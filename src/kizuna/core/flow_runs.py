"""The Prefect flow-run id of this process (None outside a flow) and stamping it on the rows a run wrote."""

from __future__ import annotations

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.warehouse import table_exists

FLOW_RUN_COLUMN = "flow_run_id"


def current_flow_run_id() -> str | None:
    """prefect.runtime's flow-run id when called inside a flow run; None otherwise (CLI steps, tests, no Prefect)."""
    try:
        from prefect.runtime import flow_run
    except ImportError:
        return None
    value = flow_run.id
    return str(value) if value else None


def ensure_flow_run_column(con: Connection, table: str) -> None:
    """Add the nullable flow_run_id column to schema.table (idempotent)."""
    con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {FLOW_RUN_COLUMN} VARCHAR")


def stamp(con: Connection, table: str, key_column: str, key: str, flow_run_id: str | None) -> int:
    """Set flow_run_id on the rows of table whose key_column is key and that carry no flow-run id yet.

    Rows are tied to kizuna's own ids (run_id, load_id) when written; this links them to the Prefect flow run
    that wrote them, so a row in the ledger or quarantine leads to the run's logs. Returns rows stamped.
    """
    schema, _, name = table.partition(".")
    if flow_run_id is None or not table_exists(con, schema, name):
        return 0
    ensure_flow_run_column(con, table)
    rows = con.execute(
        f"UPDATE {table} SET {FLOW_RUN_COLUMN} = ? WHERE {key_column} = ? AND {FLOW_RUN_COLUMN} IS NULL RETURNING 1",
        [flow_run_id, key],
    ).fetchall()
    return len(rows)


def record_run(con: Connection, flow_run_id: str | None, flow: str, *, run_id: str | None, load_id: str | None) -> None:
    """Remember which Prefect flow run a kizuna run id and load id belong to (one row per flow run and ids).

    Tables whose writers insert by position (quarantine.rows) cannot take a new column safely; this table
    joins them to the flow run by load_id meanwhile.
    """
    if flow_run_id is None:
        return
    ops.ensure(con, ops.FLOW_RUNS)
    con.execute(
        f"INSERT INTO {ops.FLOW_RUNS.name} VALUES (?, ?, ?, ?, timezone('UTC', now()))",
        [flow_run_id, flow, run_id, load_id],
    )
