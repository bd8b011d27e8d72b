"""Each published row's line in its source file, kept so that the next load of the file parses only changed lines.

`raw_lines."<table>"` (row, h) holds, for every row of raw.<table>, its spreadsheet row (`_source_row`) and the MD5
of its line in the CSV file it was published from. It is kept only for a UTF-8 CSV file every line of which is one
record (no blank line, no record over several lines, no row filter) and whose values the gate did not rewrite;
its comment fingerprints what decides how a line parses (the file's name, its header, the reading options, the
DuckDB version).

A load whose file matches the fingerprint (kizuna.sources.line_delta) hashes today's lines (`_lines__<table>`) and
stages the table as a view instead of a parsed copy: raw's rows whose line is the same at the same row, minus the
rows whose line changed, moved or went (`_out__<table>`), plus the staged delta (`_delta__<table>`: the new lines
parsed, the lines that moved copied from raw with their new row). The view holds exactly the rows a whole read
would give, provenance included; publishing it deletes the out rows and inserts the delta. Anything that writes
to a staged table (the gate's quarantine and normalisation) turns the view into a table first
(`materialize_staged`).
"""

from __future__ import annotations

import logging

from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_ROW_COLUMN
from kizuna.core.raw_delta import count_of, table_comment
from kizuna.core.sql_dialect import sql_literal

LINES_SCHEMA = "raw_lines"
STAGED_LINES_PREFIX = "_lines__"  # today's lines of a table's file: (row, h)
OUT_PREFIX = "_out__"  # raw rows (by _source_row) the staged view leaves out: their line changed, moved or went
DELTA_PREFIX = "_delta__"  # the staged rows that replace them, with today's _source_row

log = logging.getLogger(__name__)


def staged_name(incoming_schema: str, prefix: str, table: str) -> str:
    return f'{incoming_schema}."{prefix}{table}"'


def is_view(con: Connection, schema: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ? "
        "AND table_type = 'VIEW'",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def kept_lines(con: Connection, raw_schema: str, table: str, fingerprint: str) -> str | None:
    """raw_lines.<table> when its fingerprint is `fingerprint` and it has one line per row of raw.<table>."""
    if table_comment(con, LINES_SCHEMA, table) != fingerprint:
        return None
    kept = f'{LINES_SCHEMA}."{table}"'
    if count_of(con, f"SELECT count(*) FROM {kept}") != count_of(con, f'SELECT count(*) FROM {raw_schema}."{table}"'):
        return None
    return kept


def stage_line_view(con: Connection, raw_schema: str, incoming_schema: str, table: str) -> None:
    """The staged table as raw minus the out rows plus the delta (both staged before)."""
    out, delta = staged_name(incoming_schema, OUT_PREFIX, table), staged_name(incoming_schema, DELTA_PREFIX, table)
    con.execute(
        f'CREATE VIEW {incoming_schema}."{table}" AS SELECT * FROM {raw_schema}."{table}" '
        f"WHERE {SOURCE_ROW_COLUMN} NOT IN (SELECT row FROM {out}) UNION ALL SELECT * FROM {delta}"
    )


def materialize_staged(con: Connection, incoming_schema: str, table: str) -> None:
    """Turn a staged view (a load of changed lines) into a table with the same rows, before anything writes to it;
    a staged table is left as it is."""
    if not is_view(con, incoming_schema, table):
        return
    building = f'{incoming_schema}."_materialized__{table}"'
    con.execute(f'CREATE OR REPLACE TABLE {building} AS SELECT * FROM {incoming_schema}."{table}"')
    con.execute(f'DROP VIEW {incoming_schema}."{table}"')
    con.execute(f'ALTER TABLE {building} RENAME TO "{table}"')
    for prefix in (OUT_PREFIX, DELTA_PREFIX):
        con.execute(f"DROP TABLE IF EXISTS {staged_name(incoming_schema, prefix, table)}")


def publish_line_delta(con: Connection, raw_schema: str, incoming_schema: str, table: str) -> bool:
    """Publish a staged view by deleting raw's out rows and inserting the delta (raw then holds the view's rows,
    provenance included); False when the table is not staged as a view. Runs in the caller's transaction."""
    if not is_view(con, incoming_schema, table):
        return False
    out, delta = staged_name(incoming_schema, OUT_PREFIX, table), staged_name(incoming_schema, DELTA_PREFIX, table)
    raw = f'{raw_schema}."{table}"'
    expected = count_of(con, f"SELECT count(*) FROM {out}")
    deleted = count_of(con, f"DELETE FROM {raw} WHERE {SOURCE_ROW_COLUMN} IN (SELECT row FROM {out})")
    if deleted != expected:
        raise RuntimeError(f"publishing {table}: deleted {deleted:,} rows where the staged lines said {expected:,}")
    inserted = count_of(con, f"INSERT INTO {raw} SELECT * FROM {delta}")
    log.info("published %s from its changed lines: %d rows replaced by %d", table, deleted, inserted)
    return True


def keep_lines(con: Connection, raw_schema: str, incoming_schema: str, table: str, keep: bool) -> None:
    """In the publishing transaction, after raw.<table> is published: keep its rows' lines, from today's staged
    lines, for the rows raw holds (a quarantined row's line is not kept, so it is parsed again next time). None
    kept (keep False, or no lines staged) when the file's lines cannot stand for its rows."""
    kept = f'{LINES_SCHEMA}."{table}"'
    staged = staged_name(incoming_schema, STAGED_LINES_PREFIX, table)
    fingerprint = table_comment(con, incoming_schema, f"{STAGED_LINES_PREFIX}{table}")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {LINES_SCHEMA}")
    if not keep or fingerprint is None:
        con.execute(f"DROP TABLE IF EXISTS {kept}")
        return
    out, delta = staged_name(incoming_schema, OUT_PREFIX, table), staged_name(incoming_schema, DELTA_PREFIX, table)
    if is_view(con, incoming_schema, table) and table_comment(con, LINES_SCHEMA, table) == fingerprint:
        con.execute(f"DELETE FROM {kept} WHERE row IN (SELECT row FROM {out})")
        con.execute(
            f"INSERT INTO {kept} SELECT row, h FROM {staged} WHERE row IN (SELECT {SOURCE_ROW_COLUMN} FROM {delta})"
        )
    else:
        con.execute(
            f"CREATE OR REPLACE TABLE {kept} AS SELECT row, h FROM {staged} "
            f'WHERE row IN (SELECT {SOURCE_ROW_COLUMN} FROM {raw_schema}."{table}")'
        )
    con.execute(f"COMMENT ON TABLE {kept} IS {sql_literal(fingerprint)}")
