"""Cursors and mirrors: what makes a pull incremental, committed only together with the load it fed.

A pull of a table writes the records changed since the stored cursor (and the deleted keys) into a
ChangeSink. `stage_pull` parses them with the file source's parser and merges them with the table's mirror
(every record pulled so far, as it was before the gate) into raw_incoming.<table>. The new mirror and cursor
are staged beside it as raw_incoming."_state__*" tables, which `kizuna.core.warehouse.publish_incoming` commits
in the same transaction as the raw tables. So a pull that fails, or a load the gate stops, leaves cursors and
mirrors where the last published load left them, and the next run pulls the same changes again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from kizuna.connectors.base import ChangeSink, Cursor, PullOutcome
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, ColumnType, Table
from kizuna.core.warehouse import (
    INCOMING_SCHEMA,
    RECORD_COLUMN,
    RECORDS_PREFIX,
    STATE_PREFIX,
    STATE_SCHEMA,
    table_exists,
)
from kizuna.sources.errors import Finding
from kizuna.sources.files import StagedFile, stage_file

CURSORS_TABLE = "cursors"
KEEP_PULL_DIRS = 5  # the CSVs of the latest pulls stay under var/pulls/ so findings' rows can be looked up


def mirror_table(table: str) -> str:
    return f"mirror__{table}"


@dataclass
class StoredCursor:
    source: str
    cursor: Cursor
    load_id: str
    pulled_at: datetime


class CursorStore:
    """The committed cursors (one per raw table and source), and the ones this load will commit."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._cursors: dict[str, StoredCursor] = {}
        if table_exists(con, STATE_SCHEMA, CURSORS_TABLE):
            rows = con.execute(
                f"SELECT table_name, source, cursor, load_id, pulled_at FROM {STATE_SCHEMA}.{CURSORS_TABLE}"
            ).fetchall()
            for table_name, source, cursor, load_id, pulled_at in rows:
                self._cursors[table_name] = StoredCursor(source, json.loads(cursor), load_id, pulled_at)

    def get(self, source: str, table: str) -> Cursor | None:
        """The cursor to pull from, or None for a full pull (none stored, or stored for another source)."""
        stored = self._cursors.get(table)
        return stored.cursor if stored is not None and stored.source == source else None

    def set(self, source: str, table: str, cursor: Cursor, load_id: str) -> None:
        self._cursors[table] = StoredCursor(source, cursor, load_id, datetime.now(UTC).replace(tzinfo=None))

    def forget(self, table: str) -> None:
        """The table no longer comes from a connector: its next connector pull starts from scratch."""
        self._cursors.pop(table, None)

    def stage(self, con: duckdb.DuckDBPyConnection) -> None:
        names = sorted(self._cursors)
        con.execute(
            f'CREATE OR REPLACE TABLE {INCOMING_SCHEMA}."{STATE_PREFIX}{CURSORS_TABLE}" AS SELECT '
            "unnest(?::VARCHAR[]) AS table_name, unnest(?::VARCHAR[]) AS source, unnest(?::VARCHAR[]) AS cursor, "
            "unnest(?::VARCHAR[]) AS load_id, unnest(?::TIMESTAMP[]) AS pulled_at",
            [
                names,
                [self._cursors[n].source for n in names],
                [json.dumps(self._cursors[n].cursor, sort_keys=True) for n in names],
                [self._cursors[n].load_id for n in names],
                [self._cursors[n].pulled_at for n in names],
            ],
        )


def pull_dir(var_dir: Path, load_id: str) -> Path:
    """Where one load's pulled records are written (and kept for the latest few loads)."""
    return var_dir / "pulls" / load_id


def prune_pull_dirs(var_dir: Path, keep: int = KEEP_PULL_DIRS) -> None:
    root = var_dir / "pulls"
    if not root.is_dir():
        return
    for old in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _name_records(findings: list[Finding], source: str, sink: ChangeSink) -> list[Finding]:
    named = []
    for f in findings:
        ref = sink.ref_of_row(f.row)
        where = f" ({source} {ref})" if ref else ""
        named.append(Finding(str(sink.path), f.row, f.column, f"{f.message}{where}"))
    return named


