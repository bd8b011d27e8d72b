"""A warehouse on each engine kizuna's Connection speaks: a DuckDB file and a database of the session's PostgreSQL.

`engine_target` is parametrized over both; a test taking it (or `engine_con`) runs once per engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kizuna.core.connection import Connection, connect
from tests.postgres_server import PostgresServer

ENGINES = ["duckdb", "postgresql"]


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
