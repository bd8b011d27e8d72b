"""Exporting a mart for analysts (CSV, Parquet, XLSX), read-only, sorted by its grain, formulas neutralised.

A text cell that starts with = + - @ TAB or CR is a formula to Excel and LibreOffice (a customer named
``=HYPERLINK(...)`` would run); such cells get a leading apostrophe, as OWASP's CSV-injection guidance says.
Parquet keeps values as they are: it is read by code, not by spreadsheets.

Rows come in the order of the mart's grain, the columns dbt tests as its key (a unique_combination_of_columns
test, else a column's unique test, or an explicit `meta: {grain: [...]}`), so two exports of the same data are
the same file and a diff shows what changed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml

from kizuna.core.connection import Connection, is_server_url, scratch
from kizuna.core.sql_dialect import dialect_of
from kizuna.core.warehouse import connect
from kizuna.reporting.files import atomic_output

Format = Literal["csv", "parquet", "xlsx"]
FORMATS: tuple[Format, ...] = ("csv", "parquet", "xlsx")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_575  # Excel's row limit, less the header
_BATCH = 10_000
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # as openpyxl's ILLEGAL_CHARACTERS_RE


class ExportError(ValueError):
    """The mart or format asked for cannot be exported; the message says what exists."""


def neutralise(value: str) -> str:
    """The text as a spreadsheet shows it, never as a formula."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def marts(con: Connection, schema: str = "marts") -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name", [schema]
    ).fetchall()
    return [str(r[0]) for r in rows]


def exports_dir(var_dir: Path) -> Path:
    """Where `kizuna export` writes unless told otherwise: var/exports/, never the current directory."""
    return var_dir / "exports"


def _grain_of(entry: dict[str, Any]) -> list[str] | None:
    """The key a dbt YAML entry (a model or a source table) declares, or None."""
    for meta in (entry.get("meta"), (entry.get("config") or {}).get("meta")):
        if isinstance(meta, dict) and isinstance(meta.get("grain"), list):
            return [str(c) for c in meta["grain"]]
    for test in entry.get("data_tests") or entry.get("tests") or []:
        if isinstance(test, dict) and "unique_combination_of_columns" in test:
            spec = test["unique_combination_of_columns"] or {}
            columns = (spec.get("arguments") or spec).get("combination_of_columns")
            if columns:
                return [str(c) for c in columns]
    for column in entry.get("columns") or []:
        tests = column.get("data_tests") or column.get("tests") or []
        if "unique" in tests:
            return [str(column["name"])]
    return None


def mart_grain(dbt_project_dir: Path, mart: str) -> list[str] | None:
    """The columns that identify a row of marts.<mart>, as its dbt YAML declares them; None when it declares none."""
    for path in sorted((dbt_project_dir / "models").glob("**/*.yml")):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue  # dbt itself reports a broken file; an export still works, in column order
        entries = [m for m in document.get("models") or [] if isinstance(m, dict)]
        for source in document.get("sources") or []:
            if isinstance(source, dict) and source.get("schema") == "marts":
                entries += [t for t in source.get("tables") or [] if isinstance(t, dict)]
        for entry in entries:
            if entry.get("name") == mart:
                return _grain_of(entry)
    return None


# A column's information_schema.columns data_type (upper case) as DuckDB declares the type: how a server's rows
# are typed in the scratch DuckDB that writes its files.
_DUCKDB_TYPES = {
    "TEXT": "VARCHAR",
    "CHARACTER VARYING": "VARCHAR",
    "CHARACTER": "VARCHAR",
    "DOUBLE PRECISION": "DOUBLE",
    "REAL": "FLOAT",
    "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "TIME WITHOUT TIME ZONE": "TIME",
}
# The types a server's rows keep in the scratch DuckDB (and DECIMAL): any other (JSON, arrays) is written as text.
_SCRATCH_TYPES = frozenset(
    (
        "VARCHAR",
        "DOUBLE",
        "FLOAT",
        "BIGINT",
        "INTEGER",
        "SMALLINT",
        "BOOLEAN",
        "DATE",
        "TIME",
        "TIMESTAMP",
        "TIMESTAMPTZ",
    )
)
# A formula's first character, as a regular expression in SQL (FORMULA_PREFIXES)
_FORMULA = "'^[=+\\-@\\t\\r]'"


