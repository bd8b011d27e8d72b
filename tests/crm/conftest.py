"""A small hand-made warehouse (the marts and ops tables the CRM plan reads) and a HubSpot stand-in holding its
companies and owners. Built once per module; each test copies the warehouse file, as the sync writes its ledger.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import pytest

from kizuna.core import ops
from kizuna.core.settings import Settings
from tests.standins.hubspot_api import TOKEN, HubSpotStandin

AS_OF = dt.date(2026, 12, 4)  # a Friday: SLA days run over the weekend
CUSTOMERS = 250  # 241-249 churned; 250 active but not in HubSpot
QUEUE = "queue@example.co.jp"
CUSTOMER_ID_PROPERTY = "kizuna_customer_id"


def customer_id(i: int) -> str:
    return f"C{i:04d}"


def company_id(i: int) -> str:
    return str(90_000 + i)


def rank(i: int) -> str:
    return "A" if i % 10 == 1 else "B" if i % 10 in (2, 3, 4) else "C"


def owner(i: int) -> str | None:
    if i % 50 == 0:
        return "gone@example.co.jp"  # left the company: not a HubSpot owner any more
    return {0: "ae1@example.co.jp", 1: "ae2@example.co.jp", 2: None}[i % 3]


def build_warehouse(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marts")
    con.execute(
        """CREATE TABLE marts.customers (customer_id VARCHAR, name VARCHAR, owner_email VARCHAR, status VARCHAR,
           rank VARCHAR, revenue_rank VARCHAR, growth_potential_score DOUBLE, relationship_score DOUBLE,
           health_score DOUBLE)"""
    )
    con.executemany(
        "INSERT INTO marts.customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                customer_id(i),
                f"株式会社テスト{i}",
                owner(i),
                "churned" if 241 <= i <= 249 else "active",
                rank(i),
                rank(i),
                i % 100,
                (i * 7) % 100,
                50 + i % 50,
            ]
            for i in range(1, CUSTOMERS + 1)
        ],
    )
    con.execute(
        "CREATE TABLE marts.customer_signals (customer_id VARCHAR, signal VARCHAR, signal_value DOUBLE, "
        "signal_threshold DOUBLE, signal_detail VARCHAR)"
    )
    con.executemany(
        "INSERT INTO marts.customer_signals VALUES (?, ?, ?, ?, ?)",
        [[customer_id(i), "usage_drop", 0.4, 0.3, None] for i in range(4, CUSTOMERS, 4)]
        + [[customer_id(i), "near_plan_limit", 0.92, 0.8, None] for i in range(5, CUSTOMERS, 5)],
    )
    con.execute(
        """CREATE TABLE marts.customer_scores (customer_id VARCHAR, as_of DATE, churn_risk DOUBLE,
           churn_factors_ja VARCHAR, expansion_propensity DOUBLE, expansion_factors_ja VARCHAR)"""
    )
    con.executemany(
        "INSERT INTO marts.customer_scores VALUES (?, ?, ?, ?, ?, ?)",
        [[customer_id(i), AS_OF, i / 1000, "利用が減少", 1 - i / 1000, "上限に近い"] for i in range(1, 201)],
    )
    ops.ensure(con, ops.CALL_LIST, ops.CAMPAIGN_RECIPIENTS)
    add_call_list(con, AS_OF, range(1, 131))
    con.execute(  # an earlier run of the same day listed customer 1 too: one task, from the latest run
        f"INSERT INTO {ops.CALL_LIST} (run_id, as_of, campaign, priority, customer_id, customer_name, rank) "
        "VALUES ('r0', ?, 'call_list', 1, 'C0001', '株式会社テスト1', 'A')",
        [AS_OF],
    )
    add_call_list(con, AS_OF, [CUSTOMERS])  # not in HubSpot: an error, not a task
    con.execute(
        f"INSERT INTO {ops.CAMPAIGN_RECIPIENTS} (run_id, as_of, campaign, variant, customer_id, is_selected) "
        "VALUES ('r1', DATE '2026-11-20', 'c', 'treatment', 'C0003', true), "
        "('r1', DATE '2026-11-20', 'c', 'holdout', 'C0006', true)"
    )
    con.execute(
        """CREATE TABLE marts.engagement_csqls (csql_id VARCHAR, customer_id VARCHAR, customer_name VARCHAR,
           intent VARCHAR, link_name VARCHAR, campaign VARCHAR, clicks INTEGER, is_for_inside_sales_queue BOOLEAN,
           is_counted BOOLEAN, created_on DATE)"""
    )
    yesterday = AS_OF - dt.timedelta(days=1)
    rows = [
        [f"intent:e{i}", customer_id(i), None, "pricing", "料金", "c", 2, i == 205, True, yesterday]
        for i in range(201, 206)
    ]
    rows.append(["intent:old", customer_id(206), None, "upgrade", "x", "c", 1, False, True, AS_OF - dt.timedelta(10)])
    rows.append(["intent:deal", customer_id(207), None, "upgrade", "x", "c", 1, False, False, yesterday])
    con.executemany("INSERT INTO marts.engagement_csqls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.close()


def add_call_list(con: duckdb.DuckDBPyConnection, as_of: dt.date, customers: Iterable[int], run_id: str = "r1") -> None:
    con.executemany(
        f"""INSERT INTO {ops.CALL_LIST} (run_id, as_of, campaign, priority, owner_email, customer_id, customer_name,
            rank, signals, hypothesis, next_action, reasons) VALUES (?, ?, 'call_list', ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            [
                run_id,
                as_of,
                n,
                owner(i),
                customer_id(i),
                f"株式会社テスト{i}",
                rank(i),
                "usage_drop",
                "利用が落ちている",
                "電話する",
                "rank A",
            ]
            for n, i in enumerate(customers, start=1)
        ],
    )


def seed_hubspot(standin: HubSpotStandin) -> None:
    state = standin.state
    for email in ("ae1@example.co.jp", "ae2@example.co.jp", QUEUE):
        state.add_owner(email)
    for i in range(1, CUSTOMERS):
        state.create(
            "companies", {"name": f"株式会社テスト{i}", CUSTOMER_ID_PROPERTY: customer_id(i)}, id=company_id(i)
        )


@pytest.fixture(scope="module")
def warehouse_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crm") / "warehouse.duckdb"
    build_warehouse(path)
    return path


@pytest.fixture
def hubspot() -> Iterator[HubSpotStandin]:
    with HubSpotStandin() as standin:
        seed_hubspot(standin)
        yield standin


@pytest.fixture
def crm_settings(tmp_path: Path, warehouse_template: Path, hubspot: HubSpotStandin) -> Settings:
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse_template, warehouse)
    return Settings(
        var_dir=tmp_path / "var",
        warehouse=warehouse,
        crm_target="hubspot",
        crm_queue_email=QUEUE,
        crm_account_id_property=CUSTOMER_ID_PROPERTY,
        hubspot_token=TOKEN,
        hubspot_base_url=hubspot.url,
        connector_max_retries=6,
        connector_timeout_seconds=5,
        warehouse_wait_seconds=5,
    )
