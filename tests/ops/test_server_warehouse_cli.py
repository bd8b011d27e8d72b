"""A PostgreSQL warehouse given on the command line: its password reaches no file the command writes."""

from __future__ import annotations

from pathlib import Path

from tests.ops.conftest import AS_OF, kizuna
from tests.postgres_server import PostgresServer

PASSWORD = "pw-on-the-command-line-5521"


def test_a_warehouse_url_on_the_command_line_leaves_its_password_in_no_file(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    # Before: dbt wrote the command line (`kizuna build --warehouse postgresql://kizuna:<password>@…`) into
    # var/dbt/logs/dbt.log and var/dbt/target/run_results.json. A build on an empty database fails (no raw
    # tables), after dbt has written both.
    postgres_server.create_database("cli_build")
    url = postgres_server.url("cli_build", password=PASSWORD)
    done = kizuna(tmp_path, "build", "--warehouse", url, "--as-of", AS_OF.isoformat(), timeout=300)
    assert done.returncode == 1 and 'relation "raw.customers" does not exist' in done.stdout, done.stdout
    dbt_log = tmp_path / "var" / "dbt" / "logs" / "dbt.log"
    assert "--warehouse postgresql://kizuna@127.0.0.1" in dbt_log.read_text(encoding="utf-8")  # dbt logged it
    written = [p for p in (tmp_path / "var").rglob("*") if p.is_file()]
    assert [p for p in written if PASSWORD.encode() in p.read_bytes()] == [] and PASSWORD not in done.stdout