def _columns(con: Connection, mart: str) -> list[tuple[str, str]]:
    """The mart's columns in order, each with its type as DuckDB names it, on either engine."""
    rows = con.execute(
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = 'marts' AND table_name = ? ORDER BY ordinal_position",
        [mart],
    ).fetchall()
    out = []
    for name, data_type, precision, scale in rows:
        kind = str(data_type).upper()
        if kind == "NUMERIC":  # a server's; unconstrained (no precision): a double, as DuckDB's df() reads it
            kind = f"DECIMAL({precision},{scale})" if precision is not None else "DOUBLE"
        out.append((str(name), _DUCKDB_TYPES.get(kind, kind)))
    return out


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _order_by(con: Connection, mart: str, grain: Sequence[str] | None) -> str:
    """ORDER BY the grain's columns that the table has; without a grain every column, so the order is stable.
    Text in byte order, as DuckDB sorts it, whatever a server's collation."""
    present = dict(_columns(con, mart))
    keys = [c for c in grain or [] if c in present] or list(present)
    dialect = dialect_of(con)
    return " ORDER BY " + ", ".join(
        (dialect.byte_order(_quoted(c)) if present[c] == "VARCHAR" else _quoted(c)) + " NULLS LAST" for c in keys
    )


def _select(con: Connection, mart: str, *, neutralised: bool, order_by: str = "") -> str:
    """SELECT of every column, text columns neutralised in SQL so DuckDB streams the file itself."""
    dialect = dialect_of(con)
    exprs = []
    for name, kind in _columns(con, mart):
        ident = _quoted(name)
        if neutralised and kind == "VARCHAR":
            exprs.append(
                f"CASE WHEN {dialect.matches(ident, _FORMULA)} THEN '''' || {ident} ELSE {ident} END AS {ident}"
            )
        else:
            exprs.append(ident)
    return f'SELECT {", ".join(exprs)} FROM marts."{mart}"{order_by}'


@contextmanager
def _written_by_duckdb(con: Connection, mart: str, select: str) -> Iterator[tuple[Connection, str]]:
    """A DuckDB connection and a SELECT of the rows for it to COPY to a file: the warehouse itself on DuckDB; for a
    server warehouse a scratch DuckDB holding the rows, read in batches as text and cast to the mart's types, so
    both engines' files come from one writer, with the same bytes and column types."""
    if not dialect_of(con).is_postgres:
        yield con, select
        return
    import pandas as pd

    columns = [(n, k if k in _SCRATCH_TYPES or k.startswith("DECIMAL(") else "VARCHAR") for n, k in _columns(con, mart)]
    names = [name for name, _ in columns]
    as_text = ", ".join(f"CAST({_quoted(n)} AS TEXT) AS {_quoted(n)}" for n in names)
    typed = ", ".join(f"CAST({_quoted(n)} AS {kind}) AS {_quoted(n)}" for n, kind in columns)
    with scratch() as local:
        local.execute(f"CREATE TABLE server_rows ({', '.join(f'{_quoted(n)} {kind}' for n, kind in columns)})")
        cur = con.execute(f"SELECT {as_text} FROM ({select}) AS mart")
        while rows := cur.fetchmany(_BATCH):
            local.register("server_batch", pd.DataFrame(rows, columns=names, dtype=object))
            local.execute(f"INSERT INTO server_rows SELECT {typed} FROM server_batch")
            local.unregister("server_batch")
        yield local, "SELECT * FROM server_rows"  # in the order inserted (DuckDB's preserve_insertion_order)


