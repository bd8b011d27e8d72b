"""The generic SQL source against a real PostgreSQL server on loopback, through kizuna's ingest and gate."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from kizuna.connectors.base import ChangeSink, ConnectorError
from kizuna.connectors.postgres import PostgresConnector
from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.settings import Settings, settings_with
from kizuna.core.warehouse import connect
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from tests.postgres_server import PostgresServer

AS_OF = dt.date(2026, 11, 23)
DATABASE = "kizuna_source"
PASSWORD = "pg-s3cret-Pw"  # trust authentication ignores it; it must still never be shown

SCHEMA = """
CREATE SCHEMA crm;
CREATE TABLE crm.accounts (
    customer_id text PRIMARY KEY, name text, employee_count integer, created_at timestamptz,
    "Owner_Email" text, internal_note text
);
INSERT INTO crm.accounts VALUES
    ('C1', '株式会社一号', 120, '2024-01-05 10:00+09', 'tanaka@example.co.jp', 'x'),
    ('C2', '二号商事株式会社', 30, '2024-02-01 00:00+00', NULL, NULL),
    ('C3', '三号株式会社', NULL, NULL, NULL, NULL);
CREATE TABLE subscriptions (
    subscription_id text, customer_id text, start_date date, end_date date, mrr numeric(18, 2),
    currency text, status text
);
INSERT INTO subscriptions VALUES
    ('S1', 'C1', '2024-01-01', NULL, 80000, 'JPY', 'active'),
    ('S2', 'C2', '2024-02-01', '2025-02-01', 30000, 'JPY', 'canceled'),
    ('S3', 'C3', '2025-06-01', NULL, 199.99, 'USD', 'active');
CREATE TABLE usage (customer_id text, month date, metric text, value double precision);
INSERT INTO usage SELECT 'C' || (n % 3 + 1), date '2026-01-01' + (n || ' months')::interval, 'active_users', n
    FROM generate_series(1, 7) AS n;
"""


@pytest.fixture
def source_db(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    postgres_server.create_database(DATABASE)
    con = postgres_server.connect(DATABASE)
    with con, con.cursor() as cur:
        cur.execute(SCHEMA)
    con.close()
    yield postgres_server


def execute(server: PostgresServer, statement: str) -> None:
    con = server.connect(DATABASE)
    with con, con.cursor() as cur:
        cur.execute(statement)
    con.close()


def pg_settings(settings: Settings, server: PostgresServer, tmp_path: Path, dsn: str | None = None) -> Settings:
    config = tmp_path / "sources.yaml"
    config.write_text(
        "tables:\n  customers: postgres\n  subscriptions: postgres\n  usage: postgres\n"
        "postgres:\n  tables:\n    customers: crm.accounts\n  fetch_size: 2\n",
        encoding="utf-8",
    )
    return settings.model_copy(
        update={"sources_config": config, "postgres_dsn": SecretStr(dsn or server.url(DATABASE, PASSWORD))}
    )


def test_contract_tables_load_from_postgres_and_follow_its_changes(
    settings: Settings,
    source_db: PostgresServer,
    engine_target: Path | str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Into a DuckDB warehouse, and into a PostgreSQL one (the connector's state kept on the server between loads)."""
    on_engine = settings_with(warehouse=str(engine_target), var_dir=settings.var_dir, source_dir=settings.source_dir)
    s = pg_settings(on_engine, source_db, tmp_path)
    caplog.set_level(logging.DEBUG)
    stage_sources(s)
    gate_and_publish(s, AS_OF)
    with connect(s.warehouse_target, read_only=True) as con:
        customers = con.execute(
            "SELECT customer_id, name, employee_count, created_at, owner_email FROM raw.customers ORDER BY 1"
        ).fetchall()
        subscriptions = con.execute(
            "SELECT subscription_id, mrr, end_date FROM raw.subscriptions ORDER BY 1"
        ).fetchall()
        usage = con.execute("SELECT count(*), sum(value) FROM raw.usage").fetchone()
    assert customers[0] == ("C1", "株式会社一号", 120, dt.datetime(2024, 1, 5, 1, 0), "tanaka@example.co.jp")
    assert customers[2] == ("C3", "三号株式会社", None, None, None)
    assert subscriptions == [
        ("S1", Decimal("80000.00"), None),
        ("S2", Decimal("30000.00"), dt.date(2025, 2, 1)),
        ("S3", Decimal("199.99"), None),
    ]
    assert usage == (7, 28.0)  # seven rows, two at a time through the server-side cursor

    execute(
        source_db,
        "DELETE FROM subscriptions WHERE subscription_id = 'S2'; UPDATE subscriptions SET mrr = 90000 "
        "WHERE subscription_id = 'S1'; INSERT INTO crm.accounts (customer_id, name) VALUES ('C4', '四号')",
    )
    stage_sources(s)  # staged for the gate
    with connect(s.warehouse_target, read_only=True) as con:
        after = con.execute("SELECT subscription_id, mrr FROM raw_incoming.subscriptions ORDER BY 1").fetchall()
        count = con.execute("SELECT count(*) FROM raw_incoming.customers").fetchone()
    assert after == [("S1", Decimal("90000.00")), ("S3", Decimal("199.99"))]  # a snapshot: the deleted row is gone
    assert count == (4,)
    assert PASSWORD not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def pull(settings: Settings, table: str, options: dict[str, object] | None = None) -> ChangeSink:
    contract = TABLES_BY_NAME[table]
    sink = ChangeSink(contract, settings.var_dir / f"{table}.csv")
    try:
        PostgresConnector(settings, options or {}).pull(contract, None, sink)
    finally:
        sink.close()
    return sink


