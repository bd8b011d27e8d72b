"""Staging a CSV file by its changed lines: a day's export differs from the last in well under 1% of its lines.

Every load of a UTF-8 CSV file whose lines are its records hashes its lines (MD5, one pass: `stage_lines`); the
publish keeps them beside raw (kizuna.core.raw_lines). The next load of the same file (same name, header and
reading options) hashes its lines again and compares them with the kept ones row by row (`stage_changed_lines`):
only the lines that differ are parsed, through the same typed reader as a whole file, with their own spreadsheet
rows; a line found elsewhere in yesterday's file is copied from raw with its new row. The staged table is then a
view of raw minus the rows whose line changed plus those rows, which is what reading the whole file would stage.

A whole read is done instead (nothing is lost but time) when any of this does not hold: the kept lines fit raw,
no line is blank, every changed line is a whole record (an even number of quotes, no carriage return), each
parses to one row, and at most a quarter of the lines changed (beyond that a whole read costs less).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from kizuna.core.connection import ENGINE_VERSION, Connection, WarehouseError
from kizuna.core.contract import SOURCE_ROW_COLUMN, Table
from kizuna.core.errors import Finding, SourceError
from kizuna.core.raw_delta import count_of, table_columns
from kizuna.core.raw_lines import (
    DELTA_PREFIX,
    LINES_SCHEMA,
    OUT_PREFIX,
    STAGED_LINES_PREFIX,
    kept_lines,
    stage_line_view,
    staged_name,
)
from kizuna.core.sql_dialect import sql_literal
from kizuna.core.warehouse import RAW_SCHEMA
from kizuna.sources.csv_records import MAX_RECORD_BYTES
from kizuna.sources.mapping import TableMapping
from kizuna.sources.reading import load_text, load_typed, text_select, value_findings

log = logging.getLogger(__name__)

MAX_CHANGED_SHARE = 0.25
_DIFF_PREFIX = "_linediff__"
# Every physical line as one text value: NUL never occurs in a file ingest accepts (encoding.scan_file refuses it).
_LINES = (
    "read_csv(?, auto_detect = false, header = true, delim = chr(0), quote = '', escape = '', comment = '', "
    f"null_padding = false, max_line_size = {MAX_RECORD_BYTES}, columns = {{'line': 'VARCHAR'}})"
)
_NUMBERED = f"(SELECT (row_number() OVER () + 1)::BIGINT AS row, line FROM {_LINES})"


def lines_fingerprint(file: str, header: list[str], options: str) -> str:
    """What decides how a line of the file parses: its name (provenance), header, reading options, DuckDB."""
    return json.dumps([ENGINE_VERSION, file, header, options], ensure_ascii=False)


def stage_lines(con: Connection, schema: str, table: str, text_path: Path, fingerprint: str, rows: int) -> bool:
    """Hash every line after the header into `_lines__<table>` (row, h), marked with the fingerprint; False (and
    nothing staged) unless the file has exactly `rows` lines, none of them blank."""
    staged = staged_name(schema, STAGED_LINES_PREFIX, table)
    try:
        con.execute(
            f"CREATE OR REPLACE TABLE {staged} AS SELECT row, md5_number(line) AS h FROM {_NUMBERED}",
            [str(text_path)],
        )
    except WarehouseError as exc:  # e.g. mixed line ends: the file is still read whole, its lines not kept
        log.info("lines of %s not kept: %s", text_path.name, str(exc).splitlines()[0] if str(exc) else exc)
        con.execute(f"DROP TABLE IF EXISTS {staged}")
        return False
    counted = con.execute(f"SELECT count(*), count(h) FROM {staged}").fetchone()
    if not counted or int(counted[0]) != rows or int(counted[1]) != rows:
        con.execute(f"DROP TABLE {staged}")
        return False
    con.execute(f"COMMENT ON TABLE {staged} IS {sql_literal(fingerprint)}")
    return True


@dataclass(frozen=True)
class FileReading:
    """How a file's records are read: its table, name, UTF-8 text, header (normalised), the header each contract
    column is read from, and its mapping."""

    table: Table
    file: str
    text_path: Path
    header: list[str]
    source_of: dict[str, str]
    mapping: TableMapping | None


def stage_changed_lines(
    con: Connection, schema: str, reading: FileReading, lines: int, fingerprint: str, tmp_dir: Path
) -> tuple[int, list[Finding], int] | None:
    """Stage `schema.<table>` as raw plus the file's changed lines: (rows staged, findings, their total), or None
    (nothing staged) when the file must be read whole. `lines` is the file's line count, header included."""
    name = reading.table.name
    if kept_lines(con, RAW_SCHEMA, name, fingerprint) is None:
        return None
    if not stage_lines(con, schema, name, reading.text_path, fingerprint, lines - 1):
        return None
    done = _stage_delta(con, schema, reading, tmp_dir)
    con.execute(f"DROP TABLE IF EXISTS {staged_name(schema, _DIFF_PREFIX, name)}")
    if done is None or done[1]:
        for prefix in (STAGED_LINES_PREFIX, OUT_PREFIX, DELTA_PREFIX):
            con.execute(f"DROP TABLE IF EXISTS {staged_name(schema, prefix, name)}")
        if done is None:
            log.info("%s: read whole (its changed lines cannot be staged alone)", reading.file)
    return done


