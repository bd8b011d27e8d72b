"""The raw schema's shape, staging a load's changes and publishing it (opening the file: kizuna.core.connection)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kizuna.core import ops
from kizuna.core.connection import (  # noqa: F401  (re-exported: callers open the warehouse through this module)
    DEFAULT_MEMORY_LIMIT,
    MEMORY_LIMIT_ENV,
    Connection,
    WarehouseError,
    WarehouseLockedError,
    connect,
    connect_when_free,
    describe_pid,
    holder_from_error,
    memory_limit,
    waiting_message,
)
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, TABLES, ColumnType, Table
from kizuna.core.ops import OPS_SCHEMA
from kizuna.core.postgres_warehouse import PostgresConnection
from kizuna.core.raw_delta import (
    apply_delta,
    keep_hashes,
    replace_table,
    stage_hashes,
    stage_replace,
    stage_replace_of_lines,
)
from kizuna.core.raw_lines import (
    DELTA_PREFIX,
    OUT_PREFIX,
    is_view,
    keep_lines,
    publish_line_delta,
    staged_name,
)

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw"
INCOMING_SCHEMA = "raw_incoming"
# Connector state (cursors, mirrors of pulled records) is staged as raw_incoming."_state__<name>" and
# replaces connector_state."<name>" in the publishing transaction: it advances only with the load it describes.
STATE_SCHEMA = "connector_state"
STATE_PREFIX = "_state__"
# A connector load also stages raw_incoming."_records__<table>" (_source_row, _source_record): the API record
# behind each staged row, e.g. "stripe subscription sub_1", so the gate's findings can name it.
RECORDS_PREFIX = "_records__"
RECORD_COLUMN = "_source_record"
# The keys each staged table inserts, updates and deletes (kizuna.sources.changes), kept in ops.load_changes.
LOAD_CHANGES_STAGING = f"{INCOMING_SCHEMA}._load_changes"


def raw_table_ddl(table: Table, schema: str = RAW_SCHEMA) -> str:
    """CREATE TABLE statement for one raw table, with the provenance columns last."""
    cols = [f'"{c.name}" {c.type.value}' for c in table.columns]
    cols += [f"{SOURCE_FILE_COLUMN} VARCHAR", f"{SOURCE_ROW_COLUMN} BIGINT"]
    return f'CREATE OR REPLACE TABLE {schema}."{table.name}" ({", ".join(cols)})'


def table_exists(con: Connection, schema: str, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])


def column_exists(con: Connection, schema: str, table: str, column: str) -> bool:
    """For marts built by an older version of the models, which may lack a newer column."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? AND column_name = ?",
        [schema, table, column],
    ).fetchone()
    return bool(row and row[0])


