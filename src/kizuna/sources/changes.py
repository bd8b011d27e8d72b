"""What changed since the last published load: files skipped by content hash, and keys inserted, updated, deleted.

A file whose sha256 and reading options (the mapping, the time zone naive timestamps are read in, the
contract's columns) equal those of its table's last published load is not parsed again: the published raw
table is copied into the incoming schema as it is, and the load says "unchanged". A staged table is compared
with the published one by the contract's key, over whole rows (`kizuna.core.warehouse.stage_changes`), and
the keys that differ are staged beside it for `publish_incoming` to keep in ops.load_changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.contract import Table
from kizuna.core.warehouse import INCOMING_SCHEMA, RAW_SCHEMA, column_exists, table_exists
from kizuna.sources.mapping import TableMapping

UNCHANGED = "unchanged"
STAGED = "staged"
# Bumped when the parser reads the same bytes differently, so every file is staged again once.
PARSER_VERSION = "1"


@dataclass(frozen=True)
class PublishedLoad:
    """A table's last published load, as ops.loads keeps it."""

    sha256: str
    options_sha256: str | None
    source_file: str
    encoding: str
    # The gate moved rows of it to quarantine: the raw table lacks them, so the file is parsed again next time,
    # and a row quarantined on what other rows said (an orphan) is published once the other side arrives.
    quarantined: bool = False


def options_sha256(table: Table, mapping: TableMapping | None, timezone: str) -> str:
    """The fingerprint of everything besides the file's bytes that decides what a file stages as."""
    options = {
        "parser": PARSER_VERSION,
        "columns": [(c.name, c.type.value) for c in table.columns],
        "mapping": asdict(mapping) if mapping else None,
        "timezone": timezone,
    }
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()


def last_published(con: Connection) -> dict[str, PublishedLoad]:
    """Per table, its most recently published load (empty before the first, or on an ops.loads without hashes)."""
    if not table_exists(con, ops.OPS_SCHEMA, "loads") or not column_exists(
        con, ops.OPS_SCHEMA, "loads", "options_sha256"
    ):
        return {}
    quarantined = (
        f"EXISTS (SELECT 1 FROM {ops.QUARANTINE_ROWS} q WHERE q.load_id = l.load_id AND q.table_name = l.table_name)"
        if table_exists(con, ops.QUARANTINE_SCHEMA, ops.QUARANTINE_ROWS.table)
        else "false"
    )
    rows = con.execute(
        f"SELECT table_name, sha256, options_sha256, source_file, encoding, {quarantined} FROM {ops.LOADS} l "
        "QUALIFY row_number() OVER (PARTITION BY table_name ORDER BY published_at DESC, load_id DESC) = 1"
    ).fetchall()
    return {str(r[0]): PublishedLoad(str(r[1]), r[2], str(r[3]), str(r[4]), bool(r[5])) for r in rows}


def reuse_published(con: Connection, table: Table) -> int:
    """Copy the published raw table into the incoming schema as is (no parsing); its row count.

    The gate then checks it as it checks a staged file (a deleted customer orphans unchanged contacts), and
    publish_incoming leaves the raw table itself untouched unless the gate moved rows out of the copy.
    """
    con.execute(f'CREATE TABLE {INCOMING_SCHEMA}."{table.name}" AS SELECT * FROM {RAW_SCHEMA}."{table.name}"')
    row = con.execute(f'SELECT count(*) FROM {INCOMING_SCHEMA}."{table.name}"').fetchone()
    return int(row[0]) if row else 0


def can_reuse(con: Connection, table: Table, last: PublishedLoad | None, sha: str, opts: str) -> bool:
    return (
        last is not None
        and not last.quarantined
        and last.sha256 == sha
        and last.options_sha256 == opts
        and table_exists(con, RAW_SCHEMA, table.name)
    )