def stage_pull(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    source: str,
    sink: ChangeSink,
    outcome: PullOutcome,
    tmp_dir: Path,
) -> tuple[StagedFile | None, list[Finding], int]:
    """Parse a pull's records and merge them with the mirror into raw_incoming.<table>.

    Findings name the pulled CSV (kept under var/pulls/), its row and column, and the source record. Once
    merged, the staged table is written back over that CSV, row for row (this pull's records first, then the
    ones carried over from earlier pulls, each with its API record in `_source_record`): so every staged row
    has its own `_source_row`, and `_source_file` and `_source_row` name the line that holds it. Rows carried
    over would otherwise keep the numbers of an older pull and collide with this pull's, and the gate, which
    quarantines by row, would move a valid record along with the one it names.
    """
    sink.close()
    staged, findings, total = stage_file(con, table, sink.path, INCOMING_SCHEMA, tmp_dir)
    if staged is None:
        return None, _name_records(findings, source, sink), total

    incoming = f'{INCOMING_SCHEMA}."{table.name}"'
    changes = f'{INCOMING_SCHEMA}."_changes__{table.name}"'
    deleted = f'{INCOMING_SCHEMA}."_deleted__{table.name}"'
    refs = f'{INCOMING_SCHEMA}."_refs__{table.name}"'
    mirror = f'{STATE_SCHEMA}."{mirror_table(table.name)}"'
    staged_mirror = f'{INCOMING_SCHEMA}."{STATE_PREFIX}{mirror_table(table.name)}"'
    con.execute(f"DROP TABLE IF EXISTS {changes}")
    con.execute(f'ALTER TABLE {incoming} RENAME TO "_changes__{table.name}"')
    con.execute(
        f"CREATE OR REPLACE TABLE {refs} AS SELECT unnest(range(2, ?::BIGINT)) AS {SOURCE_ROW_COLUMN}, "
        f"unnest(?::VARCHAR[]) AS {RECORD_COLUMN}",
        [len(sink.refs) + 2, [f"{source} {ref}" for ref in sink.refs]],
    )
    pulled = (
        f"SELECT c.*, r.{RECORD_COLUMN}, 0 AS _carried FROM {changes} c "
        f"LEFT JOIN {refs} r ON r.{SOURCE_ROW_COLUMN} = c.{SOURCE_ROW_COLUMN}"
    )
    use_mirror = not outcome.snapshot and table_exists(con, STATE_SCHEMA, mirror_table(table.name))
    if table.key is None:
        if not outcome.snapshot:
            raise ValueError(f"{table.name} has no key: its connector must pull it whole")
        merged = pulled
    else:
        key = f'"{table.key}"'
        con.execute(f"CREATE OR REPLACE TABLE {deleted} AS SELECT unnest(?::VARCHAR[]) AS key", [sorted(sink.deleted)])
        # A record seen twice in one pull (updated while we paged) keeps its last version.
        merged = (
            f"SELECT * FROM ({pulled}) WHERE {key}::VARCHAR NOT IN (SELECT key FROM {deleted}) "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {SOURCE_ROW_COLUMN} DESC) = 1"
        )
        if use_mirror:
            # Mirrors stored before records were named lack the column: BY NAME fills it with NULL.
            merged += (
                f" UNION ALL BY NAME SELECT *, 1 AS _carried FROM {mirror} WHERE {key}::VARCHAR NOT IN "
                f"(SELECT key FROM {deleted} UNION ALL SELECT {key}::VARCHAR FROM {changes})"
            )
    columns = ", ".join(f'"{c}"' for c in table.column_names)
    unnamed = f"'{source} ' || \"{table.key}\"::VARCHAR" if table.key else "NULL"
    con.execute(
        f"CREATE OR REPLACE TABLE {staged_mirror} AS SELECT {columns}, ?::VARCHAR AS {SOURCE_FILE_COLUMN}, "
        f"(row_number() OVER (ORDER BY _carried, {SOURCE_ROW_COLUMN}) + 1)::BIGINT AS {SOURCE_ROW_COLUMN}, "
        f"coalesce({RECORD_COLUMN}, {unnamed}) AS {RECORD_COLUMN} FROM ({merged}) ORDER BY {SOURCE_ROW_COLUMN}",
        [str(sink.path)],
    )
    con.execute(
        f"CREATE TABLE {incoming} AS SELECT * EXCLUDE ({RECORD_COLUMN}) FROM {staged_mirror} ORDER BY {SOURCE_ROW_COLUMN}"
    )
    # What the gate reads to name the API record behind a finding (kizuna.quality.records).
    con.execute(
        f'CREATE OR REPLACE VIEW {INCOMING_SCHEMA}."{RECORDS_PREFIX}{table.name}" AS '
        f"SELECT {SOURCE_ROW_COLUMN}, {RECORD_COLUMN} FROM {staged_mirror}"
    )
    _write_staged_csv(con, table, staged_mirror, sink.path)
    for scratch in (changes, deleted, refs):
        con.execute(f"DROP TABLE IF EXISTS {scratch}")
    row = con.execute(f"SELECT count(*) FROM {incoming}").fetchone()
    staged.rows = int(row[0]) if row else 0
    staged.encoding = f"{source} api"
    with sink.path.open("rb") as fh:
        staged.sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    return staged, [], 0


def _write_staged_csv(con: duckdb.DuckDBPyConnection, table: Table, staged_mirror: str, path: Path) -> None:
    """The staged table as a contract CSV, row N on line N; timestamps with their UTC offset, since the file
    parser would read a bare one as business time."""
    cells = [
        f'strftime("{c.name}", \'%Y-%m-%d %H:%M:%S+00:00\') AS "{c.name}"'
        if c.type is ColumnType.TIMESTAMP
        else f'"{c.name}"'
        for c in table.columns
    ]
    con.execute(
        f"COPY (SELECT {', '.join(cells)}, {RECORD_COLUMN} FROM {staged_mirror} ORDER BY {SOURCE_ROW_COLUMN}) "
        f"TO '{str(path).replace(chr(39), chr(39) * 2)}' (HEADER, DELIMITER ',')"
    )
