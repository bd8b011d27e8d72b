"""Per row, the hash of its text as read: a file read again types only the records whose text is new.

A load that parses a CSV file keeps, beside the staged table, one row per distinct record text: its md5
(reading.text_hash: every field as read, NULLs included) and the spreadsheet row of one record with that text
(`raw_incoming."_texthashes__<table>"`). Publishing keeps them (`raw_hashes."_texthashes__<table>"`,
kizuna.core.raw_delta.keep_text_hashes) only when raw is then exactly the staged table: not when the gate
quarantined or rewrote rows of it, nor for a table pulled by a connector or emptied.

The next load of the table's file reads the records once, as text, and looks their hashes up: a record whose
hash is kept was read from the very same text with the very same options (the fingerprint: the header, the
reading options of kizuna.sources.changes.options_sha256, this module's version and DuckDB's), so folding,
casting and guarding it again would give the values raw's row with that spreadsheet row holds. Only the other
records (≈ 0.5% on a day) are typed; the rest take raw's values with today's file name and row
(reading.load_reusing). Workbooks, connector pulls, a first load and `--full-refresh` take the full path.
"""

from __future__ import annotations

import json

import duckdb

from kizuna.core.raw_delta import HASHES_SCHEMA, TEXT_HASHES_PREFIX
from kizuna.core.warehouse import INCOMING_SCHEMA, RAW_SCHEMA, table_exists
from kizuna.sources.reading import TEXT_HASH

# Bumped when the text hash or what it stands for changes: every file is then read in full once.
TEXT_HASH_VERSION = "1"


def fingerprint(options_sha256: str, header: list[str]) -> str:
    """What besides a record's text decides its typed values: the reading options, the header (which field
    feeds which column), the text hash's version and DuckDB's (its casts)."""
    return json.dumps([TEXT_HASH_VERSION, duckdb.__version__, options_sha256, header], ensure_ascii=False)


def kept_text_hashes(con: duckdb.DuckDBPyConnection, table: str, fingerprint_: str) -> str | None:
    """raw_hashes' text hashes (t, r) of `table` when they were made with the same fingerprint and raw holds the
    table; else None (read the whole file)."""
    if not table_exists(con, RAW_SCHEMA, table):
        return None
    name = f"{TEXT_HASHES_PREFIX}{table}"
    row = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [HASHES_SCHEMA, name]
    ).fetchone()
    return f'{HASHES_SCHEMA}."{name}"' if row and row[0] == fingerprint_ else None


def stage_text_hashes(con: duckdb.DuckDBPyConnection, table: str, target: str, fingerprint_: str) -> None:
    """Stage the text hashes of the typed `target` (its TEXT_HASH column, then dropped) for publishing to keep."""
    staged = f'{INCOMING_SCHEMA}."{TEXT_HASHES_PREFIX}{table}"'
    con.execute(
        f"CREATE OR REPLACE TABLE {staged} AS SELECT {TEXT_HASH} AS t, min(_source_row) AS r FROM {target} GROUP BY ALL"
    )
    con.execute(f"COMMENT ON TABLE {staged} IS '{fingerprint_.replace(chr(39), chr(39) * 2)}'")
    con.execute(f"ALTER TABLE {target} DROP COLUMN {TEXT_HASH}")
