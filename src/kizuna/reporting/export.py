"""Exporting a mart for analysts (CSV, Parquet, XLSX), read-only, with spreadsheet formulas neutralised.

A text cell that starts with = + - @ TAB or CR is a formula to Excel and LibreOffice (a customer named
``=HYPERLINK(...)`` would run); such cells get a leading apostrophe, as OWASP's CSV-injection guidance says.
Parquet keeps values as they are: it is read by code, not by spreadsheets.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import duckdb

from kizuna.warehouse import connect

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


def marts(con: duckdb.DuckDBPyConnection, schema: str = "marts") -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name", [schema]
    ).fetchall()
    return [str(r[0]) for r in rows]


def _select(con: duckdb.DuckDBPyConnection, mart: str, *, neutralised: bool) -> str:
    """SELECT of every column, text columns neutralised in SQL so DuckDB streams the file itself."""
    cols = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'marts' AND table_name = ? ORDER BY ordinal_position",
        [mart],
    ).fetchall()
    exprs = []
    for name, data_type in cols:
        ident = '"' + str(name).replace('"', '""') + '"'
        if neutralised and str(data_type).upper() == "VARCHAR":
            exprs.append(
                f"CASE WHEN regexp_matches({ident}, '^[=+\\-@\\t\\r]') THEN '''' || {ident} ELSE {ident} END AS {ident}"
            )
        else:
            exprs.append(ident)
    return f'SELECT {", ".join(exprs)} FROM marts."{mart}"'


def export_mart(warehouse: Path, mart: str, fmt: Format, out: Path | None = None) -> tuple[Path, int]:
    """Write marts.<mart> to out (default ./<mart>.<fmt>); returns the path and the number of rows."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    path = out or Path(f"{mart}.{fmt}")
    with connect(warehouse, read_only=True) as con:
        known = marts(con)
        if mart not in known:
            raise ExportError(f"no mart {mart!r} in {warehouse} (marts: {', '.join(known) or 'none yet'})")
        count_row = con.execute(f'SELECT count(*) FROM marts."{mart}"').fetchone()
        rows = int(count_row[0]) if count_row else 0
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if fmt == "parquet":
                con.execute(f"COPY ({_select(con, mart, neutralised=False)}) TO '{_sql_path(tmp)}' (FORMAT parquet)")
            elif fmt == "csv":
                _write_csv(con, mart, tmp)
            else:
                if rows > XLSX_MAX_ROWS:
                    raise ExportError(
                        f"marts.{mart} has {rows:,} rows, more than a worksheet holds: use csv or parquet"
                    )
                _write_xlsx(con, mart, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path, rows


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _write_csv(con: duckdb.DuckDBPyConnection, mart: str, path: Path) -> None:
    # UTF-8 with a byte-order mark: Japanese Excel reads a CSV without one as Shift_JIS (mojibake).
    body = path.with_name(path.name + ".body")
    try:
        con.execute(f"COPY ({_select(con, mart, neutralised=True)}) TO '{_sql_path(body)}' (HEADER, DELIMITER ',')")
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


def _batches(cur: duckdb.DuckDBPyConnection) -> Iterator[list[tuple[Any, ...]]]:
    while rows := cur.fetchmany(_BATCH):
        yield rows


def _write_xlsx(con: duckdb.DuckDBPyConnection, mart: str, path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(mart[:31])
    cur = con.execute(f'SELECT * FROM marts."{mart}"')
    ws.append([d[0] for d in cur.description])
    for batch in _batches(cur):
        for row in batch:
            ws.append([xlsx_value(v) for v in row])
    wb.save(path)
