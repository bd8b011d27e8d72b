"""From SendGrid events to the result that matters, on real parts: the events-load flow on the session's Prefect
harness, one dbt build on a fresh warehouse, then the engagement marts, the inside-sales KPIs and the call list.

Three treatment customers were mailed the shipped cross_sell_analytics template on 3 March 2025 and two were
held out. C1 (an account executive's) clicks its Analytics link, after a security scanner did; C2's click comes
two days before a rep opens a CRM CSQL deal; C3 (no executive) clicks twice. C1 then buys a second product.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pandas as pd
import pytest

from flows.events_load import events_load
from kizuna.campaigns.call_list import build_call_list
from kizuna.campaigns.spec import Audience, Campaign
from kizuna.core import ops
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.tracking.loader import ensure_tracking_tables
from kizuna.tracking.store import EventStore
from kizuna.transform import dbt_runner
from tests.dbt.helpers import create_warehouse
from tests.tracking.conftest import event

T0 = 1_740_960_000  # 2025-03-03 00:00:00 UTC, 09:00 in Tokyo: the send
HOUR = 3600
DAY = 24 * HOUR
AS_OF = date(2025, 7, 10)  # both windows of a 3 March send are over (their last months, April and June, ended)
CAMPAIGN, TEMPLATE, RUN = "cross_sell_analytics", "cross_sell_analytics", "run-1"
ANALYTICS = "https://example.co.jp/products/analytics"  # marked intent: upgrade in the template's intent_links.yml
SELECT = "+campaign_performance +engagement_csqls +inside_sales_kpis_monthly"
TREATMENT, HOLDOUT = ["C1", "C2", "C3"], ["H1", "H2"]


def _raw_tables() -> dict[str, pd.DataFrame]:
    customers = TREATMENT + HOLDOUT
    owners = {"C1": "ae.sato@example.co.jp"}
    subscriptions = [(f"S-{c}", c, date(2025, 1, 1), 10_000.0) for c in customers]
    subscriptions.append(("S-C1-analytics", "C1", date(2025, 4, 10), 5_000.0))  # April: +5,000 expansion
    return {
        "customers": pd.DataFrame(
            {"customer_id": customers, "name": customers, "owner_email": [owners.get(c) for c in customers]}
        ),
        "contacts": pd.DataFrame(
            {
                "contact_id": [f"P-{c}" for c in customers],
                "customer_id": customers,
                "email": [f"{c.lower()}@example.co.jp" for c in customers],
                "is_primary": True,
            }
        ),
        "subscriptions": pd.DataFrame(
            subscriptions, columns=["subscription_id", "customer_id", "start_date", "mrr"]
        ).assign(status="active", currency="JPY", product="CRM Suite"),
        "deals": pd.DataFrame(
            {
                "deal_id": ["D1"],
                "customer_id": ["C2"],
                "type": ["upsell"],
                "stage": ["proposal"],
                "amount": [600_000.0],
                "created_at": [datetime(2025, 3, 5, 1)],
                "source": ["customer_inside_sales"],
            }
        ),
    }


def _select_and_send(con: duckdb.DuckDBPyConnection) -> None:
    """What campaign selection and delivery leave behind: recipients (treatment and holdout) and the ledger."""
    for customer in TREATMENT + HOLDOUT:
        variant = "treatment" if customer in TREATMENT else "holdout"
        con.execute(
            f"""INSERT INTO {ops.CAMPAIGN_RECIPIENTS.name} (run_id, as_of, campaign, variant, customer_id, contact_id, email, locale,
                    occasion, message_key, is_selected, context)
                VALUES (?, DATE '2025-03-03', ?, ?, ?, ?, ?, 'ja', '2025-03', ?, ?, '{{"rank": "B"}}')""",
            [RUN, CAMPAIGN, variant, customer, f"P-{customer}", f"{customer.lower()}@example.co.jp",
             f"send-{customer}", variant == "treatment"],
        )  # fmt: skip
        if variant == "treatment":
            con.execute(
                "INSERT INTO ops.send_ledger (message_key, campaign, contact_id, email, occasion, run_id, state, "
                "claimed_at, finished_at) VALUES (?, ?, ?, ?, '2025-03', ?, 'accepted', ?, ?)",
                [f"send-{customer}", CAMPAIGN, f"P-{customer}", f"{customer.lower()}@example.co.jp", RUN,
                 datetime(2025, 3, 3, 0, 59), datetime(2025, 3, 3, 1)],
            )  # fmt: skip


def _events() -> list[dict[str, object]]:
    args = {"campaign": CAMPAIGN, "run_id": RUN, "template": TEMPLATE}
    return [
        event("d1", "delivered", send_id="send-C1", timestamp=T0 + HOUR, **args),
        event("c1-scan", "click", send_id="send-C1", timestamp=T0 + HOUR + 3, url=ANALYTICS, **args),
        event("c1", "click", send_id="send-C1", timestamp=T0 + 3 * HOUR, url=ANALYTICS, **args),
        event("d2", "delivered", send_id="send-C2", timestamp=T0 + HOUR, **args),
        event("c2", "click", send_id="send-C2", timestamp=T0 + 2 * HOUR, url=ANALYTICS, **args),
        event("d3", "delivered", send_id="send-C3", timestamp=T0 + HOUR, **args),
        event("c3", "click", send_id="send-C3", timestamp=T0 + DAY, url=ANALYTICS + "?utm_source=mail", **args),
        event("c3-again", "click", send_id="send-C3", timestamp=T0 + 7 * DAY, url=ANALYTICS, **args),
        event("c3-help", "click", send_id="send-C3", timestamp=T0 + 7 * DAY, url="https://example.co.jp/help", **args),
    ]


@pytest.mark.usefixtures("prefect_harness")
def test_events_to_csqls_lift_kpis_and_call_list(tracking_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    create_warehouse(tracking_settings.warehouse, _raw_tables())  # raw tables, and the ops tables empty
    with connect(tracking_settings.warehouse) as con:
        _select_and_send(con)
    store = EventStore(tracking_settings.events_dir)
    store.open()
    store.append(_events(), received_at=datetime.now(UTC))
    store.close()
    monkeypatch.setenv("KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY", tracking_settings.sendgrid_webhook_public_key or "")
    loaded = events_load(events_dir=str(tracking_settings.events_dir), warehouse=str(tracking_settings.warehouse))
    assert (loaded.inserted, loaded.deferred) == (9, False)

    with connect(tracking_settings.warehouse) as con:
        ensure_tracking_tables(con, tracking_settings.templates_dir)  # as the daily run does before dbt
        # The shipped declaration counts from when kizuna first saw it (now); date it before the clicks.
        con.execute(f"UPDATE {ops.TEMPLATE_INTENT_LINKS.name} SET declared_at = TIMESTAMP '2025-01-01 00:00:00'")
    # Only the selected models' own tests: a relationships test between a selected and an unselected mart waits.
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")
    built = dbt_runner.build(tracking_settings, AS_OF, select=SELECT)
    assert not built.failed and built.count("model") > 20

    with connect(tracking_settings.warehouse, read_only=True) as con:
        csqls = con.execute(
            "SELECT customer_id, intent, created_on, clicks, assigned_to, matched_deal_id, is_counted "
            "FROM marts.engagement_csqls ORDER BY customer_id"
        ).fetchall()
        kpis = con.execute(
            "SELECT csqls_created, intent_csqls_created, csqls_to_opportunity FROM marts.inside_sales_kpis_monthly "
            "WHERE month = DATE '2025-03-01'"
        ).fetchone()
        lift = con.execute(
            "SELECT window_days, treatment_customers, holdout_customers, treatment_csql_rate, holdout_csql_rate, "
            "treatment_expansion_mrr, holdout_expansion_mrr, is_holdout_too_small, csql_rate_lift_ci_low "
            "FROM marts.campaign_lift WHERE scope = 'run' AND breakdown = 'all' ORDER BY window_days"
        ).fetchall()
        performance = con.execute(
            "SELECT template, sent, human_clickers, scanner_clicked, treatment_customers_30d, holdout_customers_90d, "
            "csql_rate_lift_30d, expansion_mrr_per_customer_lift_90d FROM marts.campaign_performance"
        ).fetchall()
    d = date
    assert csqls == [
        ("C1", "upgrade", d(2025, 3, 3), 1, "ae.sato@example.co.jp", None, True),  # the scanner's click is not one
        ("C2", "upgrade", d(2025, 3, 3), 1, "(inside sales queue)", "D1", False),  # the deal stands for it
        ("C3", "upgrade", d(2025, 3, 4), 2, "(inside sales queue)", None, True),  # two clicks, one CSQL
    ]
    assert kpis == (3, 2, 1)  # D1, C1's and C3's intent CSQLs; C2's is D1, counted once
    expansion = 5000
    assert [tuple(r[:5]) for r in lift] == [(30, 3, 2, 1.0, 0.0), (90, 3, 2, 1.0, 0.0)]
    assert [(float(r[5]), float(r[6]), r[7], r[8]) for r in lift] == [(expansion, 0.0, True, None)] * 2
    assert performance == [(TEMPLATE, 3, 3, 1, 3, 2, 1.0, pytest.approx(expansion / 3))]

    with connect(tracking_settings.warehouse) as con:
        calls = Campaign(name="calls", kind="call_list", audience=Audience(status="active"))
        build_call_list(con, calls, "calls-1", date(2025, 3, 6))
        listed = con.execute("SELECT customer_id, signals FROM ops.call_list ORDER BY priority").fetchall()
    assert listed[:2] == [("C1", "intent:upgrade"), ("C3", "intent:upgrade")]  # fresh intent first
    assert {c for c, _ in listed[2:]} == {"C2", "H1", "H2"} and all(s is None for _, s in listed[2:])
