"""Which staged rows the row-level expectations check: the rows the load changed, and those a change elsewhere
may have broken (docs/quality.md, "Gating the change").

Every row of an unchanged key passed the gate when it was published, and a row-level expectation reads only its
own row, so it would pass again. Two things can make it fail without a change of its own: a derived column that
reads other rows or tables (a customer deleted since: `has_known_customer`; a duplicate flag) and nothing else;
those rows are found in SQL and checked with the changed ones. A row quarantined by an earlier load and still
the same is kept out of the load again, without being reported again.
"""

from __future__ import annotations

import json
import re
from typing import Any

import duckdb

from kizuna.core import ops
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, TABLES_BY_NAME
from kizuna.core.warehouse import (
    INCOMING_SCHEMA,
    LOAD_CHANGES_STAGING,
    RAW_SCHEMA,
    change_key,
    column_exists,
    table_exists,
)
from kizuna.quality.suites import SuiteFile

# A derived column whose value depends on more than its own row: another table of the load, or a window.
_CONTEXTUAL = re.compile(r"\{schema\}|\bover\s*\(", re.IGNORECASE)
DUPLICATE_FLAG = "_is_duplicate_"
_PROVENANCE = json.dumps({SOURCE_FILE_COLUMN: None, SOURCE_ROW_COLUMN: None})


def is_incremental(con: duckdb.DuckDBPyConnection, table: str, full_refresh: bool) -> bool:
    """Whether this load compared `table` with a published one and was not ingested or checked with
    --full-refresh (else every row is checked, as on a first load)."""
    if full_refresh or not column_exists(con, INCOMING_SCHEMA, "_load", "full_refresh"):
        return False
    row = con.execute(f"SELECT bool_or(full_refresh) FROM {INCOMING_SCHEMA}._load").fetchone()
    return (
        not (row and row[0])
        and table_exists(con, INCOMING_SCHEMA, LOAD_CHANGES_STAGING.partition(".")[2])
        and table_exists(con, RAW_SCHEMA, table)
    )


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def contextual_columns(derived: dict[str, str]) -> set[str]:
    """The derived columns whose value depends on more than their own row (another table, a window, a duplicate)."""
    return {name for name, sql in derived.items() if _CONTEXTUAL.search(sql) or name.startswith(DUPLICATE_FLAG)}


def rows_to_check(
    con: duckdb.DuckDBPyConnection,
    suite: SuiteFile,
    expectations: list[dict[str, Any]],
    derived: dict[str, str],
    schema: str = INCOMING_SCHEMA,
) -> str | None:
    """A query of the source rows row-level expectations must check in the staged table; None for all.

    `expectations` and `derived` are the suite's as validated (uniqueness rewritten to duplicate flags). Only the
    contextual columns an expectation reads are computed over the whole table, in SQL, to find the rows they fail.
    """
    contextual = contextual_columns(derived)
    failing: list[str] = []
    for e in expectations:
        column = e["kwargs"].get("column")
        reads = {e["kwargs"].get(k) for k in ("column", "column_A", "column_B")} & contextual
        if not reads:
            continue
        if e["type"] != "expect_column_values_to_be_in_set" or column not in contextual:
            return None  # a rule over a contextual column this module cannot pre-select: check every row
        allowed = ", ".join(_literal(v) for v in e["kwargs"].get("value_set", []))
        failing.append(f'"{column}" IS NULL' + (f' OR "{column}" NOT IN ({allowed})' if allowed else ""))
    table = TABLES_BY_NAME[suite.table]
    key = change_key(con, table, schema)
    staged = f'{schema}."{suite.table}"'
    changed = (
        f"SELECT {SOURCE_ROW_COLUMN} FROM {staged} WHERE {key} IN "
        f"(SELECT key FROM {LOAD_CHANGES_STAGING} WHERE table_name = '{suite.table}' AND change <> 'deleted')"
    )
    if not failing:
        return changed
    read = sorted({e["kwargs"]["column"] for e in expectations if e["kwargs"].get("column") in contextual})
    columns = ", ".join(f'({derived[c].format(schema=schema)}) AS "{c}"' for c in read)
    condition = " OR ".join(f"({f})" for f in failing)
    return (
        f"{changed} UNION SELECT {SOURCE_ROW_COLUMN} FROM "
        f"(SELECT {SOURCE_ROW_COLUMN}, {columns} FROM {staged}) WHERE {condition}"
    )


def keep_out_quarantined(con: duckdb.DuckDBPyConnection, table: str, rechecked_rules: set[str]) -> int:
    """Take out of the staged table every changed row equal to one an earlier load quarantined; how many.

    Compared with the row as quarantined (quarantine.rows.record), its file and row number aside. They stay in
    quarantine.rows as first reported; a row that changes is checked again. Only rows that would fail again by
    themselves are kept out: none of the rules that moved them is in `rechecked_rules`, the rules that read other
    rows (kizuna.quality.validate.rules_on_context). A row quarantined on what other rows say (an invoice whose
    customer was not yet exported, a duplicate) is checked again, so it is published once the other side is fixed.
    """
    if not table_exists(con, ops.QUARANTINE_SCHEMA, ops.QUARANTINE_ROWS.table):
        return 0
    staged = f'{INCOMING_SCHEMA}."{table}"'
    key = change_key(con, TABLES_BY_NAME[table], INCOMING_SCHEMA)
    before = con.execute(f"SELECT count(*) FROM {staged}").fetchone()
    con.execute(
        f"""DELETE FROM {staged} WHERE {SOURCE_ROW_COLUMN} IN (
                SELECT {SOURCE_ROW_COLUMN} FROM {staged} t WHERE {key} IN (
                    SELECT key FROM {LOAD_CHANGES_STAGING} WHERE table_name = ? AND change = 'inserted')
                AND json_merge_patch(to_json(t), ?)::VARCHAR IN (
                    SELECT json_merge_patch(record, ?)::VARCHAR FROM {ops.QUARANTINE_ROWS} WHERE table_name = ?
                    GROUP BY record
                    HAVING bool_and(rule NOT IN (SELECT unnest(?::VARCHAR[])))))""",
        [table, _PROVENANCE, _PROVENANCE, table, sorted(rechecked_rules)],
    )
    after = con.execute(f"SELECT count(*) FROM {staged}").fetchone()
    return int(before[0] if before else 0) - int(after[0] if after else 0)
