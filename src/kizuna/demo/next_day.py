"""The day after a demo export: the same files with a small share of rows changed, as a CRM/billing export changes
overnight (docs/benchmarks.md, "A realistic next day")."""

from __future__ import annotations

import logging
import shutil
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from kizuna.core.connection import Connection, scratch
from kizuna.core.contract import TABLES_BY_NAME, ColumnType
from kizuna.demo.dates import day_number
from kizuna.demo.output import transcode, write_xlsx_rows
from kizuna.demo.overnight import (
    Day,
    cancel_last_month,
    change_plan_mid_month,
    late_invoices,
    merge_customer,
    new_customers,
)
from kizuna.demo.traffic import ordinary_changes

log = logging.getLogger(__name__)

DEFAULT_CHANGE_RATE = 0.005
# The files the overnight changes touch, in the order they are written; any other file is copied as it is.
CHANGED = ("customers", "contacts", "subscriptions", "invoices", "usage", "deals", "activities", "support_tickets")
# Dates no export carries after its as-of day: events already happened, so the latest of them dates the export.
_EVENT_DATES = (
    ("invoices", "issued_at"),
    ("subscriptions", "start_date"),
    ("activities", "occurred_at"),
    ("support_tickets", "created_at"),
    ("deals", "created_at"),
)


class NextDayError(ValueError):
    """The previous day's directory cannot be read as a demo export."""


def next_day_demo_data(
    prev_dir: Path,
    out_dir: Path,
    seed: int,
    *,
    as_of: date | None = None,
    change_rate: float = DEFAULT_CHANGE_RATE,
    memory_limit: str = "2GB",
) -> tuple[date, dict[str, int]]:
    """Write to `out_dir` the export of the day after `prev_dir`'s: about `change_rate` of each file's rows inserted,
    updated or deleted, with late and backdated changes among them (overnight.py lists them).

    `as_of` is the new day; by default the day after the latest event in `prev_dir` (invoice issued, subscription
    started, activity, ticket or deal created). The files keep their format: CSV in UTF-8 or CP932 (CP932 written
    with CRLF, as Japanese Excel saves it), customers.xlsx if that is what `prev_dir` holds. Unchanged rows keep
    their bytes and order; new rows come last. The same inputs and seed give byte-identical files.
    Returns the new day and the rows written per file name.
    """
    if not 0 < change_rate < 0.5:
        raise NextDayError(f"change rate {change_rate} must be above 0 and below 0.5")
    if prev_dir.resolve() == out_dir.resolve():
        raise NextDayError(f"--out {out_dir} must differ from --next-day-of {prev_dir}")
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    # an in-memory database that spills to out_dir past the limit: a 1M-customer export is ~40M rows of text
    spill = out_dir / ".next-day.tmp"
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "temp_directory": str(spill),
    }
    config["preserve_insertion_order"] = True  # the files keep their row order
    try:
        with scratch(config) as con:
            formats = _load(con, prev_dir, out_dir)
            day = as_of or _after_latest_event(con, prev_dir)
            rng = np.random.Generator(np.random.PCG64([seed, day_number(day)]))
            apply_overnight_changes(Day.start(con, rng, day, change_rate))
            written = {_write(con, name, fmt, out_dir): _count(con, name) for name, fmt in formats.items()}
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    for other in sorted(prev_dir.iterdir()):
        if other.is_file() and other.stem not in formats and not other.name.startswith("."):
            shutil.copyfile(other, out_dir / other.name)
    log.info(
        "next demo day %s: %d rows in %.1fs to %s", day, sum(written.values()), time.perf_counter() - started, out_dir
    )
    return day, written


def apply_overnight_changes(day: Day) -> None:
    """Late and backdated changes first (at least one of each), then the day's ordinary traffic up to each table's
    budget (the change rate times its rows, at least one row)."""
    merge_customer(day)
    cancel_last_month(day)
    change_plan_mid_month(day)
    late_invoices(day)
    new_customers(day)
    ordinary_changes(day)


def _count(con: Connection, name: str) -> int:
    row = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
    return int(row[0]) if row else 0