def staged_tables(con: Connection) -> set[str]:
    """The tables of the incoming schema: the load's, and its state, records and bookkeeping."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [INCOMING_SCHEMA]
    ).fetchall()
    return {str(r[0]) for r in rows}


def publish_incoming(con: Connection, load_id: str) -> dict[str, int]:
    """Replace every raw table from the incoming schema in one transaction: all tables or none.

    A changed table gets its delta (kizuna.core.raw_delta: the keys whose rows differ replaced) when it is known
    and small, else a copy; raw ends the same either way, and its per-key hashes are kept beside it.
    Tables with no staged file become empty, so raw mirrors exactly what the source directory held.
    Connector state staged with the load (cursors, mirrors) is committed in the same transaction.
    """
    if isinstance(con, PostgresConnection):
        raise TypeError("a PostgreSQL warehouse publishes through kizuna.core.publish.publish_load")
    staged = staged_tables(con)
    # Staging only, before the transaction (DuckDB cannot commit a change to a table the same transaction drops).
    _recount_rewritten(con, load_id, staged)
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        # row_count is what raw holds once published; staged_rows what the file gave before the gate quarantined.
        ops.upgrade_loads(con)
        kept = _unchanged_tables(con)
        rewritten = _rewritten_tables(con)
        for table in TABLES:
            if table.name in kept:
                pass  # the file was not parsed again and the gate moved nothing out: raw keeps the very table
            elif table.name in staged and publish_line_delta(con, RAW_SCHEMA, INCOMING_SCHEMA, table.name):
                pass  # staged as raw's rows minus those whose line changed plus the changed lines' rows
            elif table.name in staged and apply_delta(con, RAW_SCHEMA, INCOMING_SCHEMA, table.name, _keys(con, table)):
                pass  # the staged replace list applied: the changed and moved keys' rows replaced
            elif table.name in staged:
                con.execute(
                    f'CREATE OR REPLACE TABLE {RAW_SCHEMA}."{table.name}" AS '
                    f'SELECT * FROM {INCOMING_SCHEMA}."{table.name}"'
                )
            else:
                con.execute(raw_table_ddl(table, RAW_SCHEMA))
            if table.name not in kept:
                keep_hashes(con, INCOMING_SCHEMA, table.name, published=table.name in staged)
                keep_lines(con, RAW_SCHEMA, INCOMING_SCHEMA, table.name, keep=table.name not in rewritten)
            row = con.execute(f'SELECT count(*) FROM {RAW_SCHEMA}."{table.name}"').fetchone()
            counts[table.name] = int(row[0]) if row else 0
        con.execute(
            f"INSERT INTO {OPS_SCHEMA}.loads BY NAME SELECT l.load_id, timezone('UTC', now()) AS published_at, "
            "l.source_dir, l.table_name, l.source_file, l.encoding, p.rows AS row_count, l.sha256, "
            f"l.row_count AS staged_rows{_load_change_columns(con)} FROM {INCOMING_SCHEMA}._load l "
            "JOIN (SELECT unnest(?::VARCHAR[]) AS table_name, unnest(?::BIGINT[]) AS rows) p USING (table_name) "
            "WHERE l.load_id = ?",
            [list(counts), list(counts.values()), load_id],
        )
        ops.ensure(con, ops.LOAD_CHANGES)  # present from the first load on, empty as that load lists no keys
        if table_exists(con, INCOMING_SCHEMA, LOAD_CHANGES_STAGING.partition(".")[2]):
            con.execute(f"INSERT INTO {ops.LOAD_CHANGES} BY NAME SELECT * FROM {LOAD_CHANGES_STAGING}")
        state_tables = sorted(t for t in staged if t.startswith(STATE_PREFIX))
        if state_tables:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
        for name in state_tables:
            con.execute(
                f'CREATE OR REPLACE TABLE {STATE_SCHEMA}."{name.removeprefix(STATE_PREFIX)}" AS '
                f'SELECT * FROM {INCOMING_SCHEMA}."{name}"'
            )
        if table_exists(con, INCOMING_SCHEMA, "_quarantine"):
            # Rows the gate moved out of this load, kept with file, row, column, rule and value.
            ops.ensure(con, ops.QUARANTINE_ROWS)
            con.execute(f"INSERT INTO {ops.QUARANTINE_ROWS} BY NAME SELECT * FROM {INCOMING_SCHEMA}._quarantine")
        con.execute(f"DROP SCHEMA {INCOMING_SCHEMA} CASCADE")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts


def _load_change_columns(con: Connection) -> str:
    """The change columns the staged _load has (a load staged by an older kizuna has none)."""
    names = [n for n, _ in ops.LOADS_ADDED_COLUMNS if n != "staged_rows"]
    return "".join(f", l.{n}" for n in names if column_exists(con, INCOMING_SCHEMA, "_load", n))


def mark_rewritten(con: Connection, table: str) -> None:
    """The gate rewrote values of a staged table: compare it again before publishing (and publish a copy of an
    unchanged file's raw table rather than keep the raw table)."""
    if column_exists(con, INCOMING_SCHEMA, "_load", "rewritten"):
        con.execute(
            f"UPDATE {INCOMING_SCHEMA}._load SET rewritten = true WHERE table_name = ?",
            [table],
        )


def stage_change_list(con: Connection) -> None:
    """Create the staged change list (LOAD_CHANGES_STAGING), empty, unless it is there.

    Ingest creates it once, on its main connection, before any file is read: each file's reading cursor then
    compares its table with raw and appends that table's keys (two cursors creating it at once would conflict).
    Its presence therefore says nothing about a table: whether the list covers one is `compared_with_raw`.
    """
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {LOAD_CHANGES_STAGING} "
        "(load_id VARCHAR, table_name VARCHAR, key VARCHAR, change VARCHAR, before_row VARCHAR)"
    )


