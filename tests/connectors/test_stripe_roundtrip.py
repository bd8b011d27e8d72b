"""Demo CSVs -> Stripe objects in the stand-in -> the connector -> raw tables give back the demo's rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import SecretStr

from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.demo.generate import generate_demo_data
from kizuna.sources.files import stage_file
from kizuna.sources.ingest import stage_sources
from tests.standins.stripe_api import StripeStandin, seed_from_demo

AS_OF = dt.date(2026, 11, 23)

# The demo gives mrr for monthly rows and amount for yearly ones; the connector gives both (amount per
# billing period, mrr normalised and rounded as dbt rounds): compare each with what the demo implies.
SUBSCRIPTIONS = """
    SELECT subscription_id, customer_id, start_date, end_date,
           coalesce(mrr, round(amount / billing_period_months, CASE WHEN currency = 'JPY' THEN 0 ELSE 2 END)) AS mrr,
           coalesce(amount, mrr * billing_period_months) AS amount,
           billing_period_months, product, plan, quantity, plan_limit, contract_term_months, currency, status,
           cancel_reason
    FROM {schema}.subscriptions
"""
INVOICES = "SELECT * EXCLUDE (_source_file, _source_row) FROM {schema}.invoices"


def test_demo_rows_survive_the_trip_through_stripe(settings: Settings, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    generate_demo_data(demo, 30, 11, AS_OF)
    with StripeStandin() as stripe:
        counts = seed_from_demo(stripe.state, demo)
        s = settings.model_copy(
            update={
                "source_dir": demo,
                "table_sources": "subscriptions=stripe,invoices=stripe",
                "stripe_api_key": SecretStr(stripe.state.api_key),
                "stripe_api_base": stripe.base,
            }
        )
        stage_sources(s)  # what the gate then checks and publishes
    assert counts["subscriptions"] > 30 and counts["invoices"] > 300
    with connect(s.warehouse) as con:
        con.execute(f"SET TimeZone = '{s.timezone}'")
        con.execute("CREATE SCHEMA demo")
        for table in ("subscriptions", "invoices"):
            staged, findings, _ = stage_file(con, TABLES_BY_NAME[table], demo / f"{table}.csv", "demo", tmp_path)
            assert staged is not None and not findings
        for query in (SUBSCRIPTIONS, INVOICES):
            demo_rows = con.execute(query.format(schema="demo")).fetchall()
            pulled = con.execute(query.format(schema="raw_incoming")).fetchall()
            assert len(pulled) == len(demo_rows)
            assert sorted(pulled, key=str) == sorted(demo_rows, key=str)
        statuses = dict(con.execute("SELECT status, count(*) FROM raw_incoming.subscriptions GROUP BY 1").fetchall())
    assert {"active", "canceled"} <= set(statuses)
