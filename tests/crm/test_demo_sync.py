"""The write-back on the shared demo warehouse (real marts from dbt, the real call list), against the stand-in."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

import duckdb

from kizuna import pipeline
from kizuna.campaigns.call_list import build_call_list
from kizuna.campaigns.spec import load_campaign
from kizuna.core.settings import PROJECT_DIR, Settings
from tests.crm.conftest import QUEUE
from tests.reporting.demo_warehouse import AS_OF, demo_warehouse
from tests.standins.hubspot_api import TOKEN, HubSpotStandin

WRITES = ("/batch/update", "/batch/create")


def demo() -> tuple[Path, dt.date]:
    """The suite's shared 400-customer demo warehouse; or, by hand, one `make demo` built (2,000 customers):
    KIZUNA_TEST_DEMO_WAREHOUSE=var/warehouse.duckdb pytest tests/crm/test_demo_sync.py (docs/crm.md)."""
    given = os.environ.get("KIZUNA_TEST_DEMO_WAREHOUSE")
    if not given:
        return demo_warehouse(), AS_OF
    with duckdb.connect(given, read_only=True) as con:
        (as_of,) = con.execute("SELECT max(as_of) FROM ops.dbt_builds").fetchone() or (None,)
    return Path(given), as_of


def test_demo_sync_writes_what_the_marts_say_once(tmp_path: Path) -> None:
    source, as_of = demo()
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy2(source, warehouse)  # the shared one stays untouched
    con = duckdb.connect(str(warehouse))
    build_call_list(con, load_campaign(PROJECT_DIR / "campaigns" / "daily_call_list.yml"), "run-1", as_of)
    customers = con.execute("SELECT customer_id, owner_email FROM marts.customers").fetchall()
    accounts = con.execute("SELECT count(*) FROM marts.customers WHERE status = 'active'").fetchone()[0]  # type: ignore[index]
    calls = con.execute(
        "SELECT count(DISTINCT (customer_id, campaign)) FROM ops.call_list WHERE as_of = ?", [as_of]
    ).fetchone()[0]  # type: ignore[index]
    con.close()
    assert accounts > 100 and calls > 10

    with HubSpotStandin() as hubspot:
        owner_emails = sorted({e for _, e in customers if e} | {QUEUE})
        for email in owner_emails:
            hubspot.state.add_owner(email)
        for customer_id, _ in customers:
            hubspot.state.create("companies", {"kizuna_customer_id": customer_id}, id=re.sub(r"\D", "", customer_id))
        settings = Settings(
            var_dir=tmp_path / "var",
            warehouse=warehouse,
            crm_target="hubspot",
            crm_queue_email=QUEUE,
            crm_account_id_property="kizuna_customer_id",
            hubspot_token=TOKEN,
            hubspot_base_url=hubspot.url,
        )
        summary = pipeline.crm_sync(settings, as_of)
        assert summary.errors == []
        assert summary.accounts_updated == accounts
        assert len(hubspot.state.live("tasks")) == summary.tasks_created == calls  # no CSQLs in this warehouse
        ranked = [c for c in hubspot.state.live("companies") if c.properties.get("kizuna_rank")]
        assert len(ranked) == accounts
        owned = [t for t in hubspot.state.live("tasks") if t.properties.get("hubspot_owner_id")]
        assert len(owned) == calls  # the account's owner or the queue: every task has someone

        sent = sum(1 for line in hubspot.state.request_lines() if line.endswith(WRITES))
        again = pipeline.crm_sync(settings, as_of)
        assert sum(1 for line in hubspot.state.request_lines() if line.endswith(WRITES)) == sent
        assert (again.accounts_updated, again.tasks_created) == (0, 0)