def compared_with_raw(con: Connection, table: str) -> bool:
    """Whether ingest compared the staged `table` with the published one, so that the staged change list names
    every key whose rows differ (none for a table reused unchanged): its row of the staged _load says 'unchanged'
    or counts its changes, and raw holds the table. Not on the table's first load (every row inserted, no key
    listed), nor for a load staged by a kizuna that recorded no counts."""
    if not table_exists(con, RAW_SCHEMA, table) or not table_exists(
        con, INCOMING_SCHEMA, LOAD_CHANGES_STAGING.partition(".")[2]
    ):
        return False
    if not all(column_exists(con, INCOMING_SCHEMA, "_load", c) for c in ("status", "inserted_rows")):
        return False
    row = con.execute(
        f"SELECT count(*) FROM {INCOMING_SCHEMA}._load WHERE table_name = ? "
        "AND (status = 'unchanged' OR inserted_rows IS NOT NULL)",
        [table],
    ).fetchone()
    return bool(row and row[0])


def change_list_covers(con: Connection, table: str) -> bool:
    """Whether the staged change list (LOAD_CHANGES_STAGING) names every key whose rows the staged `table` holds
    otherwise than raw, but for the rows the gate moved out since (its quarantine staging names them): the table
    compared with raw at ingest or reused unchanged (`compared_with_raw`), and none of its values rewritten by
    the gate."""
    if not table_exists(con, INCOMING_SCHEMA, table) or not compared_with_raw(con, table):
        return False
    if not column_exists(con, INCOMING_SCHEMA, "_load", "rewritten"):
        return False
    row = con.execute(
        f"SELECT count(*) FROM {INCOMING_SCHEMA}._load WHERE table_name = ? AND NOT coalesce(rewritten, false)",
        [table],
    ).fetchone()
    return bool(row and row[0])


def _recount_rewritten(con: Connection, load_id: str, staged: set[str]) -> None:
    """Tables the gate rewrote after ingest compared them (rows quarantined or kept out, values normalised):
    compare what is published instead."""
    if not column_exists(con, INCOMING_SCHEMA, "_load", "rewritten"):
        return
    loads = con.execute(f"SELECT table_name, row_count, rewritten FROM {INCOMING_SCHEMA}._load").fetchall()
    for table in TABLES:
        load = next((r for r in loads if r[0] == table.name), None)
        if load is None or table.name not in staged:
            continue
        now = con.execute(f'SELECT count(*) FROM {INCOMING_SCHEMA}."{table.name}"').fetchone()
        if not load[2] and now and now[0] == load[1]:
            continue
        counts = stage_changes(con, table, load_id)
        con.execute(
            f"UPDATE {INCOMING_SCHEMA}._load SET inserted_rows = ?, updated_rows = ?, deleted_rows = ?, "
            "status = 'staged' WHERE table_name = ?",
            [counts.inserted, counts.updated, counts.deleted, table.name],
        )


def _rewritten_tables(con: Connection) -> set[str]:
    """Tables whose values the gate rewrote (normalised): their rows no longer parse from their lines."""
    if not column_exists(con, INCOMING_SCHEMA, "_load", "rewritten"):
        return set()
    rows = con.execute(f"SELECT table_name FROM {INCOMING_SCHEMA}._load WHERE rewritten").fetchall()
    return {str(r[0]) for r in rows}


def _unchanged_tables(con: Connection) -> set[str]:
    """Tables staged as copies of raw (their file unchanged) that the gate left as they were (_recount_rewritten
    marks the others staged): raw keeps them as they are."""
    if not column_exists(con, INCOMING_SCHEMA, "_load", "status"):
        return set()
    rows = con.execute(f"SELECT table_name FROM {INCOMING_SCHEMA}._load WHERE status = 'unchanged'").fetchall()
    return {str(r[0]) for r in rows if table_exists(con, RAW_SCHEMA, str(r[0]))}


