"""Naming the API record behind a gate finding, for tables a connector pulled (e.g. "stripe subscription sub_1")."""

from __future__ import annotations

from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_ROW_COLUMN
from kizuna.core.errors import Finding
from kizuna.core.warehouse import INCOMING_SCHEMA, RECORD_COLUMN, RECORDS_PREFIX, table_exists
from kizuna.quality.validate import CheckResult


def name_records(con: Connection, table: str, results: list[CheckResult]) -> None:
    """Append the source record to each finding that names a row of a connector-fed staged table.

    A person fixes an API record in HubSpot or Stripe, not a line of a file: the row is only where to look.
    """
    if not table_exists(con, INCOMING_SCHEMA, f"{RECORDS_PREFIX}{table}"):
        return  # a file: its row is what to fix
    rows = sorted({f.row for r in results for f in r.findings if f.row is not None})
    if not rows:
        return
    names = dict(
        con.execute(
            f'SELECT {SOURCE_ROW_COLUMN}, {RECORD_COLUMN} FROM {INCOMING_SCHEMA}."{RECORDS_PREFIX}{table}" '
            f"WHERE {SOURCE_ROW_COLUMN} IN (SELECT unnest(?::BIGINT[]))",
            [rows],
        ).fetchall()
    )
    for result in results:
        result.findings = [
            Finding(f.file, f.row, f.column, f"{f.message} ({names[f.row]})") if f.row in names else f
            for f in result.findings
        ]
