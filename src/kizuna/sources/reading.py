"""UTF-8 CSV text into a typed table in one pass over the file; the findings pass only for a file that has some.

A clean file is read, folded, cast and written once (`load_typed`): the typed table carries a flag per row saying
whether any value of it is empty where required or does not parse, and a count of the flags decides. Only a file
with flagged rows is read again, into an all-text table, so the findings can show the value as it was written
(`load_text`, `value_findings`); the flag and the findings test the very same expressions. A file whose earlier
records' text hashes are kept is read once as text and only its new records are typed (`load_reusing`,
kizuna.sources.text_hashes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, ColumnType, Table
from kizuna.core.errors import Finding, SourceError
from kizuna.sources.casts import TYPE_HINT, folded, quote, sql_text, typed_expr, value_mapped, with_casts
from kizuna.sources.csv_records import MAX_RECORD_BYTES, find_csv_defect
from kizuna.sources.mapping import TableMapping, normalise_header

MAX_FINDINGS_PER_FILE = 20
_FLAG = "__kizuna_refused"  # the per-row flag of load_typed, dropped before the table is used


TEXT_HASH = "__kizuna_text"  # per row: md5 of the record's fields as read (text_hashes), dropped before use
_REUSED = "__kizuna_reused"  # per row of load_reusing: typed values taken from raw, dropped before use
_READ = "__kizuna_read"  # load_reusing's temporary table: the numbered records, the text of new ones only


@dataclass(frozen=True)
class TextRead:
    """How a file's UTF-8 text is read: its name, path, header (normalised), the contract column -> header it is
    read from, the mapping, and the spreadsheet row of each record (None: 2, 3, 4, ...)."""

    file: str
    text_path: Path
    header: list[str]
    source_of: dict[str, str]
    mapping: TableMapping | None
    row_of: list[int] | None


def _reader(header: list[str]) -> str:
    # The dialect is pinned and the columns are the header's, by position: DuckDB's sniffer would otherwise
    # guess, e.g. take a data row with one field more than the header for the header and skip the real one.
    struct = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header)))
    return (
        "read_csv(?, auto_detect = false, header = true, skip = 0, delim = ',', quote = '\"', escape = '\"', "
        f"comment = '', null_padding = false, max_line_size = {MAX_RECORD_BYTES}, columns = {{{struct}}})"
    )


def text_hash(fields: int) -> str:
    """md5 (128 bits) of a record's fields as read, NULLs included: each field written as 'n' (NULL) or 'v',
    its text and a NUL, so different records never give the same text to hash (a source file holds no NUL)."""
    parts = ", ".join(f"coalesce('v' || c{i} || chr(0), 'n')" for i in range(fields))
    return f"md5_number(concat({parts}))"


def _numbered(text_path: Path, header: list[str], row_of: list[int] | None, hashed: bool) -> tuple[str, list[object]]:
    """SELECT over the file: its fields c0, c1, ... as text, each record's spreadsheet row and, when `hashed`,
    the record's text hash; and the statement's parameters."""
    row_expr = "(row_number() OVER () + 1)" if row_of is None else "(?::BIGINT[])[row_number() OVER ()]"
    params: list[object] = [str(text_path)] if row_of is None else [row_of, str(text_path)]
    digest = f", {text_hash(len(header))} AS {TEXT_HASH}" if hashed else ""
    return f"SELECT *, {row_expr}::BIGINT AS {SOURCE_ROW_COLUMN}{digest} FROM {_reader(header)}", params


def _folded(
    table: Table, header: list[str], source_of: dict[str, str], mapping: TableMapping | None, records: str, extra: str
) -> str:
    """SELECT over `records` (fields c0, c1, ..., _source_row and the `extra` columns): the contract's columns
    as folded text (through the mapping's constants, values and row filter), then _source_row and `extra`."""
    position = {name: i for i, name in enumerate(header) if name}
    keep = ""
    if mapping and mapping.keep:
        conditions = [
            f"{folded(f'c{position[normalise_header(h)]}')} IN ({', '.join(sql_text(v) for v in kept)})"
            for h, kept in mapping.keep.items()
        ]
        keep = f" WHERE {' AND '.join(conditions)}"
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
    return f"SELECT {', '.join(selects)}, {SOURCE_ROW_COLUMN}{extra} FROM ({records}){keep}"


def text_select(
    table: Table,
    text_path: Path,
    header: list[str],
    source_of: dict[str, str],
    mapping: TableMapping | None,
    row_of: list[int] | None,
    hashed: bool = False,
) -> tuple[str, list[object]]:
    """SELECT over the UTF-8 text: the contract's columns as folded text (through the mapping's constants,
    values and row filter), each row with its spreadsheet row (`row_of` the record's, as
    csv_records.spreadsheet_rows gives them; None: 2, 3, 4, ...) and, when `hashed`, its text hash; and the
    statement's parameters."""
    # One pass over the file. row_number() over the reader follows the file's order (DuckDB preserves
    # insertion order), before a mapping's row filter; tests/sources check that findings name the right rows.
    records, params = _numbered(text_path, header, row_of, hashed)
    return _folded(table, header, source_of, mapping, records, f", {TEXT_HASH}" if hashed else ""), params


def _read(
    con: duckdb.DuckDBPyConnection, file: str, text_path: Path, fields: int, sql: str, params: list[object]
) -> None:
    """Run a statement reading the file; SourceError naming the first broken record when DuckDB cannot read it."""
    try:
        con.execute(sql, params)
    except duckdb.Error as exc:
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
    con: duckdb.DuckDBPyConnection,
    table: Table,
    file: str,
    text_path: Path,
    fields: int,
    text: tuple[str, list[object]],
    target: str,
    hashed: bool = False,
) -> tuple[int, int, int | None]:
    """Read, fold and cast the file into `target` in one statement: (rows, rows with a refused value, the
    last row's spreadsheet row).

    Without refused rows the target holds the contract's columns, then the file's name and each row's
    spreadsheet row (and its text hash, `hashed`: the text_select's); with some, the caller drops it and reads
    the file again for the findings.
    """
    sql, params = text
    extra = f", {TEXT_HASH}" if hashed else ""
    _read(
        con,
        file,
        text_path,
        fields,
        f"CREATE OR REPLACE TABLE {target} AS {_typed_select(table, f'({sql})', extra)}",
        [file, *params],
    )
    return _counted(con, target)


