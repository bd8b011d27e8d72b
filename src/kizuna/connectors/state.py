"""Cursors and mirrors: what makes a pull incremental, committed only together with the load it fed.

A pull of a table writes the records changed since the stored cursor (and the deleted keys) into a
ChangeSink; the ingest (kizuna.sources.pulls) parses them, merges them with the table's mirror (every record
pulled so far, as it was before the gate) and stages the new mirror and cursors beside the load as
raw_incoming."_state__*" tables, which `kizuna.core.warehouse.publish_incoming` commits in the same
transaction as the raw tables. So a pull that fails, or a load the gate stops, leaves cursors and mirrors
where the last published load left them, and the next run pulls the same changes again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kizuna.connectors.base import Cursor
from kizuna.core.connection import Connection
from kizuna.core.warehouse import INCOMING_SCHEMA, STATE_PREFIX, STATE_SCHEMA, table_exists

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

    def __init__(self, con: Connection) -> None:
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

    def stage(self, con: Connection) -> None:
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