def _load(con: Connection, prev_dir: Path, out_dir: Path) -> dict[str, str]:
    """Each changed file as a table of text columns in file order (rowid); returns each table's format."""
    formats: dict[str, str] = {}
    for name in CHANGED:
        csv_path, xlsx_path = prev_dir / f"{name}.csv", prev_dir / f"{name}.xlsx"
        if csv_path.exists():
            encoding = _encoding(csv_path)
            source = csv_path
            if encoding != "utf-8":
                source = out_dir / f".{name}.utf8.tmp"
                _to_utf8(csv_path, source, encoding)
            try:
                con.execute(
                    f'CREATE TABLE "{name}" AS SELECT * FROM read_csv(?, header = true, all_varchar = true,'
                    " delim = ',', quote = '\"', escape = '\"')",
                    [str(source)],
                )
            finally:
                if source != csv_path:
                    source.unlink()
            formats[name] = encoding
        elif xlsx_path.exists() and TABLES_BY_NAME[name].excel_allowed:
            _load_xlsx(con, name, xlsx_path)
            formats[name] = "xlsx"
        else:
            raise NextDayError(f"{prev_dir}: no {name}.csv (the next day changes every demo file)")
        _check_header(con, name, csv_path if formats[name] != "xlsx" else xlsx_path)
    return formats


def _check_header(con: Connection, name: str, path: Path) -> None:
    header = [row[0] for row in con.execute(f'DESCRIBE "{name}"').fetchall()]
    expected = TABLES_BY_NAME[name].column_names
    if header != expected:
        raise NextDayError(f"{path}, row 1: header {header}, the demo writes {expected}")


def _encoding(path: Path) -> str:
    """utf-8 if the whole file decodes as UTF-8, else cp932 (what the demo writes for Japanese Excel)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            while f.read(1 << 22):
                pass
    except UnicodeDecodeError:
        return "cp932"
    return "utf-8"


def _to_utf8(source: Path, target: Path, encoding: str) -> None:
    try:
        with (
            source.open(encoding=encoding, errors="strict", newline="") as src,
            target.open("w", encoding="utf-8", newline="") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 22)
    except UnicodeDecodeError as e:
        raise NextDayError(f"{source}: neither UTF-8 nor {encoding} ({e.reason} at byte {e.start})") from e


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _load_xlsx(con: Connection, name: str, path: Path) -> None:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = [str(h) for h in next(rows)]
        columns = ", ".join(f'"{h}" VARCHAR' for h in header)
        con.execute(f'CREATE TABLE "{name}" ({columns})')
        batch: list[list[str | None]] = []
        for row in rows:
            cells = [_text(v) for v in row][: len(header)]
            batch.append(cells + [None] * (len(header) - len(cells)))  # read-only mode drops trailing blanks
            if len(batch) == 10_000:
                con.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(header))})', batch)
                batch = []
        if batch:
            con.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(header))})', batch)
    finally:
        book.close()


def _after_latest_event(con: Connection, prev_dir: Path) -> date:
    latest = " UNION ALL ".join(f'SELECT max(CAST("{column}" AS DATE)) AS d FROM "{t}"' for t, column in _EVENT_DATES)
    row = con.execute(f"SELECT max(d) FROM ({latest})").fetchone()
    if row is None or row[0] is None:
        raise NextDayError(f"{prev_dir}: no dated events to tell its as-of day; pass --as-of")
    return row[0] + timedelta(days=1)


def _write(con: Connection, name: str, fmt: str, out_dir: Path) -> str:
    columns = TABLES_BY_NAME[name].columns
    if fmt == "xlsx":
        # cells keep the types customers.xlsx had: numbers and dates, not text
        types = {ColumnType.INTEGER: "BIGINT", ColumnType.TIMESTAMP: "TIMESTAMP", ColumnType.NUMBER: "DOUBLE"}
        select = ", ".join(
            f'CAST("{c.name}" AS {types[c.type]})' if c.type in types else f'"{c.name}"' for c in columns
        )
        path = out_dir / f"{name}.xlsx"
        write_xlsx_rows(
            con.execute(f'SELECT {select} FROM "{name}" ORDER BY rowid'), name, [c.name for c in columns], path
        )
        return path.name
    path = out_dir / f"{name}.csv"
    target = path if fmt == "utf-8" else out_dir / f".{name}.utf8.tmp"
    con.execute(f"COPY (SELECT * FROM \"{name}\" ORDER BY rowid) TO '{target}' (FORMAT csv, HEADER true)")
    if target != path:
        transcode(target, path, fmt)
        target.unlink()
    return path.name