def export_mart(
    warehouse: Path | str, mart: str, fmt: Format, out: Path, grain: Sequence[str] | None = None
) -> tuple[Path, int]:
    """Write marts.<mart> to out, rows sorted by grain (see mart_grain); returns the path and the number of rows.

    The file appears whole or not at all, with the mode of every file kizuna writes (kizuna.reporting.files)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    with connect(warehouse, read_only=True) as con:
        known = marts(con)
        if mart not in known:
            where = "the server warehouse" if is_server_url(warehouse) else str(warehouse)  # never its password
            raise ExportError(f"no mart {mart!r} in {where} (marts: {', '.join(known) or 'none yet'})")
        return out, write_export(con, mart, fmt, out, grain)


def write_export(con: Connection, mart: str, fmt: Format, out: Path, grain: Sequence[str] | None = None) -> int:
    """export_mart's file from an open warehouse, DuckDB's or a server's (whose rows a scratch DuckDB writes to
    CSV and Parquet, so the files are the same); the number of rows."""
    count_row = con.execute(f'SELECT count(*) FROM marts."{mart}"').fetchone()
    rows = int(count_row[0]) if count_row else 0
    if fmt == "xlsx" and rows > XLSX_MAX_ROWS:
        raise ExportError(f"marts.{mart} has {rows:,} rows, more than a worksheet holds: use csv or parquet")
    order_by = _order_by(con, mart, grain)
    with atomic_output(out) as tmp:
        if fmt == "xlsx":
            _write_xlsx(con, mart, _select(con, mart, neutralised=False, order_by=order_by), rows, tmp)
            return rows
        select = _select(con, mart, neutralised=fmt == "csv", order_by=order_by)
        with _written_by_duckdb(con, mart, select) as (writer, rows_select):
            if fmt == "parquet":
                writer.execute(f"COPY ({rows_select}) TO '{_sql_path(tmp)}' (FORMAT parquet)")
            else:
                _write_csv(writer, rows_select, tmp)
    return rows


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _write_csv(con: Connection, select: str, path: Path) -> None:
    # UTF-8 with a byte-order mark: Japanese Excel reads a CSV without one as Shift_JIS (mojibake).
    body = path.with_name(path.name + ".body")
    try:
        con.execute(f"COPY ({select}) TO '{_sql_path(body)}' (HEADER, DELIMITER ',')")
        with path.open("wb") as out, body.open("rb") as src:
            out.write("\ufeff".encode())
            shutil.copyfileobj(src, out)
    finally:
        body.unlink(missing_ok=True)


def xlsx_value(value: Any) -> Any:
    """A cell value openpyxl writes as data: text neutralised, numbers and dates kept, the rest as text."""
    if value is None or isinstance(value, bool | int | float | Decimal | date | datetime | time):
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.replace(tzinfo=None)  # Excel has no time zones; warehouse timestamps are UTC
        return value
    text = value if isinstance(value, str) else str(value)
    # XLSX cannot hold most C0 control characters (openpyxl refuses the cell): show each as U+FFFD instead of
    # stopping the whole export on one CRM name with a stray BEL.
    return neutralise(_XLSX_ILLEGAL.sub("\ufffd", text))


def _batches(cur: Connection) -> Iterator[list[tuple[Any, ...]]]:
    while rows := cur.fetchmany(_BATCH):
        yield rows


def _write_xlsx(con: Connection, mart: str, select: str, rows: int, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(mart[:31])
    cur = con.execute(select)  # values as stored: xlsx_value neutralises text cell by cell
    header = [d[0] for d in cur.description]
    # As a spreadsheet user sets up any table: the header stays in view and every column can be filtered.
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(max(len(header), 1))}{rows + 1}"
    ws.append(header)
    for batch in _batches(cur):
        for row in batch:
            ws.append([xlsx_value(v) for v in row])
    wb.save(path)
