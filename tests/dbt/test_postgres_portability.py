"""The same dbt project builds on a real PostgreSQL server and gives the same numbers as on DuckDB."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.dbt.helpers import NO_UNIT_TESTS, Build, dbt_build, load_source_dir, normalised, run_dbt
from tests.postgres_server import PG_DATABASE, PostgresServer

AS_OF = date(2026, 11, 23)
DEMO_CUSTOMERS = 300

# DuckDB's types in the raw and ops schemas, as PostgreSQL spells them; anything else travels as text.
PG_TYPES = {
    "VARCHAR": "text",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DOUBLE": "double precision",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "BOOLEAN": "boolean",
}

# Marts compared, with the columns that make their rows unique.
MARTS = {
    "mrr_kpis_monthly": ["month"],
    "customer_mrr_monthly": ["customer_id", "month"],
    "customers": ["customer_id"],
    "customer_signals": ["customer_id", "signal"],
    "cohort_retention_monthly": ["cohort_month", "month"],
    "existing_customer_revenue_monthly": ["month", "breakdown", "band"],
    "inside_sales_kpis_monthly": ["month"],
    "inside_sales_kpis_monthly_by_owner": ["month", "owner_email"],
    "subscription_renewals": ["subscription_id"],
}


@pytest.fixture(scope="module")
def postgres(postgres_server: PostgresServer) -> PostgresServer:
    """The session's PostgreSQL server (tests/postgres_server.py), with this module's database."""
    pytest.importorskip("dbt.adapters.postgres", reason="dbt-postgres is not installed")
    postgres_server.create_database(PG_DATABASE)
    return postgres_server


def copy_warehouse_to_postgres(warehouse: Path, server: PostgresServer, workdir: Path) -> None:
    """Every table of the raw and ops schemas, with its rows, into the same schemas on PostgreSQL."""
    duck = duckdb.connect(str(warehouse))
    pg = server.connect()
    try:
        columns = duck.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema IN ('raw', 'ops') ORDER BY table_schema, table_name, ordinal_position"
        ).fetchall()
        tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for schema, table, column, kind in columns:
            pg_kind = PG_TYPES.get(kind, "numeric(18, 2)" if kind == "DECIMAL(18,2)" else "text")
            tables.setdefault((schema, table), []).append((column, pg_kind))
        cur = pg.cursor()
        for (schema, table), cols in tables.items():
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            definition = ", ".join(f'"{column}" {kind}' for column, kind in cols)
            cur.execute(f'CREATE TABLE {schema}."{table}" ({definition})')
            csv = workdir / f"{schema}.{table}.csv"
            duck.execute(f"COPY (SELECT * FROM {schema}.\"{table}\") TO '{csv}' (FORMAT csv, HEADER false)")
            with csv.open() as fh:
                cur.copy_expert(f'COPY {schema}."{table}" FROM STDIN WITH (FORMAT csv)', fh)
        pg.commit()
    finally:
        pg.close()
        duck.close()


@dataclass
class Builds:
    duckdb: Build
    postgres: PostgresServer


@pytest.fixture(scope="module")
def builds(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Builds:
    from kizuna.demo.generate import generate_demo_data

    workdir = tmp_path_factory.mktemp("dbt-portability")
    generate_demo_data(workdir / "src", DEMO_CUSTOMERS, 7, AS_OF)
    warehouse = workdir / "warehouse.duckdb"
    load_source_dir(warehouse, workdir / "src")
    copy_warehouse_to_postgres(warehouse, postgres, workdir)
    run_dbt(workdir / "pg", AS_OF, postgres.env, target="postgres")
    # The incremental models again, from a closed month (docs/incremental.md): their delete and insert run on
    # PostgreSQL too, and the marts compared below must still equal DuckDB's whole build.
    # Their data tests run again on the rebuilt rows; their unit tests (fixed inputs) ran on PostgreSQL above.
    rebuild = {**postgres.env, "KIZUNA_REBUILD_FROM_MONTH": "2025-06"}
    incremental = ("--select", "config.materialized:incremental+", *NO_UNIT_TESTS)
    run_dbt(workdir / "pg", AS_OF, rebuild, target="postgres", extra=incremental)
    return Builds(dbt_build(workdir / "duck", warehouse, AS_OF), postgres)  # unit tests: on DuckDB elsewhere


@pytest.mark.parametrize("mart", list(MARTS), ids=list(MARTS))
def test_mart_is_the_same_on_postgres_and_duckdb(builds: Builds, mart: str) -> None:
    keys = MARTS[mart]
    on_duckdb = builds.duckdb.query(f"select * from marts.{mart}")
    con = builds.postgres.connect()
    try:
        cur = con.cursor()
        cur.execute(f"select * from marts.{mart}")
        on_postgres = pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])
    finally:
        con.close()
    assert len(on_duckdb) > 0, f"{mart} is empty: the comparison would prove nothing"
    assert list(on_postgres.columns) == list(on_duckdb.columns)
    pd.testing.assert_frame_equal(
        normalised(on_postgres, keys), normalised(on_duckdb, keys), check_dtype=False, rtol=1e-9
    )


def test_the_reports_sections_read_the_same_from_postgres_as_from_duckdb(builds: Builds, tmp_path: Path) -> None:
    """The monthly report's sections (issue 24: the reporting step on a server warehouse): every table and note
    a section shows, read from the marts dbt built on PostgreSQL, equals what the DuckDB build gives."""
    from kizuna.core.connection import Connection, connect
    from kizuna.reporting.sections import SECTIONS, ReportContext

    def shown(con: Connection, name: str) -> dict[str, object]:
        ctx = ReportContext(con, AS_OF, "en", "JPY", tmp_path / name)
        sections = [build(ctx) for build in SECTIONS]
        return {s.key: ([(t.title, t.columns, t.rows) for t in s.tables], s.notes, s.missing) for s in sections}

    # DuckDB without kizuna's connect: dbt-duckdb keeps the file open in this process with its own configuration
    with duckdb.connect(str(builds.duckdb.warehouse)) as duck:
        on_duckdb = shown(duck, "duckdb")
    assert any(tables for tables, _, _ in on_duckdb.values())  # the comparison compares something
    with connect(builds.postgres.url(PG_DATABASE), read_only=True) as pg:
        assert shown(pg, "postgres") == on_duckdb


_ISO_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d(\.\d+)?)$")


def _comparable(row: dict[str, object]) -> dict[str, object]:
    """A row as both engines can be compared: JSON text parsed (spacing differs), numbers as floats, and a
    timestamp inside the context JSON written with a space as DuckDB writes it (PostgreSQL's JSON writes ISO 8601's
    'T': docs/scaling.md names this difference)."""
    import json
    from decimal import Decimal

    out: dict[str, object] = {}
    for name, value in row.items():
        if name in ("reasons", "context") and isinstance(value, str):
            value = json.loads(value)
            if isinstance(value, dict):
                value = {k: _ISO_TIMESTAMP.sub(r"\1 \2", v) if isinstance(v, str) else v for k, v in value.items()}
                if isinstance(value.get("accounts"), list):  # an owner digest's accounts: a set, in no set order
                    value["accounts"] = sorted(value["accounts"], key=lambda a: a["customer_id"])
        out[name] = float(value) if isinstance(value, Decimal) else value
    return out


def test_campaign_audiences_selection_and_the_call_list_are_the_same_on_postgres_and_duckdb(builds: Builds) -> None:
    """Every shipped campaign's audience and selection (recipients with their groups and message keys, and every
    exclusion with its reason) and the inside-sales call list (issue 24: campaigns on a server warehouse), from the
    marts dbt built on PostgreSQL, equal what the DuckDB build gives."""
    from kizuna.campaigns.audience import audience_sql
    from kizuna.campaigns.call_list import CALL_LIST_TABLE, build_call_list
    from kizuna.campaigns.select import select_recipients
    from kizuna.campaigns.spec import load_campaigns
    from kizuna.core import ops
    from kizuna.core.connection import Connection, connect
    from kizuna.core.settings import Settings

    campaigns = load_campaigns(Settings().campaigns_dir)

    def selected(con: Connection) -> dict[str, list[dict[str, object]]]:
        out: dict[str, list[dict[str, object]]] = {}
        for campaign in campaigns:
            sql, params = audience_sql(campaign, AS_OF, with_context=False, con=con)
            cur = con.execute(f"SELECT * FROM ({sql}) AS a ORDER BY customer_id", params)
            names = [d[0] for d in cur.description]
            out[campaign.name] = [_comparable(dict(zip(names, r, strict=True))) for r in cur.fetchall()]
        call_list = next(c for c in campaigns if c.name == "daily_call_list")
        build_call_list(con, call_list, "portability", AS_OF)
        out["call list"] = rows(con, f"SELECT * FROM {CALL_LIST_TABLE} WHERE run_id = 'portability' ORDER BY priority")
        # Selection itself: variants (holdout), lawful basis, duplicates, caps, the message keys; and one campaign
        # again with owner_policy owner_digest (no shipped campaign has it): each owner one list of accounts.
        for campaign in campaigns:
            if campaign.kind == "email":
                select_recipients(con, campaign, "portability", AS_OF)
        digest = next(c for c in campaigns if c.name == "cross_sell_analytics")
        select_recipients(con, digest.model_copy(update={"owner_policy": "owner_digest"}), "digest", AS_OF)
        for table in (ops.CAMPAIGN_RECIPIENTS, ops.CAMPAIGN_EXCLUSIONS):
            out[str(table)] = rows(
                con, f"SELECT * FROM {table} ORDER BY campaign, run_id, customer_id, contact_id NULLS FIRST"
            )
        return out

    def rows(con: Connection, sql: str) -> list[dict[str, object]]:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [_comparable(dict(zip(names, r, strict=True))) for r in cur.fetchall()]

    with duckdb.connect(str(builds.duckdb.warehouse)) as duck:  # as above: dbt-duckdb holds the file's configuration
        on_duckdb = selected(duck)
    counts = {name: len(rows) for name, rows in on_duckdb.items()}
    assert counts["call list"] and sum(counts.values()) > len(counts), counts  # something to compare
    assert any(r["variant"] == "owner_digest" for r in on_duckdb[str(ops.CAMPAIGN_RECIPIENTS)])
    with connect(builds.postgres.url(PG_DATABASE)) as pg:
        on_postgres = selected(pg)
    for name, expected in on_duckdb.items():
        got = on_postgres[name]
        differing = [
            (i, {k: (v, got[i].get(k)) for k, v in row.items() if got[i].get(k) != v})
            for i, row in enumerate(expected[: len(got)])
            if got[i] != row
        ]
        assert len(got) == len(expected) and not differing, (name, len(got), len(expected), differing[:3])