def test_missing_tables_columns_and_duplicate_keys_are_named(
    settings: Settings, source_db: PostgresServer, tmp_path: Path
) -> None:
    s = pg_settings(settings, source_db, tmp_path)
    with pytest.raises(ConnectorError) as no_table:
        pull(s, "contacts")
    assert f"database {DATABASE} on 127.0.0.1:{source_db.port} has no table or view public.contacts" in str(
        no_table.value
    )
    execute(source_db, "CREATE VIEW deals_v AS SELECT 'D1'::text AS deal_id, 1 AS amount")
    with pytest.raises(ConnectorError, match=r"table public\.deals_v has no column customer_id, which the contract"):
        pull(s, "deals", {"tables": {"deals": "deals_v"}})
    execute(source_db, "INSERT INTO subscriptions VALUES ('S1', 'C1', '2025-01-01', NULL, 1, 'JPY', 'active')")
    with pytest.raises(ConnectorError, match=r"subscriptions: column subscription_id must be unique .*'S1' \(2 rows\)"):
        stage_sources(s)


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("postgresql//kizuna:{pw}@127.0.0.1:{port}/kizuna_source", "invalid dsn"),  # a typo: psycopg2 echoes it
        ("postgresql://kizuna:{pw}@127.0.0.1:1/kizuna_source", "could not connect to database kizuna_source on"),
        ("postgresql://kizuna:{pw}@127.0.0.1:{port}/no_such_db", 'database "no_such_db" does not exist'),
        ("host=127.0.0.1 port={port} password={pw} dbname", "invalid dsn"),
    ],
    ids=["url-typo", "refused", "no-database", "broken-key-value"],
)
def test_the_url_and_its_password_stay_out_of_errors(
    settings: Settings, source_db: PostgresServer, tmp_path: Path, dsn: str, says: str
) -> None:
    url = dsn.format(pw=PASSWORD, port=source_db.port)
    s = pg_settings(settings, source_db, tmp_path, url)
    with pytest.raises(ConnectorError) as failed:
        stage_sources(s)
    message = str(failed.value)
    assert says in message
    assert PASSWORD not in message and url not in message
    assert message.startswith("postgres: customers: ")


def test_demo_usage_round_trips_through_postgres(settings: Settings, source_db: PostgresServer, tmp_path: Path) -> None:
    from kizuna.demo.generate import generate_demo_data

    generate_demo_data(tmp_path / "demo", 20, 5, AS_OF)
    rows = source_db.load_csv(DATABASE, tmp_path / "demo" / "usage.csv")  # text columns, as a CSV holds them
    s = pg_settings(settings, source_db, tmp_path)
    sink = pull(s, "usage")
    assert sink.upserts == rows > 0
    with sink.path.open(encoding="utf-8") as pulled, (tmp_path / "demo" / "usage.csv").open(encoding="utf-8") as demo:
        assert sorted(pulled.read().splitlines()[1:]) == sorted(demo.read().splitlines()[1:])
