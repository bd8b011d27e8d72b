"""Which staged rows the row-level expectations check: the rows the load changed, and those a change elsewhere
may have broken (docs/quality.md, "Gating the change").

Every row of an unchanged key passed the gate when it was published, and a row-level expectation reads only its
own row, so it would pass again. Two things can make it fail without a change of its own: a derived column that
reads other rows or tables (a customer deleted since: `has_known_customer`; a duplicate flag) and nothing else;
those rows are found in SQL and checked with the changed ones. A row quarantined by an earlier load and still
the same is kept out of the load again, without being reported again.
"""

from __future__ import annotations

import re
from typing import Any

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, TABLES_BY_NAME
from kizuna.core.raw_lines import materialize_staged
from kizuna.core.sql_dialect import dialect_of
from kizuna.core.warehouse import (
    INCOMING_SCHEMA,
    LOAD_CHANGES_STAGING,
    RAW_SCHEMA,
    change_key,
    change_list_covers,
    column_exists,
    compared_with_raw,
    table_exists,
)
from kizuna.quality.suites import SuiteFile

# A derived column whose value depends on more than its own row: another table of the load, or a window.
_CONTEXTUAL = re.compile(r"\{schema\}|\bover\s*\(", re.IGNORECASE)
DUPLICATE_FLAG = "_is_duplicate_"
# A derived column `x IN (SELECT y FROM {schema}.t)`: the row's value found in another staged table.
_REFERENCE = re.compile(
    r'^\s*"?(\w+)"?\s+IN\s*\(\s*SELECT\s+"?(\w+)"?\s+FROM\s+\{schema\}\."?(\w+)"?\s*\)\s*$', re.IGNORECASE
)
# A duplicate flag (kizuna.quality.validate): `... AND (<columns>) IN (SELECT <columns> FROM {schema}."t" ...)`.
_DUPLICATE_COLUMNS = re.compile(r"AND \(([^()]*)\) IN \(SELECT ")
SCOPE = "_gate_scope"
_CHANGED_ROWS = "_changed_rows_"
_PROVENANCE = [(SOURCE_FILE_COLUMN, "NULL"), (SOURCE_ROW_COLUMN, "NULL")]  # json_patch pairs: the keys removed


def is_incremental(con: Connection, table: str, full_refresh: bool) -> bool:
    """Whether this load compared `table` with a published one (`compared_with_raw`: the staged change list
    names its changed keys, none when its file was unchanged) and was not ingested or checked with
    --full-refresh; else every row is checked, as on a first load.

    Not a keyless table on PostgreSQL: the change list names its rows by their hash as DuckDB's staging computes it
    (kizuna.core.warehouse.change_key), which PostgreSQL cannot compute; every row is checked, with the same
    verdict (the rows the change list would have spared passed when they were published)."""
    if full_refresh or not column_exists(con, INCOMING_SCHEMA, "_load", "full_refresh"):
        return False
    if TABLES_BY_NAME[table].key is None and dialect_of(con).is_postgres:
        return False
    row = con.execute(f"SELECT bool_or(full_refresh) FROM {INCOMING_SCHEMA}._load").fetchone()
    return not (row and row[0]) and compared_with_raw(con, table)


def changed(con: Connection, schema: str, table: str, changes: str = "true") -> str:
    """A condition over the rows of `schema`.`table`: their key is in the staged change list, with a `change`
    satisfying `changes` (SQL, e.g. "change <> 'deleted'"). A keyless table's key is its row's hash (15M rows of
    usage at 1M customers): hashed once per gate into a temp table of the rows and their change, which every
    later check reads (forget_changed clears them); its rows may since only have left the staged table."""
    contract = TABLES_BY_NAME[table]
    if contract.key:
        return (
            f'"{contract.key}"::VARCHAR IN (SELECT key FROM {LOAD_CHANGES_STAGING} '
            f"WHERE table_name = '{table}' AND ({changes}))"
        )
    rows = f"{_CHANGED_ROWS}{schema}_{table}"
    made = con.execute(
        f"SELECT count(*) FROM ({dialect_of(con).temp_tables()}) AS t WHERE table_name = ?", [rows]
    ).fetchone()
    if not (made and made[0]):
        con.execute(
            f'CREATE TEMP TABLE {rows} AS SELECT t.{SOURCE_ROW_COLUMN}, c.change FROM {schema}."{table}" t '
            f"JOIN (SELECT key, change FROM {LOAD_CHANGES_STAGING} WHERE table_name = ?) c "
            f"ON {change_key(con, contract, schema)} = c.key",
            [table],
        )
    return f"{SOURCE_ROW_COLUMN} IN (SELECT {SOURCE_ROW_COLUMN} FROM {rows} WHERE {changes})"


