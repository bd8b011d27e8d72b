"""A load staged and published on each engine: the same files give the same raw tables on a PostgreSQL warehouse.

On a server, DuckDB parses the files in a staging file (the same reader, contract and findings) and the staged
tables are copied in; the gate and the publish run on the server (kizuna.sources.ingest._stage_for_server).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kizuna.core.connection import WarehouseError
from kizuna.core.errors import SourceContractError
from kizuna.core.publish import copy_staged_to_server, publish_load
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect, staged_load_id, table_exists
from kizuna.sources.ingest import stage_sources
from tests.conftest import write_csv
from tests.dbt.helpers import normalised
from tests.postgres_server import PostgresServer

CUSTOMERS = ["customer_id", "name", "industry", "country", "created_at", "employee_count"]
SUBSCRIPTIONS = ["subscription_id", "customer_id", "start_date", "end_date", "mrr", "currency", "status"]


def write_sources(directory: Path, *, extra_customer: bool = False) -> Path:
    """A small export by hand: Japanese names, a blank optional value, yen with a half yen, a quoted comma."""
    directory.mkdir(parents=True, exist_ok=True)
    customers = [
        ["C001", "株式会社テスト", "製造", "JP", "2024-04-01 09:00:00", "120"],
        ["C002", "Acme, Inc.", "", "US", "2024-05-10 18:30:00", ""],
        ["C003", "有限会社サンプル", "小売", "JP", "2025-01-15 00:00:00", "8"],
    ]
    if extra_customer:
        customers.append(["C004", "合同会社あたらしい", "IT", "JP", "2026-10-01 10:00:00", "3"])
    write_csv(directory / "customers.csv", CUSTOMERS, customers)
    write_csv(
        directory / "subscriptions.csv",
        SUBSCRIPTIONS,
        [
            ["S001", "C001", "2025-01-01", "", "50000", "JPY", "active"],
            ["S002", "C002", "2025-02-01", "2026-01-31", "1234.5", "USD", "cancelled"],
            ["S003", "C003", "2025-03-01", "", "98000", "JPY", "active"],
        ],
    )
    return directory


def settings_for(root: Path, warehouse: Path | str) -> Settings:
    return Settings(source_dir=root / "src", warehouse=warehouse, var_dir=root / "var")  # type: ignore[arg-type]


def stage_and_publish(settings: Settings) -> dict[str, int]:
    stage_sources(settings)
    with connect(settings.warehouse_target) as con:
        load_id = staged_load_id(con)
        assert load_id is not None
        return publish_load(con, load_id)


def raw_table(target: Path | str, table: str, key: str) -> pd.DataFrame:
    with connect(target, read_only=True) as con:
        return normalised(con.execute(f"SELECT * FROM raw.{table}").df(), [key])


def test_the_same_files_publish_the_same_raw_tables_on_each_engine(engine_target: Path | str, tmp_path: Path) -> None:
    write_sources(tmp_path / "src")
    counts = stage_and_publish(settings_for(tmp_path, engine_target))
    assert counts["customers"] == 3 and counts["subscriptions"] == 3 and counts["invoices"] == 0

    reference = tmp_path / "reference"
    write_sources(reference / "src")
    stage_and_publish(settings_for(reference, reference / "warehouse.duckdb"))
    for table, key in (("customers", "customer_id"), ("subscriptions", "subscription_id")):
        pd.testing.assert_frame_equal(
            raw_table(engine_target, table, key), raw_table(reference / "warehouse.duckdb", table, key), obj=table
        )
    with connect(engine_target, read_only=True) as con:
        assert not table_exists(con, "raw_incoming", "_load")  # the staged load is gone once published
        assert con.execute("SELECT mrr FROM raw.subscriptions WHERE subscription_id = 'S002'").fetchone()[0] == (
            pytest.approx(1234.5)
        )
        loads = con.execute("SELECT table_name, row_count FROM ops.loads ORDER BY table_name").fetchall()
    assert loads == [("customers", 3), ("subscriptions", 3)]
    assert not list((tmp_path / "var" / "tmp").glob("*.duckdb*"))  # the server's staging file does not stay


def test_a_second_load_on_postgresql_replaces_raw_and_a_bad_file_keeps_it(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    postgres_server.create_database("staging_twice")
    settings = settings_for(tmp_path, postgres_server.url("staging_twice"))
    write_sources(tmp_path / "src")
    stage_and_publish(settings)

    # dbt's staging views read raw: PostgreSQL binds a view to its tables, so a publish that dropped them failed.
    with connect(settings.warehouse_target) as con:
        con.execute("CREATE SCHEMA staging")
        con.execute("CREATE VIEW staging.customers AS SELECT customer_id, employee_count FROM raw.customers")
        con.execute("CREATE VIEW staging.fx_rates AS SELECT currency, rate FROM raw.fx_rates")  # no file: empty

    write_sources(tmp_path / "src", extra_customer=True)
    result = stage_sources(settings)
    staged = {s.table: s for s in result.staged}
    assert staged["customers"].rows == 4
    assert staged["customers"].changes is None  # not compared on the server: every load is published whole
    with connect(settings.warehouse_target) as con:
        load_id = staged_load_id(con)
        assert load_id == result.load_id
        publish_load(con, load_id)
        assert con.execute("SELECT count(*) FROM raw.customers").fetchone() == (4,)
        assert con.execute("SELECT count(*) FROM staging.customers").fetchone() == (4,)
        assert con.execute("SELECT count(*) FROM staging.fx_rates").fetchone() == (0,)
        money = con.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'raw.subscriptions'::regclass "
            "AND attname = 'mrr'"
        ).fetchone()
        assert money == ("numeric(18,2)",)  # the contract's money type, kept through every publish

    # A row the contract refuses: named by file, row and column; raw on the server keeps the last good load.
    write_csv(
        tmp_path / "src" / "subscriptions.csv",
        SUBSCRIPTIONS,
        [["S001", "C001", "2025-13-45", "", "50000", "JPY", "active"]],
    )
    with pytest.raises(SourceContractError) as failed:
        stage_sources(settings)
    assert "subscriptions.csv" in str(failed.value) and "start_date" in str(failed.value)
    with connect(settings.warehouse_target, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.subscriptions").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM raw.customers").fetchone() == (4,)


def test_a_copy_to_the_server_that_fails_half_way_leaves_no_staged_load(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    # Before: the tables were copied straight into raw_incoming, _load among the first, so a copy that failed or was
    # killed half way left a staged load whose missing tables the gate would have published empty.
    postgres_server.create_database("copy_half_way")
    url = postgres_server.url("copy_half_way")
    with connect(url) as server:
        server.execute("CREATE SCHEMA raw_incoming")  # an earlier staged load, not published
        server.execute("CREATE TABLE raw_incoming._load (load_id TEXT)")
        server.execute("INSERT INTO raw_incoming._load VALUES ('earlier')")
    with connect(tmp_path / "staging.duckdb") as local:
        local.execute("CREATE SCHEMA raw_incoming")
        local.execute("CREATE TABLE raw_incoming._load AS SELECT 'today' AS load_id")
        local.execute("CREATE TABLE raw_incoming.customers AS SELECT 'C1' AS customer_id")
        local.execute("CREATE TABLE raw_incoming.zz_unreadable AS SELECT [1, 2] AS ids")  # not CSV PostgreSQL reads
    with connect(tmp_path / "staging.duckdb", read_only=True) as local, connect(url) as server:
        with pytest.raises(WarehouseError):
            copy_staged_to_server(local, server, tmp_path / "copy")
        assert staged_load_id(server) is None
        schemas = server.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'raw%'")
        assert schemas.fetchall() == []
