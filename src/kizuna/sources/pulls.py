"""Connector pulls staged like files: the pulled records parsed by the file parser and merged with the mirror.

A pull of a table writes the records changed since the stored cursor (and the deleted keys) into a
ChangeSink (kizuna.connectors.base). `stage_pull` parses them with the file source's parser and merges them
with the table's mirror (every record pulled so far, as it was before the gate) into raw_incoming.<table>.
The new mirror is staged beside it as a raw_incoming."_state__*" table, and the cursors
(kizuna.connectors.state) likewise, which `kizuna.core.warehouse.publish_incoming` commits in the same
transaction as the raw tables. So a pull that fails, or a load the gate stops, leaves cursors and mirrors
where the last published load left them, and the next run pulls the same changes again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from kizuna.connectors.base import ChangeSink, Connector, PullOutcome
from kizuna.connectors.registry import make_connector
from kizuna.connectors.state import CursorStore, mirror_table, prune_pull_dirs, pull_dir
from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, ColumnType, Table
from kizuna.core.errors import Finding
from kizuna.core.settings import Settings
from kizuna.core.warehouse import (
    INCOMING_SCHEMA,
    RECORD_COLUMN,
    RECORDS_PREFIX,
    STATE_PREFIX,
    STATE_SCHEMA,
    table_exists,
)
from kizuna.sources.files import StagedFile, stage_file


class Pulls:
    """The connectors of one ingest, made once per source, and the cursors they advance."""

    def __init__(self, con: Connection, settings: Settings, options: dict[str, dict[str, Any]], load_id: str) -> None:
        self.con = con
        self.settings = settings
        self.options = options
        self.load_id = load_id
        self.cursors = CursorStore(con)
        self.dir = pull_dir(settings.var_dir, load_id)
        self._connectors: dict[str, Connector] = {}
        prune_pull_dirs(settings.var_dir)

    def pull(self, table: Table, source: str, tmp_dir: Path) -> tuple[StagedFile | None, list[Finding], int]:
        if source not in self._connectors:
            self._connectors[source] = make_connector(source, self.settings, self.options.get(source, {}))
        connector = self._connectors[source]
        if table.name not in connector.tables:
            finding = Finding(source, None, table.name, f"the {source} connector cannot feed this table")
            return None, [finding], 1
        cursor = None if self.settings.full_refresh else self.cursors.get(source, table.name)
        sink = ChangeSink(table, self.dir / f"{source}-{table.name}.csv")
        try:
            outcome = connector.pull(table, cursor, sink)
        finally:
            sink.close()
        staged, findings, total = stage_pull(self.con, table, source, sink, outcome, tmp_dir)
        if staged is not None:
            self.cursors.set(source, table.name, outcome.cursor, self.load_id)
        return staged, findings, total


def _name_records(findings: list[Finding], source: str, sink: ChangeSink) -> list[Finding]:
    named = []
    for f in findings:
        ref = sink.ref_of_row(f.row)
        where = f" ({source} {ref})" if ref else ""
        named.append(Finding(str(sink.path), f.row, f.column, f"{f.message}{where}"))
    return named


def stage_pull(
    con: Connection,
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

    scratch = _Scratch(table.name)
    merged = _merged_records(con, table, source, sink, outcome, scratch)
    _stage_mirror(con, table, source, sink.path, merged)
    for name in (scratch.changes, scratch.deleted, scratch.refs):
        con.execute(f"DROP TABLE IF EXISTS {name}")
    row = con.execute(f'SELECT count(*) FROM {INCOMING_SCHEMA}."{table.name}"').fetchone()
    staged.rows = int(row[0]) if row else 0
    staged.encoding = f"{source} api"
    with sink.path.open("rb") as fh:
        staged.sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    return staged, [], 0


class _Scratch:
    """The scratch tables of one table's merge, dropped once the merge is staged."""

    def __init__(self, table: str) -> None:
        self.changes = f'{INCOMING_SCHEMA}."_changes__{table}"'
        self.deleted = f'{INCOMING_SCHEMA}."_deleted__{table}"'
        self.refs = f'{INCOMING_SCHEMA}."_refs__{table}"'


