"""Writing generated tables as the source contract's files: CSV through DuckDB, CP932 and XLSX variants."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from kizuna.core.connection import Connection, scratch
from kizuna.core.contract import TABLES, TABLES_BY_NAME


@dataclass(frozen=True)
class OutTable:
    """A generated table: raw numpy columns plus one SQL expression per contract column, in contract order."""

    name: str
    frame: pd.DataFrame
    select: dict[str, str]

    def __post_init__(self) -> None:
        expected = TABLES_BY_NAME[self.name].column_names
        if list(self.select) != expected:
            raise ValueError(f"demo table {self.name} has columns {list(self.select)}, the contract {expected}")


def labels(codes: npt.NDArray[np.integer], names: Sequence[str]) -> pd.Categorical:
    """Strings by code (-1 for none): DuckDB reads a categorical as an ENUM, far cheaper than Python strings."""
    if len(set(names)) < len(names):
        # composed names may repeat (two word pairs spelling the same name); categories must not
        unique, code_of = np.unique(np.asarray(names, dtype=object), return_inverse=True)
        codes, names = np.where(codes >= 0, code_of[np.maximum(codes, 0)], -1), list(unique)
    return pd.Categorical.from_codes(codes.astype(np.int32), categories=list(names))


def columns_frame(columns: dict[str, npt.ArrayLike | pd.Categorical]) -> pd.DataFrame:
    """A frame over the arrays as they are: pandas would otherwise copy same-typed columns into one block."""
    return pd.DataFrame(columns, copy=False)


# SQL over the frame's columns; -1 (dates.NONE) in an int column becomes NULL, an empty field.
def sql_id(prefix: str, column: str, width: int) -> str:
    # printf widens rather than truncates, so ids stay unique past 10**width rows
    return f"printf('{prefix}%0{width}d', \"{column}\")"


def _null_below_zero(column: str, expr: str, nullable: bool) -> str:
    # the CASE costs a fifth of the write time of big tables, so only columns that need it get it
    return f'CASE WHEN "{column}" >= 0 THEN {expr} END' if nullable else expr


def sql_date(column: str, *, nullable: bool = False) -> str:
    return _null_below_zero(column, f"DATE '1970-01-01' + CAST(\"{column}\" AS INTEGER)", nullable)


def sql_timestamp(column: str, *, nullable: bool = False) -> str:
    return _null_below_zero(column, f'make_timestamp("{column}" * 1000000)', nullable)


def sql_number(column: str) -> str:
    return f'CASE WHEN "{column}" >= 0 THEN "{column}" END'


def sql_bool(column: str) -> str:
    return f'CASE "{column}" WHEN 1 THEN true WHEN 0 THEN false END'


def _query(table: OutTable) -> str:
    # a bare name is a frame column, quoted because some (end, primary) are SQL keywords
    exprs = (f'"{expr}"' if expr.isidentifier() else expr for expr in table.select.values())
    columns = ", ".join(f'{expr} AS "{name}"' for expr, name in zip(exprs, table.select, strict=True))
    return f"SELECT {columns} FROM frame"


def write_tables(
    tables: Iterable[OutTable], out_dir: Path, *, encoding: str = "utf-8", excel: Sequence[str] = ()
) -> dict[str, int]:
    """Write each table as <name>.csv (or <name>.xlsx for names in `excel`); returns rows per file name.

    Files are written on a second thread while the iterable draws the next table: numpy and
    DuckDB both release the GIL, so drawing and writing overlap on a two-core machine.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with scratch() as con, ThreadPoolExecutor(max_workers=1) as writer:
        pending = [writer.submit(_write, con, table, out_dir, encoding, excel) for table in tables]
        written = dict(f.result() for f in pending)
    order = [t.name for t in TABLES]
    return dict(sorted(written.items(), key=lambda item: order.index(item[0].rsplit(".", 1)[0])))


def _write(con: Connection, table: OutTable, out_dir: Path, encoding: str, excel: Sequence[str]) -> tuple[str, int]:
    con.register("frame", table.frame)
    try:
        if table.name in excel:
            path = out_dir / f"{table.name}.xlsx"
            _write_xlsx(con, table, path)
        else:
            path = out_dir / f"{table.name}.csv"
            _write_csv(con, table, path, encoding)
    finally:
        con.unregister("frame")
    return path.name, len(table.frame)


def _write_csv(con: Connection, table: OutTable, path: Path, encoding: str) -> None:
    is_utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    target = path if is_utf8 else path.with_suffix(".utf8.tmp")
    # DuckDB keeps row order (preserve_insertion_order), so the bytes depend on the data alone
    con.execute(f"COPY ({_query(table)}) TO '{target}' (FORMAT csv, HEADER true)")
    if not is_utf8:
        transcode(target, path, encoding)
        target.unlink()


def transcode(source: Path, target: Path, encoding: str) -> None:
    # Japanese Excel saves CSV as CP932 with CRLF line ends; strict errors so no character is lost unnoticed
    with (
        source.open(encoding="utf-8", newline="") as src,
        target.open("w", encoding=encoding, errors="strict", newline="\r\n") as dst,
    ):
        shutil.copyfileobj(src, dst, 1 << 22)


def _write_xlsx(con: Connection, table: OutTable, path: Path) -> None:
    write_xlsx_rows(con.execute(_query(table)), table.name, list(table.select), path)


def write_xlsx_rows(result: Connection, sheet_name: str, header: list[str], path: Path) -> None:
    """A query's rows as one sheet under `header`, streamed (openpyxl's write-only mode)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name)
    sheet.append(header)
    while rows := result.fetchmany(10_000):
        for row in rows:
            sheet.append(row)
    book.save(path)
