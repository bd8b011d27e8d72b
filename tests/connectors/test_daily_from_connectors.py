"""The daily flow end to end with no source files: CRM tables from HubSpot, billing from Stripe, usage from
PostgreSQL. Each pull goes through the official client (or psycopg2) to a stand-in or a real server; the raw
tables must hold what the demo's files hold, and the marts and campaigns run on them as on files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from kizuna.core.contract import TABLES, TABLES_BY_NAME
from kizuna.core.warehouse import connect
from kizuna.demo.generate import generate_demo_data
from kizuna.sources.files import stage_file
from tests.postgres_server import PostgresServer
from tests.standins.hubspot_api import HubSpotStandin, hubspot_id
from tests.standins.stripe_api import StripeStandin
from tests.standins.stripe_api import seed_from_demo as seed_stripe

AS_OF = dt.date(2026, 11, 23)
ROUTES = {
    **dict.fromkeys(("customers", "contacts", "deals", "activities", "support_tickets"), "hubspot"),
    "subscriptions": "stripe",
    "invoices": "stripe",
    "usage": "postgres",
}
PG_PASSWORD = "pg-e2e-Pa55word"


def _keys(con: Any, schema: str, table: str) -> list[str]:
    """The table's keys; HubSpot gives its records its own ids (the demo id's digits), except companies,
    whose customer_id is a company property."""
    key = TABLES_BY_NAME[table].key or "concat_ws('|', customer_id, month, metric)"
    keys = [str(r[0]) for r in con.execute(f"SELECT {key} FROM {schema}.{table}").fetchall()]
    if schema == "demo" and ROUTES[table] == "hubspot" and table != "customers":
        keys = [hubspot_id(k) for k in keys]
    return sorted(keys)


def test_daily_runs_on_hubspot_stripe_and_postgres_alone(
    prefect_harness: None, postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.daily import daily

    demo = tmp_path / "demo"
    generate_demo_data(demo, customers=150, seed=5, as_of=AS_OF)
    empty = tmp_path / "no-files"
    empty.mkdir()
    postgres_server.create_database("kizuna_e2e")
    postgres_server.load_csv("kizuna_e2e", demo / "usage.csv")

    with HubSpotStandin() as hubspot, StripeStandin() as stripe:
        seeded = hubspot.seed_from_demo(demo)
        seed_stripe(stripe.state, demo)
        config = tmp_path / "sources.yaml"
        config.write_text(yaml.safe_dump({"tables": ROUTES, "hubspot": seeded.options}), encoding="utf-8")
        env = {
            "KIZUNA_SOURCES_CONFIG": str(config),
            "KIZUNA_HUBSPOT_TOKEN": hubspot.state.token,
            "KIZUNA_HUBSPOT_BASE_URL": hubspot.url,
            "KIZUNA_STRIPE_API_KEY": stripe.state.api_key,
            "KIZUNA_STRIPE_API_BASE": stripe.base,
            "KIZUNA_POSTGRES_DSN": postgres_server.url("kizuna_e2e", PG_PASSWORD),
            "KIZUNA_VAR_DIR": str(tmp_path / "var"),
            "KIZUNA_OUTBOX_DIR": str(tmp_path / "var" / "outbox"),
            "KIZUNA_SEND_WINDOW": "00:00-24:00",
            "KIZUNA_SEND_ON_BUSINESS_DAYS_ONLY": "false",
            # dbt in the flow's one dbt-build task, as `kizuna run` builds: a task run per dbt node shows
            # nothing about the connectors and costs ≈ 30 s; tests/flows/test_support.py keeps that path.
            "KIZUNA_DBT_NODE_TASKS": "never",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        warehouse = tmp_path / "warehouse.duckdb"
        summary = daily(source_dir=str(empty), warehouse=str(warehouse), as_of=AS_OF)
        secrets = [hubspot.state.token, stripe.state.api_key, PG_PASSWORD]

    assert summary.models_built >= 10 and summary.checks_passed > 0
    with connect(warehouse) as con:
        con.execute("SET TimeZone = 'Asia/Tokyo'")
        con.execute("CREATE SCHEMA demo")
        for table in TABLES:
            if not (demo / f"{table.name}.csv").exists():  # fx_rates: optional, the demo relies on the seed
                continue
            staged, findings, _ = stage_file(con, table, demo / f"{table.name}.csv", "demo", tmp_path)
            assert staged is not None and not findings
            # Every record of every table arrived, from the source its route names, and nothing else did.
            assert _keys(con, "raw", table.name) == _keys(con, "demo", table.name), table.name
        loads = dict(con.execute("SELECT table_name, encoding FROM ops.loads").fetchall())
        customers = con.execute("SELECT count(*) FROM marts.customers").fetchone()[0]
        mrr = con.execute("SELECT sum(mrr) FROM raw.subscriptions WHERE status = 'active'").fetchone()[0]
        demo_mrr = con.execute(
            "SELECT sum(coalesce(mrr, round(amount / billing_period_months))) FROM demo.subscriptions "
            "WHERE status = 'active'"
        ).fetchone()[0]
        cursors = {r[0]: r[1] for r in con.execute("SELECT table_name, source FROM connector_state.cursors").fetchall()}
        sends = con.execute("SELECT count(*) FROM ops.send_ledger").fetchone()[0]
        stored_text = " ".join(
            str(v) for r in con.execute("SELECT * FROM connector_state.cursors").fetchall() for v in r
        )
    assert {t: loads[t].split()[0] for t in ROUTES} == ROUTES
    assert customers == 150
    assert mrr == demo_mrr
    assert cursors == ROUTES  # one committed cursor per pulled table, naming its source
    assert sends > 0  # campaigns selected and sent from connector-fed marts
    assert not any(secret in stored_text for secret in secrets)