def forget_changed(con: Connection) -> None:
    """Drop the rows `changed` hashed: the staged tables are about to change (published, or checked again)."""
    for (name,) in con.execute(f"SELECT table_name FROM ({dialect_of(con).temp_tables()}) AS t").fetchall():
        if str(name).startswith(_CHANGED_ROWS):
            con.execute(f'DROP TABLE "{name}"')


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def contextual_columns(derived: dict[str, str]) -> set[str]:
    """The derived columns whose value depends on more than their own row (another table, a window, a duplicate)."""
    return {name for name, sql in derived.items() if _CONTEXTUAL.search(sql) or name.startswith(DUPLICATE_FLAG)}


def _contextual_read(expectations: list[dict[str, Any]], derived: dict[str, str]) -> set[str]:
    contextual = contextual_columns(derived)
    return {e["kwargs"].get(k) for e in expectations for k in ("column", "column_A", "column_B")} & contextual


def gate_scope(
    con: Connection,
    suite: SuiteFile,
    expectations: list[dict[str, Any]],
    derived: dict[str, str],
    schema: str = INCOMING_SCHEMA,
) -> dict[str, str] | None:
    """The temp table SCOPE: the staged rows whose checks may differ from the last load's, and the derived columns
    to compute over it instead of the whole table (equal on its rows); None when that is not known (then
    rows_to_check reads the whole table).

    SCOPE holds the changed rows and the unchanged ones a contextual column may now fail: a duplicate flag only
    on a row sharing its columns with a changed row (the published table held no duplicate), so every row
    sharing a scope row's columns is in SCOPE and the flag reads SCOPE; a reference to another table (`x IN
    (SELECT y FROM {schema}.t)`, e.g. has_known_customer) only on a row whose value t's change list or quarantine
    takes away (kizuna.core.warehouse.change_list_covers), or an empty one. Any other contextual column: None.
    """
    staged = f'{schema}."{suite.table}"'
    scoped = dict(derived)
    unchanged_may_fail: list[str] = []
    for column in sorted(_contextual_read(expectations, derived)):
        sql = derived[column]
        duplicate = _DUPLICATE_COLUMNS.search(sql) if column.startswith(DUPLICATE_FLAG) else None
        reference = _REFERENCE.match(sql)
        if duplicate is not None and f'FROM {{schema}}."{suite.table}"' in sql:
            scoped[column] = sql.replace(f'{{schema}}."{suite.table}"', SCOPE)
            if duplicate[1] != f'"{TABLES_BY_NAME[suite.table].key}"':  # the key's: its rows are all changed
                unchanged_may_fail.append(f"({duplicate[1]}) IN (SELECT {duplicate[1]} FROM _gate_changed)")
        elif reference is not None and (gone := _values_gone(con, reference[3], reference[2])) is not None:
            unchanged_may_fail.append(f'"{reference[1]}" IS NULL OR "{reference[1]}"::VARCHAR IN ({gone})')
        else:
            return None
    present = changed(con, schema, suite.table, "change <> 'deleted'")
    if any("_gate_changed" in c for c in unchanged_may_fail):
        con.execute("DROP TABLE IF EXISTS _gate_changed")
        con.execute(f"CREATE TEMP TABLE _gate_changed AS SELECT * FROM {staged} WHERE {present}")
    condition = " OR ".join(f"({c})" for c in [present, *unchanged_may_fail])
    con.execute(f"DROP TABLE IF EXISTS {SCOPE}")
    con.execute(f"CREATE TEMP TABLE {SCOPE} AS SELECT * FROM {staged} WHERE {condition}")
    con.execute("DROP TABLE IF EXISTS _gate_changed")
    return scoped


