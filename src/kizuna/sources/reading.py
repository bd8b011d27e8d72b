"""UTF-8 CSV text into a typed table in one pass over the file; the findings pass only for a file that has some.

A clean file is read, folded, cast and written once (`load_typed`): the typed table carries a flag per row saying
whether any value of it is empty where required or does not parse, and a count of the flags decides. Only a file
with flagged rows is read again, into an all-text table, so the findings can show the value as it was written
(`load_text`, `value_findings`); the flag and the findings test the very same expressions.
"""

from __future__ import annotations

from pathlib import Path

from kizuna.core.connection import Connection, WarehouseError
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, ColumnType, Table
from kizuna.core.errors import Finding, SourceError
from kizuna.sources.casts import TYPE_HINT, folded, quote, sql_text, typed_expr, value_mapped, with_casts
from kizuna.sources.csv_records import MAX_RECORD_BYTES, find_csv_defect
from kizuna.sources.mapping import TableMapping, normalise_header

MAX_FINDINGS_PER_FILE = 20
_FLAG = "__kizuna_refused"  # the per-row flag of load_typed, dropped before the table is used


def text_select(
    table: Table,
    text_path: Path,
    header: list[str],
    source_of: dict[str, str],
    mapping: TableMapping | None,
    row_of: list[int] | None,
) -> tuple[str, list[object]]:
    """SELECT over the UTF-8 text: the contract's columns as folded text (through the mapping's constants,
    values and row filter), each row with its spreadsheet row (`row_of` the record's, as
    csv_records.spreadsheet_rows gives them; None: 2, 3, 4, ...); and the statement's parameters."""
    # The dialect is pinned and the columns are the header's, by position: DuckDB's sniffer would otherwise
    # guess, e.g. take a data row with one field more than the header for the header and skip the real one.
    struct = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header)))
    reader = (
        "read_csv(?, auto_detect = false, header = true, skip = 0, delim = ',', quote = '\"', escape = '\"', "
        f"comment = '', null_padding = false, max_line_size = {MAX_RECORD_BYTES}, columns = {{{struct}}})"
    )
    position = {name: i for i, name in enumerate(header) if name}
    keep = ""
    if mapping and mapping.keep:
        conditions = [
            f"{folded(f'c{position[normalise_header(h)]}')} IN ({', '.join(sql_text(v) for v in kept)})"
            for h, kept in mapping.keep.items()
        ]
        keep = f" WHERE {' AND '.join(conditions)}"
    row_expr = "(row_number() OVER () + 1)" if row_of is None else "(?::BIGINT[])[row_number() OVER ()]"
    params: list[object] = [str(text_path)] if row_of is None else [row_of, str(text_path)]
    selects = []
    for col in table.columns:
        source = source_of.get(col.name)
        if mapping and col.name in mapping.constants:
            expr = sql_text(mapping.constants[col.name])
        elif source in position:
            expr = folded(f"c{position[source]}")
        else:
            expr = "NULL::VARCHAR"
        if mapping and col.name in mapping.values:
            expr = value_mapped(expr, mapping.values[col.name])
        selects.append(f"{expr} AS {quote(col.name)}")
    # One pass over the file. row_number() over the reader follows the file's order (DuckDB preserves
    # insertion order), before a mapping's row filter; tests/sources check that findings name the right rows.
    sql = (
        f"SELECT {', '.join(selects)}, {SOURCE_ROW_COLUMN} "
        f"FROM (SELECT *, {row_expr}::BIGINT AS {SOURCE_ROW_COLUMN} FROM {reader}){keep}"
    )
    return sql, params


def _read(con: Connection, file: str, text_path: Path, fields: int, sql: str, params: list[object]) -> None:
    """Run a statement reading the file; SourceError naming the first broken record when DuckDB cannot read it."""
    try:
        con.execute(sql, params)
    except WarehouseError as exc:
        row, problem = find_csv_defect(text_path, fields)
        if row is not None:
            raise SourceError(file, row, None, problem) from exc
        first_line = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise SourceError(file, None, None, f"is not a readable CSV file: {first_line}") from exc