def _merged_records(
    con: Connection,
    table: Table,
    source: str,
    sink: ChangeSink,
    outcome: PullOutcome,
    scratch: _Scratch,
) -> str:
    """The SELECT of the table after this pull: its records named by API record, less deleted keys, and
    (for an incremental pull) the mirror's records this pull did not change, marked `_carried`."""
    con.execute(f"DROP TABLE IF EXISTS {scratch.changes}")
    con.execute(f'ALTER TABLE {INCOMING_SCHEMA}."{table.name}" RENAME TO "_changes__{table.name}"')
    con.execute(
        f"CREATE OR REPLACE TABLE {scratch.refs} AS SELECT unnest(range(2, ?::BIGINT)) AS {SOURCE_ROW_COLUMN}, "
        f"unnest(?::VARCHAR[]) AS {RECORD_COLUMN}",
        [len(sink.refs) + 2, [f"{source} {ref}" for ref in sink.refs]],
    )
    pulled = (
        f"SELECT c.*, r.{RECORD_COLUMN}, 0 AS _carried FROM {scratch.changes} c "
        f"LEFT JOIN {scratch.refs} r ON r.{SOURCE_ROW_COLUMN} = c.{SOURCE_ROW_COLUMN}"
    )
    use_mirror = not outcome.snapshot and table_exists(con, STATE_SCHEMA, mirror_table(table.name))
    if table.key is None:
        if not outcome.snapshot:
            raise ValueError(f"{table.name} has no key: its connector must pull it whole")
        return pulled
    key = f'"{table.key}"'
    con.execute(
        f"CREATE OR REPLACE TABLE {scratch.deleted} AS SELECT unnest(?::VARCHAR[]) AS key", [sorted(sink.deleted)]
    )
    # A record seen twice in one pull (updated while we paged) keeps its last version.
    merged = (
        f"SELECT * FROM ({pulled}) WHERE {key}::VARCHAR NOT IN (SELECT key FROM {scratch.deleted}) "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {SOURCE_ROW_COLUMN} DESC) = 1"
    )
    if use_mirror:
        # Mirrors stored before records were named lack the column: BY NAME fills it with NULL.
        mirror = f'{STATE_SCHEMA}."{mirror_table(table.name)}"'
        merged += (
            f" UNION ALL BY NAME SELECT *, 1 AS _carried FROM {mirror} WHERE {key}::VARCHAR NOT IN "
            f"(SELECT key FROM {scratch.deleted} UNION ALL SELECT {key}::VARCHAR FROM {scratch.changes})"
        )
    return merged


def _stage_mirror(con: Connection, table: Table, source: str, path: Path, merged: str) -> None:
    """Stage the merged records as the new mirror and as raw_incoming.<table>, renumbered row for row, and
    write them back over the pulled CSV so each row's `_source_file` and `_source_row` name its line."""
    staged_mirror = f'{INCOMING_SCHEMA}."{STATE_PREFIX}{mirror_table(table.name)}"'
    columns = ", ".join(f'"{c}"' for c in table.column_names)
    unnamed = f"'{source} ' || \"{table.key}\"::VARCHAR" if table.key else "NULL"
    con.execute(
        f"CREATE OR REPLACE TABLE {staged_mirror} AS SELECT {columns}, ?::VARCHAR AS {SOURCE_FILE_COLUMN}, "
        f"(row_number() OVER (ORDER BY _carried, {SOURCE_ROW_COLUMN}) + 1)::BIGINT AS {SOURCE_ROW_COLUMN}, "
        f"coalesce({RECORD_COLUMN}, {unnamed}) AS {RECORD_COLUMN} FROM ({merged}) ORDER BY {SOURCE_ROW_COLUMN}",
        [str(path)],
    )
    con.execute(
        f'CREATE TABLE {INCOMING_SCHEMA}."{table.name}" AS SELECT * EXCLUDE ({RECORD_COLUMN}) '
        f"FROM {staged_mirror} ORDER BY {SOURCE_ROW_COLUMN}"
    )
    # What the gate reads to name the API record behind a finding (kizuna.quality.records).
    con.execute(
        f'CREATE OR REPLACE VIEW {INCOMING_SCHEMA}."{RECORDS_PREFIX}{table.name}" AS '
        f"SELECT {SOURCE_ROW_COLUMN}, {RECORD_COLUMN} FROM {staged_mirror}"
    )
    _write_staged_csv(con, table, staged_mirror, path)


def _write_staged_csv(con: Connection, table: Table, staged_mirror: str, path: Path) -> None:
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
