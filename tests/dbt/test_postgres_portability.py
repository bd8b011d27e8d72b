"""The same dbt project builds on a real PostgreSQL server and gives the same numbers as on DuckDB."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from kizuna.core.connection import Connection
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
    from kizuna.core.connection import connect
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
    from dataclasses import asdict

    from kizuna.campaigns.audience import audience_sql
    from kizuna.campaigns.call_list import CALL_LIST_TABLE, build_call_list
    from kizuna.campaigns.context import active_customer_contexts, owner_digest_keys
    from kizuna.campaigns.select import select_recipients
    from kizuna.campaigns.spec import load_campaigns
    from kizuna.core import ops
    from kizuna.core.connection import connect
    from kizuna.core.settings import Settings
    from kizuna.crm.plan import build_plan
    from kizuna.studio.samples import _recipients as studio_recipients

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
        out["owner digest's variables"] = sorted(owner_digest_keys(con))  # what `templates lint` checks against
        for table in (ops.CAMPAIGN_RECIPIENTS, ops.CAMPAIGN_EXCLUSIONS):
            out[str(table)] = rows(
                con, f"SELECT * FROM {table} ORDER BY campaign, run_id, customer_id, contact_id NULLS FIRST"
            )
        # What a template preview gives (`kizuna templates preview --customer`, the studio's samples) and what the
        # CRM write-back wants (accounts' fields, the call list's and CSQLs' tasks).
        out["contexts"] = [_comparable(c) for c in active_customer_contexts(con, 25)]
        out["studio samples"] = [asdict(sample) for sample in studio_recipients(con, [c.name for c in campaigns])]
        plan = build_plan(con, Settings(), AS_OF)
        out["crm accounts"] = [
            _comparable({"customer_id": a.customer_id, "owner_email": a.owner_email, **a.values}) for a in plan.accounts
        ]
        out["crm tasks"] = [_comparable(asdict(t)) for t in plan.tasks]
        return out

    def rows(con: Connection, sql: str) -> list[dict[str, object]]:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [_comparable(dict(zip(names, r, strict=True))) for r in cur.fetchall()]

    with duckdb.connect(str(builds.duckdb.warehouse)) as duck:  # as above: dbt-duckdb holds the file's configuration
        on_duckdb = selected(duck)
    counts = {name: len(rows) for name, rows in on_duckdb.items()}
    assert counts["call list"] and sum(counts.values()) > len(counts), counts  # something to compare
    assert "accounts" in on_duckdb["owner digest's variables"], on_duckdb["owner digest's variables"]
    assert counts["contexts"] and counts["crm accounts"] and counts["crm tasks"] and counts["studio samples"], counts
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


SCORED_AT = datetime(2026, 11, 23, 6, 0)


def _scored(con: Connection) -> dict[str, pd.DataFrame]:
    """The scoring step on one warehouse, as score_warehouse runs it on its connections: train on the marts, score
    the as-of customers and open deals, write marts.customer_scores and marts.deal_forecasts; and both read back."""
    from kizuna.core.settings import Settings
    from kizuna.scoring.deals import forecast_deals
    from kizuna.scoring.features import load_scoring_rows
    from kizuna.scoring.run import score_customers, write_marts
    from kizuna.scoring.training import train_models

    @contextmanager
    def this_connection() -> Iterator[Connection]:
        yield con

    settings = Settings()
    bundle = train_models(
        this_connection,
        AS_OF,
        settings.scores_model,
        settings.scores_seed,
        settings.scores_validation_months,
        SCORED_AT,
    )
    customers = score_customers(load_scoring_rows(con), bundle.scores)
    customers["model_version"], customers["scored_at"] = bundle.version, SCORED_AT
    deals = forecast_deals(con, AS_OF, bundle.deal_model)
    deals["model_version"], deals["as_of"], deals["scored_at"] = bundle.version, AS_OF, SCORED_AT
    write_marts(con, customers, deals)
    return {
        "customer_scores": con.execute("SELECT * FROM marts.customer_scores ORDER BY customer_id").df(),
        "deal_forecasts": con.execute("SELECT * FROM marts.deal_forecasts ORDER BY deal_id").df(),
    }


def test_scores_and_deal_forecasts_are_the_same_on_postgres_and_duckdb(builds: Builds) -> None:
    """The scoring step (issue 24) trains on the features dbt built on PostgreSQL and writes the same scores,
    factors, forecasts and bands as on the DuckDB build: same customers and deals, probabilities to 1e-9."""
    from kizuna.core.connection import connect

    with duckdb.connect(str(builds.duckdb.warehouse)) as duck:  # as above: dbt-duckdb holds the file's configuration
        on_duckdb = _scored(duck)
    with connect(builds.postgres.url(PG_DATABASE)) as pg:
        on_postgres = _scored(pg)
    scores, deals = on_duckdb["customer_scores"], on_duckdb["deal_forecasts"]
    assert len(scores) > 100 and deals["win_probability"].notna().sum() > 10  # something to compare
    assert scores["churn_factors_en"].str.len().gt(0).any()
    for table, expected in on_duckdb.items():
        got = on_postgres[table]
        assert list(got.columns) == list(expected.columns), table
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-12, obj=table)
    # the same order of customers by risk (what campaigns and call lists rank by), and the same deal bands
    for column in ("churn_risk", "expansion_propensity"):
        ranked = [
            s.sort_values([column, "customer_id"], ascending=[False, True])["customer_id"].tolist()
            for s in (scores, on_postgres["customer_scores"])
        ]
        assert ranked[0] == ranked[1], column
    assert on_postgres["deal_forecasts"]["activity_band"].tolist() == deals["activity_band"].tolist()


def test_the_training_sample_is_the_same_customers_on_postgres_and_duckdb(builds: Builds) -> None:
    """Beyond MAX_TRAINING_ROWS the training rows are a sample of customers drawn from their ids and the seed:
    the same customers, with all their snapshots, on both engines."""
    from kizuna.core.connection import connect
    from kizuna.scoring.features import load_training_rows

    def sampled(con: Connection) -> tuple[pd.DataFrame, int, pd.DataFrame]:
        whole, labelled = load_training_rows(con, 7)
        sample, _ = load_training_rows(con, 7, max_rows=labelled // 3)
        return whole, labelled, sample

    with duckdb.connect(str(builds.duckdb.warehouse)) as duck:
        whole, labelled, on_duckdb = sampled(duck)
    with connect(builds.postgres.url(PG_DATABASE), read_only=True) as pg:
        _, pg_labelled, on_postgres = sampled(pg)
    assert pg_labelled == labelled == len(whole)
    assert 0.2 * labelled < len(on_duckdb) < 0.5 * labelled  # about a third: a sample, not everything
    kept = set(on_duckdb["customer_id"])
    assert len(on_duckdb) == whole["customer_id"].isin(kept).sum()  # every snapshot of a sampled customer
    pd.testing.assert_frame_equal(on_postgres, on_duckdb)


# Columns dbt types differently on PostgreSQL (the values are equal): divide_rounded's round() is an unconstrained
# numeric there, DuckDB's a DECIMAL(18,2); date differences and counts are other integer or double types.
TYPED_DIFFERENTLY_BY_DBT = {
    "mrr_kpis_monthly": {"arpa"},
    "existing_customer_revenue_monthly": {"average_mrr_per_existing_customer"},
    "customers": {
        "days_to_renewal",
        "days_since_last_touch",
        "touches_last_90_days",
        "conversations_last_90_days",
        "tickets_last_90_days",
    },
    "subscription_renewals": {"days_to_renewal"},
}


def test_mart_exports_are_the_same_files_from_postgres_and_duckdb(builds: Builds, tmp_path: Path) -> None:
    """`kizuna export` of the marts dbt built (issue 24): from PostgreSQL the same Parquet columns and rows, and
    the same CSV bytes, as from the DuckDB build, sorted by each mart's grain; but for the columns dbt itself types
    differently on PostgreSQL (TYPED_DIFFERENTLY_BY_DBT), whose values are equal."""
    from decimal import Decimal

    from kizuna.core.connection import connect
    from kizuna.reporting.export import mart_grain, write_export
    from tests.dbt.helpers import PROJECT_DIR

    def exported(con: Connection, name: str) -> dict[str, tuple[bytes, dict[str, str], list[tuple[object, ...]]]]:
        out = {}
        for mart in MARTS:
            grain = mart_grain(PROJECT_DIR, mart)
            csv, parquet = tmp_path / name / f"{mart}.csv", tmp_path / name / f"{mart}.parquet"
            assert write_export(con, mart, "csv", csv, grain) == write_export(con, mart, "parquet", parquet, grain)
            with duckdb.connect() as reader:
                read = f"FROM read_parquet('{parquet}')"
                types = {r[0]: r[1] for r in reader.sql(f"DESCRIBE SELECT * {read}").fetchall()}
                values = [
                    tuple(float(v) if isinstance(v, Decimal) else v for v in row)
                    for row in reader.sql(f"SELECT * {read}").fetchall()
                ]
            out[mart] = (csv.read_bytes(), types, values)
        return out

    with duckdb.connect(str(builds.duckdb.warehouse)) as duck:
        on_duckdb = exported(duck, "duckdb")
    with connect(builds.postgres.url(PG_DATABASE), read_only=True) as pg:
        on_postgres = exported(pg, "postgres")
    for mart, (csv, types, values) in on_duckdb.items():
        pg_csv, pg_types, pg_values = on_postgres[mart]
        assert values and pg_values == values, mart
        assert list(pg_types) == list(types), mart
        assert {c for c in types if pg_types[c] != types[c]} == TYPED_DIFFERENTLY_BY_DBT.get(mart, set()), mart
        if not any(types[c].startswith("DECIMAL") for c in TYPED_DIFFERENTLY_BY_DBT.get(mart, ())):
            assert pg_csv == csv, mart  # a DECIMAL(18,2) typed as a double is written 1.5, not 1.50
