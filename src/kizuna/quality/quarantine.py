"""Quarantine: rows failing a warning-level check leave the load, with file, row, column, rule and value."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_ROW_COLUMN
from kizuna.core.raw_lines import materialize_staged
from kizuna.core.sql_dialect import dialect_of
from kizuna.core.warehouse import INCOMING_SCHEMA
from kizuna.quality.validate import CheckResult

QUARANTINE_SCHEMA = ops.QUARANTINE_SCHEMA
QUARANTINE_TABLE = ops.QUARANTINE_ROWS.name
# Held in the incoming schema until the load is published, so a load that fails leaves no quarantine rows.
QUARANTINE_STAGING = f"{INCOMING_SCHEMA}._quarantine"
QUARANTINE_COLUMNS = ops.QUARANTINE_ROWS.columns
_STAGING = dataclasses.replace(ops.QUARANTINE_ROWS, name=QUARANTINE_STAGING)


def quarantine_rows(con: Connection, load_id: str, table: str, file: str, failures: Sequence[CheckResult]) -> int:
    """Move every row named by `failures` out of the staged table; return how many rows left it."""
    findings = [
        (load_id, table, file, row, f.column, f.rule, value, f.severity) for f in failures for row, value in f.rows
    ]
    if not findings:
        return 0
    ops.ensure(con, _STAGING)
    con.execute("DROP TABLE IF EXISTS _findings")
    con.execute(
        "CREATE TEMP TABLE _findings (load_id VARCHAR, table_name VARCHAR, source_file VARCHAR, "
        "source_row BIGINT, column_name VARCHAR, rule VARCHAR, value VARCHAR, severity VARCHAR)"
    )
    con.executemany("INSERT INTO _findings VALUES (?, ?, ?, ?, ?, ?, ?, ?)", findings)
    staged = f'{INCOMING_SCHEMA}."{table}"'
    con.execute(
        f"""INSERT INTO {QUARANTINE_STAGING}
            SELECT f.load_id, timezone('UTC', now()), f.table_name, f.source_file, f.source_row, f.column_name,
                   f.rule, f.value, f.severity, {dialect_of(con).row_json("t")}
            FROM _findings f JOIN {staged} t ON t.{SOURCE_ROW_COLUMN} = f.source_row"""
    )
    materialize_staged(con, INCOMING_SCHEMA, table)  # a load of changed lines is staged as a view
    before = con.execute(f"SELECT count(*) FROM {staged}").fetchone()
    con.execute(f"DELETE FROM {staged} WHERE {SOURCE_ROW_COLUMN} IN (SELECT source_row FROM _findings)")
    after = con.execute(f"SELECT count(*) FROM {staged}").fetchone()
    con.execute("DROP TABLE _findings")
    return int(before[0] if before else 0) - int(after[0] if after else 0)