def _values_gone(con: Connection, table: str, column: str) -> str | None:
    """SQL of the `column` values (as text) of the published `table` the staged load may take away: those of
    its rows changed or deleted, and of its rows the gate quarantined; None when its change list does not say."""
    contract = TABLES_BY_NAME.get(table)
    if contract is None or contract.key is None or not change_list_covers(con, table):
        return None
    if not table_exists(con, INCOMING_SCHEMA, LOAD_CHANGES_STAGING.partition(".")[2]):
        return None
    gone = (
        f'SELECT "{column}"::VARCHAR FROM {RAW_SCHEMA}."{table}" WHERE "{contract.key}"::VARCHAR IN '
        f"(SELECT key FROM {LOAD_CHANGES_STAGING} WHERE table_name = '{table}' AND change <> 'inserted')"
    )
    if table_exists(con, INCOMING_SCHEMA, "_quarantine"):
        gone += (
            f" UNION SELECT {dialect_of(con).json_text('record', column)} FROM {INCOMING_SCHEMA}._quarantine "
            f"WHERE table_name = '{table}'"
        )
    return gone


def rows_to_check(
    con: Connection,
    suite: SuiteFile,
    expectations: list[dict[str, Any]],
    derived: dict[str, str],
    schema: str = INCOMING_SCHEMA,
    source: str | None = None,
) -> str | None:
    """A query of the source rows row-level expectations must check in the staged table; None for all.

    `expectations` and `derived` are the suite's as validated (uniqueness rewritten to duplicate flags). Only the
    contextual columns an expectation reads are computed over the whole table (or `source`, gate_scope's), in
    SQL, to find the rows they fail.
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
    staged = source or f'{schema}."{suite.table}"'
    # the keyless table's row hashes come from changed()'s one pass per gate, not a second hashing here
    kept = changed(con, schema, suite.table, "change <> 'deleted'")
    present = f"SELECT {SOURCE_ROW_COLUMN} FROM {staged} WHERE {kept}"
    if not failing:
        return present
    read = sorted({e["kwargs"]["column"] for e in expectations if e["kwargs"].get("column") in contextual})
    columns = ", ".join(f'({derived[c].format(schema=schema)}) AS "{c}"' for c in read)
    condition = " OR ".join(f"({f})" for f in failing)
    return (
        f"{present} UNION SELECT {SOURCE_ROW_COLUMN} FROM "
        f"(SELECT {SOURCE_ROW_COLUMN}, {columns} FROM {staged}) AS derived WHERE {condition}"
    )


def keep_out_quarantined(con: Connection, table: str, rechecked_rules: set[str]) -> int:
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
    inserted = changed(con, INCOMING_SCHEMA, table, "change = 'inserted'")
    dialect = dialect_of(con)
    # Both sides as the same engine writes JSON text (PostgreSQL's through jsonb: one spacing and key order)
    row, record = dialect.json_patch(dialect.row_json("t"), _PROVENANCE), dialect.json_patch("record", _PROVENANCE)
    rechecked = " AND ".join(f"rule <> {_literal(rule)}" for rule in sorted(rechecked_rules)) or "true"
    kept_out = f"""SELECT {SOURCE_ROW_COLUMN} FROM {staged} t WHERE {inserted}
                AND {row} IN (
                    SELECT {record} FROM {ops.QUARANTINE_ROWS} WHERE table_name = ?
                    GROUP BY record
                    HAVING bool_and({rechecked}))"""
    found = con.execute(f"SELECT count(*) FROM ({kept_out}) AS kept_out", [table]).fetchone()
    if not found or not found[0]:
        return 0
    materialize_staged(con, INCOMING_SCHEMA, table)  # a load of changed lines is staged as a view
    before = con.execute(f"SELECT count(*) FROM {staged}").fetchone()
    con.execute(f"DELETE FROM {staged} WHERE {SOURCE_ROW_COLUMN} IN ({kept_out})", [table])
    after = con.execute(f"SELECT count(*) FROM {staged}").fetchone()
    return int(before[0] if before else 0) - int(after[0] if after else 0)
