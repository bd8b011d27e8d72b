"""Cursors and mirrors: what makes a pull incremental, committed only together with the load it fed.

A pull of a table writes the records changed since the stored cursor (and the deleted keys) into a
ChangeSink. `stage_pull` parses them with the file source's parser and merges them with the table's mirror
(every record pulled so far, as it was before the gate) into raw_incoming.<table>. The new mirror and cursor
are staged beside it as raw_incoming."_state__*" tables, which `kizuna.warehouse.publish_incoming` commits
in the same transaction as the raw tables. So a pull that fails, or a load the gate stops, leaves cursors and
mirrors where the last published load left them, and the next run pulls the same changes again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from kizuna.connectors.base import ChangeSink, Cursor, PullOutcome
from kizuna.sources.contract import SOURCE_ROW_COLUMN, Table
from kizuna.sources.errors import Finding
from kizuna.sources.files import StagedFile, stage_file
from kizuna.warehouse import INCOMING_SCHEMA, STATE_PREFIX, STATE_SCHEMA, table_exists

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

    Findings name the pulled CSV (kept under var/pulls/), its row and column, and the source record.
    """
    sink.close()
    staged, findings, total = stage_file(con, table, sink.path, INCOMING_SCHEMA, tmp_dir)
    if staged is None:
        return None, _name_records(findings, source, sink), total

    incoming = f'{INCOMING_SCHEMA}."{table.name}"'
    changes = f'{INCOMING_SCHEMA}."_changes__{table.name}"'
    deleted = f'{INCOMING_SCHEMA}."_deleted__{table.name}"'
    mirror = f'{STATE_SCHEMA}."{mirror_table(table.name)}"'
    con.execute(f"DROP TABLE IF EXISTS {changes}")
    con.execute(f'ALTER TABLE {incoming} RENAME TO "_changes__{table.name}"')
    use_mirror = not outcome.snapshot and table_exists(con, STATE_SCHEMA, mirror_table(table.name))
    if table.key is None:
        if not outcome.snapshot:
            raise ValueError(f"{table.name} has no key: its connector must pull it whole")
        merged = f"SELECT * FROM {changes}"
    else:
        key = f'"{table.key}"'
        con.execute(f"CREATE OR REPLACE TABLE {deleted} AS SELECT unnest(?::VARCHAR[]) AS key", [sorted(sink.deleted)])
        # A record seen twice in one pull (updated while we paged) keeps its last version.
        latest = (
            f"SELECT * FROM {changes} WHERE {key}::VARCHAR NOT IN (SELECT key FROM {deleted}) "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {SOURCE_ROW_COLUMN} DESC) = 1"
        )
        merged = latest
        if use_mirror:
            merged += (
                f" UNION ALL BY NAME SELECT * FROM {mirror} WHERE {key}::VARCHAR NOT IN "
                f"(SELECT key FROM {deleted} UNION ALL SELECT {key}::VARCHAR FROM {changes})"
            )
    con.execute(f"CREATE TABLE {incoming} AS {merged}")
    con.execute(
        f'CREATE OR REPLACE TABLE {INCOMING_SCHEMA}."{STATE_PREFIX}{mirror_table(table.name)}" AS '
        f"SELECT * FROM {incoming}"
    )
    con.execute(f"DROP TABLE {changes}")
    con.execute(f"DROP TABLE IF EXISTS {deleted}")
    row = con.execute(f"SELECT count(*) FROM {incoming}").fetchone()
    staged.rows = int(row[0]) if row else 0
    staged.encoding = f"{source} api"
    return staged, [], 0