def _problems(table: Table) -> list[tuple[str, str, str, str]]:
    """Per check: (column, SQL condition over with_casts() that is true on a refused value, the value shown,
    the problem as SQL text)."""
    checks: list[tuple[str, str, str, str]] = []
    for col in table.columns:
        q = quote(col.name)
        if col.required:
            checks.append((col.name, f"{q} IS NULL", "NULL", sql_text("required value is empty")))
        if col.type is not ColumnType.TEXT:
            refused = f"{q} IS NOT NULL AND {typed_expr(col.name, col.type)} IS NULL"
            checks.append((col.name, refused, q, sql_text(f"is not {TYPE_HINT[col.type]}")))
    return checks


def load_typed(
    con: Connection,
    table: Table,
    file: str,
    text_path: Path,
    fields: int,
    text: tuple[str, list[object]],
    target: str,
) -> tuple[int, int, int | None]:
    """Read, fold and cast the file into `target` in one statement: (rows, rows with a refused value, the
    last row's spreadsheet row).

    Without refused rows the target holds the contract's columns, then the file's name and each row's
    spreadsheet row; with some, the caller drops it and reads the file again for the findings.
    """
    sql, params = text
    flag = " OR ".join(f"({condition})" for _, condition, _, _ in _problems(table)) or "false"
    typed = ", ".join(f"{typed_expr(c.name, c.type)}::{c.type.value} AS {quote(c.name)}" for c in table.columns)
    _read(
        con,
        file,
        text_path,
        fields,
        f"CREATE OR REPLACE TABLE {target} AS SELECT {typed}, ?::VARCHAR AS {SOURCE_FILE_COLUMN}, "
        f"{SOURCE_ROW_COLUMN}, coalesce({flag}, false) AS {_FLAG} FROM {with_casts(table, f'({sql})')}",
        [file, *params],
    )
    counted = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {_FLAG}), max({SOURCE_ROW_COLUMN}) FROM {target}"
    ).fetchone()
    rows, refused, last = (int(counted[0]), int(counted[1]), counted[2]) if counted else (0, 0, None)
    if not refused:
        con.execute(f"ALTER TABLE {target} DROP COLUMN {_FLAG}")
    return rows, refused, None if last is None else int(last)


def load_text(
    con: Connection,
    file: str,
    text_path: Path,
    fields: int,
    text: tuple[str, list[object]],
    text_table: str,
) -> None:
    """The text as text_select() reads it, into `text_table` (for the findings of a file with refused values)."""
    sql, params = text
    _read(con, file, text_path, fields, f"CREATE OR REPLACE TABLE {text_table} AS {sql}", params)


def value_findings(
    con: Connection, table: Table, file: str, text_table: str, named: dict[str, str]
) -> tuple[list[Finding], int]:
    """Required values left empty and values that do not parse as their column's type: the first few, and
    how many there are in all."""
    source = with_casts(table, text_table)
    union = " UNION ALL ".join(
        f"SELECT {SOURCE_ROW_COLUMN}, {sql_text(column)}, {shown}, {problem} FROM {source} WHERE {condition}"
        for column, condition, shown, problem in _problems(table)
    )
    if not union:
        return [], 0
    total_row = con.execute(f"SELECT count(*) FROM ({union})").fetchone()
    total = int(total_row[0]) if total_row else 0
    findings: list[Finding] = []
    if total:
        rows = con.execute(f"SELECT * FROM ({union}) ORDER BY 1, 2 LIMIT {MAX_FINDINGS_PER_FILE}").fetchall()
        for row_no, column, value, problem in rows:
            shown = f" (found {value!r})" if value is not None else ""
            findings.append(Finding(file, int(row_no), named.get(column, column), f"{problem}{shown}"))
    return findings, total
