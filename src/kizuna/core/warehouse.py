"""The raw schema's shape, staging a load's changes and publishing it (opening the file: kizuna.core.connection)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
    HASHES_PREFIX,
    REPLACE_PREFIX,
    apply_delta,
    keep_hashes,
    replace_table,
    stage_hashes,
    stage_replace,
)

if TYPE_CHECKING:
    import pandas as pd

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


# --- a load for a server warehouse: parsed by DuckDB in a staging file, copied in, published on the server ----

# DuckDB's types (information_schema.columns.data_type) as PostgreSQL spells them; any other as itself.
_SERVER_TYPES = {
    "VARCHAR": "TEXT",
    "DOUBLE": "DOUBLE PRECISION",
    "FLOAT": "REAL",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "TINYINT": "SMALLINT",
    "UTINYINT": "SMALLINT",
    "USMALLINT": "INTEGER",
    "UINTEGER": "BIGINT",
    "UBIGINT": "NUMERIC(20)",
    "HUGEINT": "NUMERIC(39)",
}
# What a server's load leaves out of the copy: the per-key hashes and change lists of DuckDB's incremental
# publish (kizuna.core.raw_delta). On a server every load is checked and published whole (docs/scaling.md).
_LOCAL_ONLY = (HASHES_PREFIX, REPLACE_PREFIX, LOAD_CHANGES_STAGING.partition(".")[2])


def server_type(duckdb_type: str) -> str:
    """A DuckDB column type as a PostgreSQL table declares it."""
    if duckdb_type.startswith("DECIMAL"):
        return "NUMERIC" + duckdb_type.removeprefix("DECIMAL")
    return _SERVER_TYPES.get(duckdb_type, duckdb_type)


def _schema_tables(con: Connection, schema: str) -> dict[str, list[tuple[str, str]]]:
    """Per table of a schema, its columns in order with their types: information_schema's on DuckDB, PostgreSQL's
    exact ones (`numeric(18,2)`, which its information_schema gives as `numeric`)."""
    if isinstance(con, PostgresConnection):
        query = (
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY c.relname, a.attnum"
        )
    else:
        query = (
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
            "ORDER BY table_name, ordinal_position"
        )
    rows = con.execute(query, [schema]).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        tables.setdefault(str(table), []).append((str(column), str(kind)))
    return tables


def copy_staged_to_server(local: Connection, server: Connection, tmp_dir: Path) -> list[str]:
    """Replace the server's incoming schema by the staged tables of a DuckDB staging file, typed as DuckDB typed
    them, rows through CSV and COPY (memory stays flat whatever the size); the tables copied."""
    if not isinstance(server, PostgresConnection):
        raise TypeError("copy_staged_to_server copies into a PostgreSQL warehouse")
    tables = {
        name: columns
        for name, columns in _schema_tables(local, INCOMING_SCHEMA).items()
        if not name.startswith(_LOCAL_ONLY) and name != _LOCAL_ONLY[-1]
    }
    tmp_dir.mkdir(parents=True, exist_ok=True)
    server.execute(f"DROP SCHEMA IF EXISTS {INCOMING_SCHEMA} CASCADE")
    server.execute(f"CREATE SCHEMA {INCOMING_SCHEMA}")
    for name, columns in tables.items():
        quoted = f'{INCOMING_SCHEMA}."{name}"'
        declared = ", ".join(f'"{column}" {server_type(kind)}' for column, kind in columns)
        server.execute(f"CREATE TABLE {quoted} ({declared})")
        csv = tmp_dir / f"copy-{name}.csv"
        try:
            local.execute(f"COPY (SELECT * FROM {quoted}) TO '{_sql_text(str(csv))}' (FORMAT csv, HEADER false)")
            server.copy_csv(quoted, csv)
        finally:
            csv.unlink(missing_ok=True)
    return list(tables)


def copy_schema_from_server(server: Connection, local: Connection, schema: str) -> None:
    """The server's tables of a (small) schema into a DuckDB staging file: the connectors' state they read."""
    tables = _schema_tables(server, schema)
    if tables:
        local.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for name in tables:
        frame = server.execute(f'SELECT * FROM {schema}."{name}"').df()
        local.register("_from_server", frame)
        try:
            local.execute(f'CREATE OR REPLACE TABLE {schema}."{name}" AS SELECT * FROM _from_server')
        finally:
            local.unregister("_from_server")


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _publish_on_server(con: Connection, load_id: str, staged: set[str]) -> dict[str, int]:
    """publish_incoming on PostgreSQL: every raw table replaced by its staged copy in one transaction (its DDL is
    transactional), the load recorded, the state and quarantined rows kept; no per-key delta (raw_delta)."""
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        ops.upgrade_loads(con)
        published = _schema_tables(con, RAW_SCHEMA)
        incoming = _schema_tables(con, INCOMING_SCHEMA)
        for table in TABLES:
            raw = f'{RAW_SCHEMA}."{table.name}"'
            if table.name in staged:
                columns = incoming[table.name]
            else:
                columns = [(c.name, server_type(c.type.value)) for c in table.columns]
                columns += [(SOURCE_FILE_COLUMN, "TEXT"), (SOURCE_ROW_COLUMN, "BIGINT")]
            if _same_columns(published.get(table.name), columns):
                # The rows replaced, the table kept: dbt's staging views depend on it, and PostgreSQL binds a view
                # to its tables (a drop would need CASCADE and leave no views until the next build).
                con.execute(f"TRUNCATE {raw}")
            else:
                if table.name in published:
                    log.info("raw.%s changes its columns: dbt's views on it are dropped until the build", table.name)
                con.execute(f"DROP TABLE IF EXISTS {raw} CASCADE")
                declared = ", ".join(f'"{c}" {k}' for c, k in columns)
                con.execute(f"CREATE TABLE {raw} ({declared})")
            if table.name in staged:
                names = ", ".join(f'"{c}"' for c, _ in columns)
                con.execute(f'INSERT INTO {raw} ({names}) SELECT {names} FROM {INCOMING_SCHEMA}."{table.name}"')
            row = con.execute(f"SELECT count(*) FROM {raw}").fetchone()
            counts[table.name] = int(row[0]) if row else 0
        con.register("_published_rows", _frame({"table_name": list(counts), "rows": list(counts.values())}))
        added = [n for n, _ in ops.LOADS_ADDED_COLUMNS if n != "staged_rows"]
        added = [n for n in added if column_exists(con, INCOMING_SCHEMA, "_load", n)]
        con.execute(
            f"INSERT INTO {OPS_SCHEMA}.loads (load_id, published_at, source_dir, table_name, source_file, encoding, "
            f"row_count, sha256, staged_rows{''.join(f', {n}' for n in added)}) "
            "SELECT l.load_id, timezone('UTC', now()), l.source_dir, l.table_name, l.source_file, l.encoding, "
            f"p.rows, l.sha256, l.row_count{''.join(f', l.{n}' for n in added)} FROM {INCOMING_SCHEMA}._load l "
            "JOIN _published_rows p USING (table_name) WHERE l.load_id = ?",
            [load_id],
        )
        con.unregister("_published_rows")
        ops.ensure(con, ops.LOAD_CHANGES)
        state_tables = sorted(t for t in staged if t.startswith(STATE_PREFIX))
        if state_tables:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
        for name in state_tables:
            kept = f'{STATE_SCHEMA}."{name.removeprefix(STATE_PREFIX)}"'
            con.execute(f"DROP TABLE IF EXISTS {kept}")
            con.execute(f'CREATE TABLE {kept} AS SELECT * FROM {INCOMING_SCHEMA}."{name}"')
        if table_exists(con, INCOMING_SCHEMA, "_quarantine"):
            ops.ensure(con, ops.QUARANTINE_ROWS)
            # The staged rows name their columns as ops' table does.
            quarantined = ", ".join(c for c, _ in _schema_tables(con, INCOMING_SCHEMA)["_quarantine"])
            con.execute(
                f"INSERT INTO {ops.QUARANTINE_ROWS} ({quarantined}) "
                f"SELECT {quarantined} FROM {INCOMING_SCHEMA}._quarantine"
            )
        con.execute(f"DROP SCHEMA {INCOMING_SCHEMA} CASCADE")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts


# How format_type spells the types server_type declares under another name.
_FORMAT_TYPE = {"timestamp": "timestamp without time zone", "timestamptz": "timestamp with time zone"}


def _same_columns(have: list[tuple[str, str]] | None, want: list[tuple[str, str]]) -> bool:
    """Whether a table's columns (names and format_type's types) are those wanted, in order."""

    def canonical(kind: str) -> str:
        kind = kind.lower().replace(", ", ",")
        return _FORMAT_TYPE.get(kind, kind)

    if have is None:
        return False
    return [(c, canonical(k)) for c, k in have] == [(c, canonical(k)) for c, k in want]


def _frame(columns: dict[str, list[object]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns)


def publish_incoming(con: Connection, load_id: str) -> dict[str, int]:
    """Replace every raw table from the incoming schema in one transaction: all tables or none.

    A changed table gets its delta (kizuna.core.raw_delta: the keys whose rows differ replaced) when it is known
    and small, else a copy; raw ends the same either way, and its per-key hashes are kept beside it.
    Tables with no staged file become empty, so raw mirrors exactly what the source directory held.
    Connector state staged with the load (cursors, mirrors) is committed in the same transaction.
    """
    staged = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [INCOMING_SCHEMA]
        ).fetchall()
    }
    if isinstance(con, PostgresConnection):
        return _publish_on_server(con, load_id, staged)
    # Staging only, before the transaction (DuckDB cannot commit a change to a table the same transaction drops).
    _recount_rewritten(con, load_id, staged)
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        # row_count is what raw holds once published; staged_rows what the file gave before the gate quarantined.
        ops.upgrade_loads(con)
        kept = _unchanged_tables(con)
        for table in TABLES:
            if table.name in kept:
                pass  # the file was not parsed again and the gate moved nothing out: raw keeps the very table
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


def _side(con: Connection, table: Table, schema: str) -> str:
    """SELECT key, h, p: each row's key (as its own type: grouping by text costs more), its hash and its hash
    with the provenance (file, spreadsheet row)."""
    row_hash = _row_hash(con, table, schema)
    key = f'"{table.key}"' if table.key else row_hash
    placed = f"hash({row_hash}, {SOURCE_FILE_COLUMN}, {SOURCE_ROW_COLUMN})"
    return f'SELECT {key} AS key, {row_hash} AS h, {placed} AS p FROM {schema}."{table.name}"'


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
