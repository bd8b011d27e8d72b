"""Publishing a staged load on either engine: DuckDB's publish applies the load's delta (kizuna.core.warehouse);
a PostgreSQL warehouse's load, parsed by DuckDB in a staging file (kizuna.sources.ingest) and copied into the
server's incoming schema here, is published there whole in one transaction (docs/scaling.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, TABLES
from kizuna.core.ops import OPS_SCHEMA
from kizuna.core.postgres_warehouse import PostgresConnection
from kizuna.core.raw_delta import HASHES_PREFIX, REPLACE_PREFIX
from kizuna.core.sql_dialect import sql_literal
from kizuna.core.warehouse import (
    INCOMING_SCHEMA,
    LOAD_CHANGES_STAGING,
    RAW_SCHEMA,
    STATE_PREFIX,
    STATE_SCHEMA,
    column_exists,
    publish_incoming,
    staged_tables,
    table_exists,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

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
# Where the staged tables are copied before they become the incoming schema in one rename.
_COPYING_SCHEMA = f"{INCOMING_SCHEMA}_copying"


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


def forget_staged_on_server(server: Connection) -> None:
    """Drop a staged load the server holds (and a copy a killed ingest left): a new load is being staged."""
    server.execute(f"DROP SCHEMA IF EXISTS {INCOMING_SCHEMA} CASCADE")
    server.execute(f"DROP SCHEMA IF EXISTS {_COPYING_SCHEMA} CASCADE")


def copy_staged_to_server(local: Connection, server: Connection, tmp_dir: Path) -> list[str]:
    """Stage on the server the tables a DuckDB staging file staged, typed as DuckDB typed them, rows through CSV and
    COPY (memory stays flat whatever the size); the tables copied.

    They are copied into a schema of their own and renamed the incoming schema at the end: a copy that fails or is
    killed half way leaves no staged load for the gate to publish (tables missing from it would be published empty).
    """
    if not isinstance(server, PostgresConnection):
        raise TypeError("copy_staged_to_server copies into a PostgreSQL warehouse")
    tables = {
        name: columns
        for name, columns in _schema_tables(local, INCOMING_SCHEMA).items()
        if not name.startswith(_LOCAL_ONLY) and name != _LOCAL_ONLY[-1]
    }
    tmp_dir.mkdir(parents=True, exist_ok=True)
    forget_staged_on_server(server)
    server.execute(f"CREATE SCHEMA {_COPYING_SCHEMA}")
    try:
        for name, columns in tables.items():
            target = f'{_COPYING_SCHEMA}."{name}"'
            declared = ", ".join(f'"{column}" {server_type(kind)}' for column, kind in columns)
            server.execute(f"CREATE TABLE {target} ({declared})")
            csv = tmp_dir / f"copy-{name}.csv"
            try:
                local.execute(
                    f'COPY (SELECT * FROM {INCOMING_SCHEMA}."{name}") TO {sql_literal(str(csv))} '
                    "(FORMAT csv, HEADER false)"
                )
                server.copy_csv(target, csv)
            finally:
                csv.unlink(missing_ok=True)
        server.execute(f"ALTER SCHEMA {_COPYING_SCHEMA} RENAME TO {INCOMING_SCHEMA}")
    except BaseException:
        server.execute(f"DROP SCHEMA IF EXISTS {_COPYING_SCHEMA} CASCADE")
        raise
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


def publish_load(con: Connection, load_id: str) -> dict[str, int]:
    """Replace every raw table by the staged load in one transaction (all tables or none); rows per raw table."""
    if isinstance(con, PostgresConnection):
        return _publish_on_server(con, load_id, staged_tables(con))
    return publish_incoming(con, load_id)