def _stage_delta(
    con: Connection, schema: str, reading: FileReading, tmp_dir: Path
) -> tuple[int, list[Finding], int] | None:
    table, file, text_path, header, mapping = (
        reading.table,
        reading.file,
        reading.text_path,
        reading.header,
        reading.mapping,
    )
    name = table.name
    today, kept = staged_name(schema, STAGED_LINES_PREFIX, name), f'{LINES_SCHEMA}."{name}"'
    diff, out = staged_name(schema, _DIFF_PREFIX, name), staged_name(schema, OUT_PREFIX, name)
    delta, raw = staged_name(schema, DELTA_PREFIX, name), f'{RAW_SCHEMA}."{name}"'
    # Rows whose line differs from the kept one at the same row: changed, added at the end, or gone.
    con.execute(
        f"CREATE OR REPLACE TABLE {diff} AS SELECT row, t.h AS today, y.h AS kept FROM {today} t "
        f"FULL JOIN {kept} y USING (row) WHERE t.h IS DISTINCT FROM y.h"
    )
    total = count_of(con, f"SELECT count(*) FROM {today}")
    changed = count_of(con, f"SELECT count(*) FROM {diff}")
    if changed > MAX_CHANGED_SHARE * max(total, 1) and changed > 1_000:
        return None
    con.execute(f"CREATE OR REPLACE TABLE {out} AS SELECT row FROM {diff} WHERE kept IS NOT NULL")
    # A line kept at another row (it moved, or is one of several equal lines) is copied from raw: same text, same
    # options, same row values; the rest are parsed.
    moved = (
        f"SELECT d.row, min(y.row) AS from_row FROM {diff} d JOIN {kept} y ON y.h = d.today "
        "WHERE d.today IS NOT NULL GROUP BY d.row"
    )
    parse = f"SELECT d.row FROM {diff} d WHERE d.today IS NOT NULL AND d.row NOT IN (SELECT row FROM ({moved}))"
    texts = con.execute(
        f"SELECT row, line FROM {_NUMBERED} WHERE row IN ({parse}) ORDER BY row", [str(text_path)]
    ).fetchall()
    if any(("\r" in line) or line.count('"') % 2 for _, line in texts):
        return None  # a record over several lines, or a line end inside one: only a whole read numbers it right
    part = tmp_dir / f"{name}.changed-lines.csv"
    part.parent.mkdir(parents=True, exist_ok=True)
    with part.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow(header)
        fh.writelines(f"{line}\n" for _, line in texts)
    rows_of = [int(row) for row, _ in texts]
    text = text_select(table, part, header, reading.source_of, mapping, rows_of)
    try:
        parsed, refused, _ = load_typed(con, table, file, part, len(header), text, delta)
    except SourceError:
        return None  # a line that is not a record of the header's fields: a whole read names its row in the file
    if refused:
        con.execute(f"DROP TABLE {delta}")
        text_table = staged_name(schema, "_text_", name)
        load_text(con, file, part, len(header), text, text_table)
        named = {c: (mapping.header_of(c) if mapping else c) for c in table.column_names}
        findings, found = value_findings(con, table, file, text_table, named)
        con.execute(f"DROP TABLE {text_table}")
        return 0, findings, found
    if parsed != len(texts):
        return None
    if table_columns(con, schema, f"{DELTA_PREFIX}{name}") != table_columns(con, RAW_SCHEMA, name):
        return None
    con.execute(
        f"INSERT INTO {delta} SELECT r.* REPLACE (m.row AS {SOURCE_ROW_COLUMN}) FROM {raw} r "
        f"JOIN ({moved}) m ON r.{SOURCE_ROW_COLUMN} = m.from_row"
    )
    stage_line_view(con, RAW_SCHEMA, schema, name)
    staged = count_of(con, f"SELECT count(*) FROM {raw}") - count_of(con, f"SELECT count(*) FROM {out}")
    staged += count_of(con, f"SELECT count(*) FROM {delta}")
    log.info("%s: %d of %d lines changed, %d parsed", file, changed, total, len(texts))
    return staged, [], 0
