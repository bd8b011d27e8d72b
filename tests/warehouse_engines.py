"""A warehouse on each engine kizuna's Connection speaks: a DuckDB file and a database of the session's PostgreSQL.

`engine_target` is parametrized over both; a test taking it (or `engine_con`) runs once per engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from kizuna.core.connection import Connection, connect
from tests.postgres_server import PostgresServer

ENGINES = ["duckdb", "postgresql"]
# DuckDB's column types as PostgreSQL spells them (DECIMAL(p,s) is numeric(p,s), below); any other type is refused.
PG_TYPES = {
    "VARCHAR": "text",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "HUGEINT": "numeric(39, 0)",
    "UBIGINT": "numeric(20, 0)",
    "UHUGEINT": "numeric(39, 0)",
    "DOUBLE": "double precision",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "BOOLEAN": "boolean",
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


@pytest.fixture(params=ENGINES)
def engine_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A new, empty warehouse: a DuckDB file's path, or a new PostgreSQL database's postgresql:// URL."""
    if request.param == "duckdb":
        return tmp_path / "warehouse.duckdb"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"engines_{abs(hash(request.node.nodeid)) % 10**8}"
    server.create_database(name)
    return server.url(name)


@pytest.fixture
def engine_con(engine_target: Path | str) -> Iterator[Connection]:
    with connect(engine_target) as opened:
        yield opened


def copy_schemas(duckdb_path: Path, target: Path | str, schemas: Sequence[str]) -> None:
    """The schemas of a DuckDB file, every table with its rows, in place of the same schemas of `target` (a DuckDB
    file or a postgresql:// URL): a warehouse staged by DuckDB-only code, to check on either engine.

    Values travel as text (a DuckDB HUGEINT would not survive a float) and are cast back to each column's type;
    a view arrives as a table of its rows, and a schema the file lacks is gone from `target` too."""
    on_postgres = not isinstance(target, Path)
    with connect(duckdb_path, read_only=True) as source, connect(target) as into:
        columns = source.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema IN ({', '.join('?' for _ in schemas)}) ORDER BY table_schema, table_name, "
            "ordinal_position",
            list(schemas),
        ).fetchall()
        present = {str(r[0]) for r in source.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
        tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for schema, table, column, kind in columns:
            tables.setdefault((schema, table), []).append((column, _pg_type(kind) if on_postgres else kind))
        for schema in schemas:
            into.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            if schema in present:
                into.execute(f"CREATE SCHEMA {schema}")
        for (schema, table), cols in tables.items():
            name = f'{schema}."{table}"'
            definition = ", ".join(f'"{c}" {kind}' for c, kind in cols)
            into.execute(f"CREATE TABLE {name} ({definition})")
            as_text = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c, _ in cols)
            frame = source.execute(f"SELECT {as_text} FROM {name}").df()
            if frame.empty:
                continue
            into.register("_copied", frame)
            cast = ", ".join(f'CAST("{c}" AS {kind})' for c, kind in cols)
            into.execute(f"INSERT INTO {name} SELECT {cast} FROM _copied")
            into.unregister("_copied")


def _pg_type(duckdb_type: str) -> str:
    decimal = _DECIMAL.match(duckdb_type)
    if decimal:
        return f"numeric({decimal[1]}, {decimal[2]})"
    if duckdb_type not in PG_TYPES:
        raise ValueError(f"copy_schemas does not know DuckDB's type {duckdb_type} on PostgreSQL: add it to PG_TYPES")
    return PG_TYPES[duckdb_type]