# --- what a load changes (kizuna.sources.changes stages it; publish_incoming keeps it) ----


@dataclass
class ChangeCounts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def __str__(self) -> str:
        return f"+{self.inserted:,} ~{self.updated:,} -{self.deleted:,}"


def _row_hash(con: Connection, table: Table, schema: str) -> str:
    """A row's hash over the contract's columns (a column the table lacks counts as NULL), provenance aside.

    Text goes in as its MD5, not as itself: DuckDB's hash() of a string lets two differences cancel when they
    fall on the last byte of consecutive 8-byte words (about 3 in 1,000 such pairs of numbered values collide,
    e.g. `0925356976491494@example.co.jp` and `0925356076491499@...`), and an update hidden by a collision
    would never reach raw. MD5 costs about a CPU second more per 15M rows at 1M customers (docs/sources.md).
    """
    present = {
        str(r[0])
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [schema, table.name],
        ).fetchall()
    }  # one query per table: information_schema costs milliseconds a call, and a table has up to 20 columns
    cells = [
        ("NULL" if c.name not in present else f'md5_number("{c.name}")' if c.type is ColumnType.TEXT else f'"{c.name}"')
        for c in table.columns
    ]
    return f"hash({', '.join(cells)})"


def change_key(con: Connection, table: Table, schema: str) -> str:
    """The key ops.load_changes names a row by, as SQL over the table: its contract key, else its row's hash."""
    return f'"{table.key}"::VARCHAR' if table.key else f"{_row_hash(con, table, schema)}::VARCHAR"


def _keys(con: Connection, table: Table) -> dict[str, str]:
    """Per schema (raw, incoming), a row's key as SQL in the key's own type: its contract key, else its row's hash."""
    return {s: f'"{table.key}"' if table.key else _row_hash(con, table, s) for s in (RAW_SCHEMA, INCOMING_SCHEMA)}


def _side(con: Connection, table: Table, schema: str, rows: str | None = None) -> str:
    """SELECT key, h, p: each row's key (as its own type: grouping by text costs more), its hash and its hash
    with the provenance (file, spreadsheet row); over `rows` (SQL of some rows of the schema's table) if given."""
    row_hash = _row_hash(con, table, schema)
    key = f'"{table.key}"' if table.key else row_hash
    placed = f"hash({row_hash}, {SOURCE_FILE_COLUMN}, {SOURCE_ROW_COLUMN})"
    source = rows if rows is not None else f'{schema}."{table.name}"'
    return f"SELECT {key} AS key, {row_hash} AS h, {placed} AS p FROM {source}"


def _stage_replace_of_lines(con: Connection, table: Table, sides: dict[str, str]) -> bool:
    """The replace list of a table staged as raw's rows minus its out rows plus its delta (kizuna.core.raw_lines),
    from the kept per-key hashes and the hashes of those rows only; False when it is staged otherwise."""
    if not is_view(con, INCOMING_SCHEMA, table.name):
        return False
    out_rows = f"(SELECT row FROM {staged_name(INCOMING_SCHEMA, OUT_PREFIX, table.name)})"
    left_out = f'(SELECT * FROM {RAW_SCHEMA}."{table.name}" WHERE {SOURCE_ROW_COLUMN} IN {out_rows}) AS r'
    added = _side(con, table, INCOMING_SCHEMA, staged_name(INCOMING_SCHEMA, DELTA_PREFIX, table.name))
    return stage_replace_of_lines(
        con, RAW_SCHEMA, INCOMING_SCHEMA, table.name, sides, _side(con, table, RAW_SCHEMA, left_out), added
    )