def _typed_select(table: Table, folded_text: str, extra: str) -> str:
    """SELECT over folded text (text_select's columns): the contract's values, the file's name (the first
    parameter), the spreadsheet row, the refused flag, then the `extra` columns."""
    flag = " OR ".join(f"({condition})" for _, condition, _, _ in _problems(table)) or "false"
    typed = ", ".join(f"{typed_expr(c.name, c.type)}::{c.type.value} AS {quote(c.name)}" for c in table.columns)
    return (
        f"SELECT {typed}, ?::VARCHAR AS {SOURCE_FILE_COLUMN}, {SOURCE_ROW_COLUMN}, coalesce({flag}, false) AS "
        f"{_FLAG}{extra} FROM {with_casts(table, folded_text)}"
    )


def _counted(con: duckdb.DuckDBPyConnection, target: str) -> tuple[int, int, int | None]:
    """(rows, refused rows, the last spreadsheet row) of a typed table; the refused flag dropped when none is."""
    counted = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {_FLAG}), max({SOURCE_ROW_COLUMN}) FROM {target}"
    ).fetchone()
    rows, refused, last = (int(counted[0]), int(counted[1]), counted[2]) if counted else (0, 0, None)
    if not refused:
        con.execute(f"ALTER TABLE {target} DROP COLUMN {_FLAG}")
    return rows, refused, None if last is None else int(last)


def load_reusing(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    read: TextRead,
    published: str,
    kept: str,
    target: str,
) -> tuple[int, int, int | None] | None:
    """load_typed for a file read before, typing only the records whose text is new: (rows, rows with a refused
    value, the last row's spreadsheet row), with the text hash column; None (nothing staged) when the reused
    rows cannot be found one for one in the published table.

    `kept` (t, r) gives, per text hash of a record staged by a load the published table equals, the spreadsheet
    row `r` of one such record. A record with a kept text hash was read from the very same text with the very
    same options (kizuna.sources.text_hashes), so folding, casting and guarding it again would give the values
    the published row with `_source_row` = r holds: those are taken, with today's file name and row. The one
    pass over the file (numbering is serial) keeps only new records' text; the typing runs in parallel.
    """
    records, params = _numbered(read.text_path, read.header, read.row_of, hashed=True)
    fields = ", ".join(f"CASE WHEN k.r IS NULL THEN n.c{i} END AS c{i}" for i in range(len(read.header)))
    _read(
        con,
        read.file,
        read.text_path,
        len(read.header),
        f"CREATE OR REPLACE TEMP TABLE {_READ} AS SELECT {fields}, n.{SOURCE_ROW_COLUMN}, n.{TEXT_HASH}, "
        f"k.r AS {_REUSED} FROM ({records}) n LEFT JOIN {kept} k ON k.t = n.{TEXT_HASH}",
        params,
    )
    new = _folded(
        table,
        read.header,
        read.source_of,
        read.mapping,
        f"SELECT * FROM {_READ} WHERE {_REUSED} IS NULL",
        f", {TEXT_HASH}, false AS {_REUSED}",
    )
    values = ", ".join(f"p.{quote(c.name)}" for c in table.columns)
    try:
        con.execute(
            f"CREATE OR REPLACE TABLE {target} AS {_typed_select(table, f'({new})', f', {TEXT_HASH}, {_REUSED}')} "
            f"UNION ALL SELECT {values}, ?::VARCHAR, n.{SOURCE_ROW_COLUMN}, false, n.{TEXT_HASH}, true "
            f"FROM {_READ} n JOIN {published} p ON p.{SOURCE_ROW_COLUMN} = n.{_REUSED}",
            [read.file, read.file],
        )
        found = con.execute(
            f"SELECT (SELECT count(*) FROM {_READ} WHERE {_REUSED} IS NOT NULL), "
            f"(SELECT count(*) FROM {target} WHERE {_REUSED})"
        ).fetchone()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_READ}")
    if not found or found[0] != found[1]:
        con.execute(f"DROP TABLE IF EXISTS {target}")
        return None
    con.execute(f"ALTER TABLE {target} DROP COLUMN {_REUSED}")
    return _counted(con, target)


def load_text(
    con: duckdb.DuckDBPyConnection,
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
    con: duckdb.DuckDBPyConnection, table: Table, file: str, text_table: str, named: dict[str, str]
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
