"""One throwaway PostgreSQL server on loopback for the whole test session (dbt portability, the SQL source).

Debian's server binaries (package postgresql) run a cluster in a temporary directory on a free port, with
trust authentication on 127.0.0.1 only. initdb refuses to run as root, so as root the server runs as
Debian's `postgres` system user. Each user of the fixture works in a database of its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "kizuna"
PG_DATABASE = "kizuna"


def postgres_bin_dir() -> Path | None:
    """Debian's server binaries (package postgresql), the newest major version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    port: int

    def connect(self, dbname: str = PG_DATABASE):  # type: ignore[no-untyped-def]
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname=dbname)

    def create_database(self, dbname: str) -> None:
        con = self.connect("postgres")
        con.autocommit = True
        try:
            con.cursor().execute(f'DROP DATABASE IF EXISTS "{dbname}"')
            con.cursor().execute(f'CREATE DATABASE "{dbname}"')
        finally:
            con.close()

    def load_csv(self, dbname: str, path: Path, table: str | None = None, schema: str = "public") -> int:
        """A contract CSV (e.g. from `kizuna demo-data`) as a table of text columns; returns its row count."""
        import csv

        from psycopg2 import sql

        with path.open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh))
        name = sql.Identifier(schema, table or path.stem)
        columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in header)
        con = self.connect(dbname)
        try:
            with con, con.cursor() as cur, path.open(encoding="utf-8") as fh:
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
                cur.execute(sql.SQL("CREATE TABLE {} ({})").format(name, columns))
                cur.copy_expert(
                    sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)").format(name).as_string(cur), fh
                )
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(name))
                return int(cur.fetchone()[0])
        finally:
            con.close()

    def url(self, dbname: str, password: str = "") -> str:
        """A postgresql:// URL (trust authentication accepts any password)."""
        secret = f":{password}" if password else ""
        return f"postgresql://{PG_USER}{secret}@127.0.0.1:{self.port}/{dbname}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "KIZUNA_PG_HOST": "127.0.0.1",
            "KIZUNA_PG_PORT": str(self.port),
            "KIZUNA_PG_USER": PG_USER,
            "KIZUNA_PG_DBNAME": PG_DATABASE,
        }


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (skips when the server binaries are not installed)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); apt-get install postgresql")
    as_root = os.geteuid() == 0
    # Not under pytest's tmp_path: its parents are private to root, and the server user must enter it.
    base = Path(tempfile.mkdtemp(prefix="kizuna-pg-"))
    data = base / "data"
    if as_root:
        shutil.chown(base, "postgres", "postgres")

    def run(*command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
    port = free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    run(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "server.log"),
        "-o",
        options,
        "-w",
        "-t",
        "30",
        "start",
    )
    try:
        yield PostgresServer(port)
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