def stage_changes(con: Connection, table: Table, load_id: str) -> ChangeCounts:
    """Stage the keys the incoming table inserts, updates and deletes against the published raw table.

    Rows are compared whole (contract columns; `_source_file` and `_source_row` aside, so a row that only moved
    in the file is not a change). A keyless table's key is the row's hash: a row is inserted or deleted, never
    updated. On a table's first load every row is inserted and no key is listed.

    Per key and side, the sum of its rows' hashes (UBIGINT summed exactly into HUGEINT) and their number (a key's
    rows compared as a multiset, so duplicates count), the published side's taken from the per-key hashes kept
    at the last publish when they fit (`kizuna.core.raw_delta.stage_replace`): only the staged rows are hashed.
    """
    if not table_exists(con, RAW_SCHEMA, table.name):
        # A first load inserts every row: counted, but its keys are not listed (41M rows at 1M customers). Its
        # per-key hashes are kept with it, so the next load hashes only its own rows.
        stage_hashes(con, INCOMING_SCHEMA, table.name, _side(con, table, INCOMING_SCHEMA))
        row = con.execute(f'SELECT count(*) FROM {INCOMING_SCHEMA}."{table.name}"').fetchone()
        return ChangeCounts(inserted=int(row[0]) if row else 0)
    if table.key:
        change = "CASE WHEN o_n = 0 THEN 'inserted' WHEN n_n = 0 THEN 'deleted' ELSE 'updated' END"
    else:
        change = "CASE WHEN n_n > o_n THEN 'inserted' ELSE 'deleted' END"
    if not table_exists(con, INCOMING_SCHEMA, LOAD_CHANGES_STAGING.partition(".")[2]):
        stage_change_list(con)  # one table compared on its own (publish_incoming's recount); ingest made it before
    # A table listed already (publish_incoming's recount) has its keys replaced; the files' cursors, appending to
    # the list at once, find none and write nothing but their appends (as the creation above, only when needed).
    listed = con.execute(f"SELECT count(*) FROM {LOAD_CHANGES_STAGING} WHERE table_name = ?", [table.name]).fetchone()
    if listed and listed[0]:
        con.execute(f"DELETE FROM {LOAD_CHANGES_STAGING} WHERE table_name = ?", [table.name])
    # Every key whose rows differ in any way, provenance included (raw_delta replaces their rows at publish);
    # of those, the ones whose contract columns differ are the load's changes.
    replace = replace_table(INCOMING_SCHEMA, table.name)
    sides = {s: _side(con, table, s) for s in (RAW_SCHEMA, INCOMING_SCHEMA)}
    if not _stage_replace_of_lines(con, table, sides):
        stage_replace(con, RAW_SCHEMA, INCOMING_SCHEMA, table.name, sides)
    # Appended with the published row an update or deletion replaces (its dates say which months it touched), as
    # JSON, in one statement: the files' cursors append to the list at once (appends never conflict in DuckDB;
    # updating the rows afterwards could).
    key = change_key(con, table, RAW_SCHEMA)
    con.execute(
        f"INSERT INTO {LOAD_CHANGES_STAGING} SELECT * FROM ("
        f"WITH c AS (SELECT key::VARCHAR AS key, {change} AS change FROM {replace} "
        "WHERE n_n <> o_n OR n_h IS DISTINCT FROM o_h) "
        "SELECT ?, ?, c.key, c.change, b.row FROM c LEFT JOIN ("
        f"SELECT {key} AS key, arg_max(to_json(r)::VARCHAR, {SOURCE_ROW_COLUMN}) AS row "
        f"FROM {RAW_SCHEMA}.\"{table.name}\" r WHERE {key} IN (SELECT key FROM c WHERE change <> 'inserted') "
        "GROUP BY ALL) b ON c.change <> 'inserted' AND c.key = b.key)",
        [load_id, table.name],
    )
    counts = dict(
        con.execute(
            f"SELECT change, count(*) FROM {LOAD_CHANGES_STAGING} WHERE table_name = ? GROUP BY change",
            [table.name],
        ).fetchall()
    )
    return ChangeCounts(counts.get("inserted", 0), counts.get("updated", 0), counts.get("deleted", 0))


def staged_load_id(con: Connection) -> str | None:
    """The load waiting in the incoming schema, if any."""
    if not table_exists(con, INCOMING_SCHEMA, "_load"):
        return None
    row = con.execute(f"SELECT max(load_id) FROM {INCOMING_SCHEMA}._load").fetchone()  # one load_id
    return str(row[0]) if row and row[0] else None
